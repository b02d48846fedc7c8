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
from hypothesis import given, settings
from hypothesis import strategies as st
from refundguard.model import Status, StoreName
from refundguard.reconcile import function as reconcile_function
from refundguard.reconciliation import google as reconcile_google
from refundguard.reconciliation import pages as reconcile_pages
from refundguard_dev import play_api_data as data
from refundguard_dev.fake_play_api import FakePlayApi, Fault
from refundguard_dev.play_messages import PACKAGE, play_request, post
from support import STORE_API_POLICY

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


@settings(max_examples=200, deadline=None)
@given(
    gaps=st.lists(st.integers(min_value=0, max_value=40_000), min_size=1, max_size=60),
    limit=st.integers(min_value=1, max_value=6),
)
def test_the_quota_never_lets_more_than_its_limit_into_any_window(
    gaps: list[int], limit: int
) -> None:
    from refundguard.reconciliation.plan import quota_slot

    now, sent, window = 0, [], 30_000
    for gap in gaps:
        now += gap
        kept, wait = quota_slot(sent, now, limit=limit, window_ms=window)
        if wait:
            assert kept == sorted(kept) and wait > 0
            now += wait
            kept, wait = quota_slot(kept, now, limit=limit, window_ms=window)
        assert wait == 0 and kept[-1] == now
        sent = kept
        times = sorted(sent)
        assert all(b - a >= window for a, b in zip(times, times[limit:], strict=False))


def test_the_play_quota_is_shared_by_runs_and_instances(emulator_env: dict[str, str]) -> None:
    """Two instances (two runs back to back, or side by side) share one window per package in
    Firestore: together they never send more than the limit in any 30 s."""
    from google.cloud import firestore
    from refundguard.reconciliation.quota import PlayQuota

    clock = [1_000_000]
    sent: list[int] = []

    def sleep(seconds: float) -> None:
        clock[0] += int(seconds * 1000)

    client = firestore.Client(project=emulator_env["GOOGLE_CLOUD_PROJECT"])
    instances = [
        PlayQuota(client, timeout_s=10, clock_ms=lambda: clock[0], sleep=sleep, limit=3)
        for _ in range(2)
    ]
    for n in range(10):
        instances[n % 2].wait(PACKAGE)
        sent.append(clock[0])
        clock[0] += 1_000
    assert all(b - a >= 30_000 for a, b in zip(sent, sent[3:], strict=False)), sent
    assert instances[0].waited_s + instances[1].waited_s > 0
    other = PlayQuota(client, timeout_s=10, clock_ms=lambda: clock[0], sleep=sleep, limit=3)
    before = clock[0]
    other.wait("com.example.other")  # another package has its own window
    assert clock[0] == before


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


def play_calls(api: FakePlayApi, kind: str) -> int:
    return sum(1 for r in api.requests if kind in r.path)


@pytest.mark.parametrize("subscriptions", [0, 3])
def test_new_voids_cost_about_one_play_call_each(
    reconciler: Any, play_api: FakePlayApi, store: Any, subscriptions: int
) -> None:
    """One orders.batchGet a page says what each order bought: a one-time void needs no other
    call, a subscription void one subscriptionsv2 call (never productsv2 first)."""
    count = 12
    for n in range(count):
        token, order = f"tok-cost-{n}", f"GPA.5000-0000-0000-{n:05d}"
        sub = n < subscriptions
        play_api.add_order(PACKAGE, data.order(order, token, subscription=sub, state="REFUNDED"))
        if sub:
            play_api.add_subscription(PACKAGE, token, data.subscription(latest_order_id=order))
        else:
            play_api.add_product_purchase(PACKAGE, token, data.product_purchase(order_id=order))
        play_api.add_voided(PACKAGE, data.voided(token, order, voided_ms=NOW_MS - HOUR))
    source = google_source(run(reconciler))
    assert source["applied"] == count and source["more"] is False
    judging = sum(play_calls(play_api, k) for k in ("orders", "productsv2", "subscriptionsv2"))
    assert play_calls(play_api, "orders:batchGet") == 1
    assert play_calls(play_api, "productsv2") == 0
    assert play_calls(play_api, "subscriptionsv2") == subscriptions
    assert judging == 1 + subscriptions  # <= 1.1 a void for any page of 10 or more
    for n in range(count):
        entitlement = store.get(StoreName.GOOGLE, f"tok-cost-{n}")
        assert entitlement.status is Status.REVOKED
        assert entitlement.product_id is not None  # enriched from the order
    second = google_source(run(reconciler))
    assert second["applied"] == 0 and second["already_known"] == count


def test_a_batch_google_refuses_falls_back_to_judging_each_void(
    reconciler: Any, play_api: FakePlayApi, store: Any
) -> None:
    """Google fails a whole orders.batchGet when one order is unknown to it: each void is then
    judged alone, none lost."""
    for n in range(3):
        void(play_api, f"tok-fb-{n}", f"GPA.6000-0000-0000-0000{n}")  # no order seeded
    source = google_source(run(reconciler))
    assert source["applied"] == 3 and not source["errors"]
    assert play_calls(play_api, "orders:batchGet") == 1
    for n in range(3):
        assert store.get(StoreName.GOOGLE, f"tok-fb-{n}").status is Status.REVOKED


