"""The reconciler's Google side through functions-framework's app, against the Firestore emulator
and the Play Developer API's stand-in: missed voids applied, a second run finds nothing new, a
void seen both ways (RTDN and reconciler) is one revocation, partial refunds and renewal voids
judged like notifications, failed pages retried and never skipped (a run that fails resumes from
its cursor), an expired resume token restarts the window, overlapping runs do nothing twice."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from conftest import STORE_API_POLICY
from refundguard.model import Status, StoreName
from refundguard.reconcile import function as reconcile_function
from refundguard.reconciliation import google as reconcile_google
from refundguard.reconciliation import pages as reconcile_pages
from refundguard_dev import play_api_data as data
from refundguard_dev.fake_play_api import FakePlayApi, Fault
from refundguard_dev.play_messages import PACKAGE, play_request, post

pytestmark = pytest.mark.emulator

NOW_MS = int(time.time() * 1000)
HOUR = 3_600_000


@pytest.fixture
def reconcile_env(
    emulator_env: dict[str, str],
    play_api: FakePlayApi,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> dict[str, str]:
    monkeypatch.setattr(reconcile_function, "API_POLICY", STORE_API_POLICY)
    monkeypatch.setattr(reconcile_pages, "PAGE_BACKOFF_S", 0.01)
    key = play_api.write_service_account_key(tmp_path / "sa.json")
    return {
        "PLAY_DEVELOPER_API": "on",
        "PLAY_API_BASE_URL": play_api.url,
        "PLAY_PACKAGE_NAMES": PACKAGE,
        "GOOGLE_APPLICATION_CREDENTIALS": str(key),
        "RECONCILE_BUDGET_SECONDS": "30",
    }


@pytest.fixture
def reconciler(make_client: Any, reconcile_env: dict[str, str]) -> Any:
    return make_client("reconcile", **reconcile_env)


def void(api: FakePlayApi, token: str, order: str, *, ago_ms: int = HOUR, **kw: Any) -> None:
    """A voided one-time purchase Google recorded ``ago_ms`` ago (its purchase is known to the
    API, so the void is judged as a one-time purchase's)."""
    api.add_product_purchase(PACKAGE, token, data.product_purchase(order_id=order))
    api.add_voided(PACKAGE, data.voided(token, order, voided_ms=NOW_MS - ago_ms, **kw))


def run(client: Any, **body: str) -> Any:
    response = client.post("/", json=body) if body else client.post("/")
    assert response.status_code in (200, 409, 503), response.get_data(as_text=True)
    return response


def google_source(answer: Any) -> dict[str, Any]:
    (source,) = [s for s in answer.get_json()["sources"] if s["source"] == "google"]
    return source


def test_a_sweep_applies_missed_voids_and_a_second_finds_nothing_new(
    reconciler: Any, play_api: FakePlayApi, store: Any
) -> None:
    for n in range(3):
        void(play_api, f"tok-miss-{n}", f"GPA.1000-0000-0000-0000{n}")
    first = run(reconciler)
    assert first.status_code == 200
    body = first.get_json()
    assert body["state"] == "succeeded"
    assert google_source(first) | {"cursor": None, "window": None} == {
        "source": "google",
        "app": PACKAGE,
        "environment": "Production",
        "seen": 3,
        "applied": 3,
        "already_known": 0,
        "rejected": 0,
        "errors": [],
        "cursor": None,
        "window": None,
        "more": False,
        "gap": False,
    }
    for n in range(3):
        ent = store.get(StoreName.GOOGLE, f"tok-miss-{n}")
        assert ent.status is Status.REVOKED
        (entry,) = store.history(StoreName.GOOGLE, f"tok-miss-{n}")
        assert entry.event_id == f"void:GPA.1000-0000-0000-0000{n}"
        assert entry.details["via"].startswith("reconciler")
    query = next(r for r in play_api.requests if "voidedpurchases" in r.path)
    assert query.arg("type") == "1" and query.arg("includeQuantityBasedPartialRefund") == "true"
    second = run(reconciler)
    assert google_source(second)["applied"] == 0
    assert google_source(second)["already_known"] == 3  # the overlap re-reads them, known
    assert len(store.history(StoreName.GOOGLE, "tok-miss-0")) == 1


def test_a_void_seen_both_ways_is_one_revocation(
    reconciler: Any,
    make_client: Any,
    reconcile_env: dict[str, str],
    play_api: FakePlayApi,
    store: Any,
) -> None:
    order = "GPA.2000-0000-0000-00001"
    void(play_api, "tok-both", order)
    play = make_client("play_notifications", **{**reconcile_env, "PLAY_PACKAGE_NAMES": PACKAGE})
    response = post(play, *play_request("voided", "tok-both", order_id=order, time_ms=NOW_MS))
    assert response.status_code == 200
    assert google_source(run(reconciler))["already_known"] == 1
    # And the other way round: the reconciler first, then the notification (and a redelivery).
    void(play_api, "tok-both-2", "GPA.2000-0000-0000-00002")
    assert google_source(run(reconciler))["applied"] == 1
    for _ in range(2):
        again = play_request("voided", "tok-both-2", order_id="GPA.2000-0000-0000-00002")
        assert post(play, *again).get_json()["effect"] == "duplicate"
    for token in ("tok-both", "tok-both-2"):
        history = store.history(StoreName.GOOGLE, token)
        assert [h.type for h in history] == ["VOIDED_PURCHASE"]
        assert store.get(StoreName.GOOGLE, token).status is Status.REVOKED


def test_partial_refunds_are_recorded_once_each_and_keep_access(
    reconciler: Any, play_api: FakePlayApi, store: Any
) -> None:
    order = "GPA.3000-0000-0000-00001"
    play_api.add_product_purchase(PACKAGE, "tok-part", data.product_purchase(order_id=order))
    for ago in (3 * HOUR, 2 * HOUR):
        row = data.voided("tok-part", order, voided_ms=NOW_MS - ago, quantity=1)
        play_api.add_voided(PACKAGE, row)
    run(reconciler)
    run(reconciler)
    history = store.history(StoreName.GOOGLE, "tok-part")
    assert [h.type for h in history] == ["VOIDED_PURCHASE_PARTIAL_REFUND"] * 2
    assert store.get(StoreName.GOOGLE, "tok-part").status is Status.UNKNOWN  # access untouched


def test_a_void_of_an_old_renewal_is_judged_like_the_notification(
    reconciler: Any, play_api: FakePlayApi, store: Any
) -> None:
    latest = "GPA.4000-0000-0000-00001..2"
    play_api.add_subscription(PACKAGE, "tok-sub", data.subscription(latest_order_id=latest))
    play_api.add_voided(
        PACKAGE,
        data.voided("tok-sub", "GPA.4000-0000-0000-00001..1", voided_ms=NOW_MS - HOUR),
        subscription=True,
    )
    play_api.add_voided(
        PACKAGE,
        data.voided("tok-sub", latest, voided_ms=NOW_MS - HOUR // 2),
        subscription=True,
    )
    run(reconciler)
    by_order = {h.details["orderId"]: h for h in store.history(StoreName.GOOGLE, "tok-sub")}
    assert by_order["GPA.4000-0000-0000-00001..1"].details["judgement"] == "earlier_order"
    assert by_order[latest].details["judgement"] == "latest_order"
    assert store.get(StoreName.GOOGLE, "tok-sub").status is Status.REVOKED


def test_a_failing_page_is_retried_and_never_skipped(
    reconciler: Any, play_api: FakePlayApi, store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reconcile_google, "PAGE_SIZE", 2)
    for n in range(5):
        void(play_api, f"tok-page-{n}", f"GPA.5000-0000-0000-0000{n}", ago_ms=HOUR + n)
    # A 429 with Retry-After, a 5xx and a malformed page: each retried, nothing skipped.
    play_api.fail_next(
        Fault(status=429, retry_after="0", path="voidedpurchases"),
        Fault(status=503, path="voidedpurchases"),
        Fault(body=b'{"voidedPurchases": [{"orderId": 7}]}', path="voidedpurchases"),
    )
    answer = run(reconciler)
    assert google_source(answer)["applied"] == 5 and answer.get_json()["state"] == "succeeded"
    assert play_api.count("voidedpurchases") == 3 + 3  # three pages, three failed answers
    assert all(
        store.get(StoreName.GOOGLE, f"tok-page-{n}").status is Status.REVOKED for n in range(5)
    )


def test_a_run_that_fails_mid_way_resumes_from_its_cursor(
    reconciler: Any, play_api: FakePlayApi, store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reconcile_google, "PAGE_SIZE", 2)
    for n in range(5):
        void(play_api, f"tok-res-{n}", f"GPA.6000-0000-0000-0000{n}", ago_ms=HOUR + n)
    # The second page keeps failing (malformed) past every retry: the run stops there.
    broken = [Fault(body=b"{not json", path="voidedpurchases") for _ in range(3)]
    play_api.fail_next(Fault(delay_s=0, path="voidedpurchases"), *broken)
    first = run(reconciler)
    source = google_source(first)
    assert first.get_json()["state"] == "partial" and source["more"] and source["errors"]
    assert source["applied"] == 2 and source["cursor"] is None  # the window is not complete
    applied = [n for n in range(5) if store.get(StoreName.GOOGLE, f"tok-res-{n}") is not None]
    assert len(applied) == 2
    resumed = run(reconciler)
    assert google_source(resumed)["applied"] == 3 and resumed.get_json()["state"] == "succeeded"
    assert google_source(resumed)["seen"] == 3  # resumed at the failed page, not from the start
    assert all(store.get(StoreName.GOOGLE, f"tok-res-{n}") is not None for n in range(5))


def test_an_expired_resume_token_restarts_the_window_without_skipping(
    reconciler: Any, play_api: FakePlayApi, store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reconcile_google, "PAGE_SIZE", 2)
    for n in range(3):
        void(play_api, f"tok-exp-{n}", f"GPA.7000-0000-0000-0000{n}", ago_ms=HOUR + n)
    play_api.fail_next(Fault(delay_s=0, path="voidedpurchases"))  # the first page passes
    play_api.fail_next(*[Fault(status=503, path="voidedpurchases") for _ in range(12)])
    assert google_source(run(reconciler))["more"]
    play_api.faults.clear()
    play_api.expire_page_tokens()
    answer = run(reconciler)
    assert answer.get_json()["state"] == "succeeded"
    assert all(store.get(StoreName.GOOGLE, f"tok-exp-{n}") is not None for n in range(3))


def test_overlapping_runs_do_not_double_the_work(
    reconciler: Any, play_api: FakePlayApi, store: Any
) -> None:
    void(play_api, "tok-lease", "GPA.8000-0000-0000-00001")
    play_api.fail_next(Fault(delay_s=1.5, path="voidedpurchases"))
    import threading

    answers: list[Any] = []
    first = threading.Thread(target=lambda: answers.append(run(reconciler)))
    first.start()
    time.sleep(0.5)
    second = run(reconciler)
    first.join()
    assert second.status_code == 409
    assert second.get_json()["error"] == "reconcile_running"
    assert answers[0].status_code == 200
    assert play_api.count("voidedpurchases") == 1
    assert run(reconciler).status_code == 200  # the lease was released


def test_the_quota_window_keeps_a_package_inside_its_limit() -> None:
    from refundguard.reconciliation.plan import QuotaWindow

    clock = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock[0] += seconds

    quota = QuotaWindow(3, 30.0, clock=lambda: clock[0], sleep=sleep)
    for _ in range(7):
        quota.wait()
        clock[0] += 1.0
    assert slept == [27.0, 27.0]  # never more than 3 queries in any 30 s


def test_both_paths_derive_a_void_event_id_from_the_order() -> None:
    from refundguard.playstore import envelope, rtdn
    from refundguard.playstore.resources import VoidedPurchase
    from refundguard.reconciliation.plan import void_event

    def note(kind: str, message_id: str, time_ms: int, **attributes: str) -> Any:
        body, headers = play_request(kind, "tok-id", message_id=message_id, time_ms=time_ms)
        message = envelope.parse(headers, body)
        message = envelope.PubSubMessage(**{**message.__dict__, "attributes": attributes})
        return rtdn.parse(message, [PACKAGE]).event

    order = "GPA.1234-5678-9012-34567"
    first, redelivered = note("voided", "m-1", 5_000), note("voided", "m-2", 5_000)
    replayed = note("voided", "m-3", 5_000, refundguard_replay_of="m-1")
    assert first.event_id == redelivered.event_id == replayed.event_id == f"void:{order}"
    row = VoidedPurchase("tok-id", order, 1_000, 4_999, "user", "remorse", None)
    assert void_event(PACKAGE, row, subscription=None).history_id == first.history_id
    partial = [note("voided-partial", f"p-{t}", t) for t in (6_000, 7_000)]
    assert [p.event_id for p in partial] == [
        f"void-partial:{order}:6000",
        f"void-partial:{order}:7000",
    ]
    other = note("subscription", "m-sub", 5_000)
    assert other.event_id == "m-sub"  # every other notification keeps its message id