def test_one_order_google_does_not_know_costs_a_few_batches_not_a_call_per_void(
    reconciler: Any, play_api: FakePlayApi, store: Any
) -> None:
    """The batch Google refuses is asked again in halves: 40 one-time voids whose orders Google
    knows but one cost 5 batches and the unknown one's half of ten judged alone (two calls
    each), not two calls for every void."""
    count = 40
    for n in range(count):
        token, order = f"tok-split-{n}", f"GPA.6100-0000-0000-{n:05d}"
        if n != 7:  # Google knows every order but this one
            play_api.add_order(PACKAGE, data.order(order, token, state="REFUNDED"))
        play_api.add_product_purchase(PACKAGE, token, data.product_purchase(order_id=order))
        play_api.add_voided(PACKAGE, data.voided(token, order, voided_ms=NOW_MS - HOUR))
    source = google_source(run(reconciler))
    assert source["applied"] == count and not source["errors"]
    assert play_calls(play_api, "orders:batchGet") == 5  # 40, 20 + 20, 10 + 10
    judging = sum(play_calls(play_api, k) for k in ("orders", "productsv2", "subscriptionsv2"))
    assert judging == 5 + 2 * 10
    for n in range(count):
        assert store.get(StoreName.GOOGLE, f"tok-split-{n}").status is Status.REVOKED


def test_a_budget_spent_within_a_page_leaves_the_page_to_the_next_run(
    make_client: Any, reconcile_env: dict[str, str], play_api: FakePlayApi, store: Any
) -> None:
    """The budget is checked before every void of a page: a run that runs out mid-page (a slow
    Play API: 1 s an answer, 5 s of budget) stops there (more: true, the cursor not past the
    page), and the next run applies the rest, each void once."""
    count = 8
    for n in range(count):
        void(play_api, f"tok-budget-{n}", f"GPA.7000-0000-0000-0000{n}")
    for _ in range(count):
        play_api.fail_next(Fault(delay_s=1.0, path="productsv2"))
    env = {**reconcile_env, "RECONCILE_BUDGET_SECONDS": "5"}
    first = run(make_client("reconcile", **env)).get_json()
    (source,) = first["sources"]
    assert 0 < source["applied"] < count and source["more"] is True
    assert first["state"] == "partial" and source["cursor"] is None  # the page is not done
    second = google_source(run(make_client("reconcile", **reconcile_env)))
    assert second["applied"] == count - source["applied"]
    assert second["already_known"] == source["applied"] and second["more"] is False
    for n in range(count):
        assert len(store.history(StoreName.GOOGLE, f"tok-budget-{n}")) == 1


@pytest.mark.parametrize(
    "body",
    [
        {"run_id": "20261126T134500Z-1a2b3c"},
        {"run_id": "__x__"},
        {"run_id": "."},
        {"trigger": "admin", "run_id": "mine"},
        {"trigger": ["admin"]},
        {"trigger": "cron"},
        {"actor": "a b"},
        {"request_id": "not-hex"},
        {"request_id": 7},
    ],
)
def test_a_caller_never_chooses_the_run_id_and_bad_fields_change_nothing(
    reconciler: Any, play_api: FakePlayApi, store: Any, body: dict[str, Any]
) -> None:
    """Run ids are made by the reconciler: a body naming one (or any bad field) is a 400 that
    takes no lease and writes no run; the next run goes ahead."""
    void(play_api, "tok-runid", "GPA.8000-0000-0000-00001")
    refused = reconciler.post("/", json=body)
    assert refused.status_code == 400, refused.get_data(as_text=True)
    assert refused.get_json()["error"] in ("unknown_field", "bad_field")
    runs = list(store.client.collection("reconcile_runs").stream())
    assert runs == [] and store.get(StoreName.GOOGLE, "tok-runid") is None
    done = run(reconciler, trigger="admin", actor="admin@example.com")
    assert done.status_code == 200 and done.get_json()["run_id"] not in str(body)
    assert done.get_json()["trigger"] == "admin"


def test_the_lease_is_given_back_when_a_run_fails_early(
    reconciler: Any, play_api: FakePlayApi, store: Any
) -> None:
    """A run whose first write fails still gives the lease back: the next run is not locked
    out until the lease expires."""
    store.client.collection("reconcile_lease").document("reconciler").set(
        {"run_id": "an-old-run", "acquired_ms": 1, "expires_ms": 2}
    )
    store.client.collection("reconcile_runs").document("an-old-run").set({"state": 5})
    first = run(reconciler)  # marking the unreadable abandoned run fails: 503, lease released
    assert first.status_code == 503
    lease = store.client.collection("reconcile_lease").document("reconciler").get()
    assert not lease.exists or lease.to_dict().get("run_id") != first.get_json().get("run_id")
    assert run(reconciler).status_code == 200
