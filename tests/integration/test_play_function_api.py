"""The Play function with ``PLAY_DEVELOPER_API=on``, through functions-framework's app, against the
Firestore emulator and the Play Developer API's stand-in (real HTTP, google-auth's real token flow
with a key file whose token_uri is the stand-in): purchases verified and enriched, pending and
cancelled purchases, subscription voids judged (an earlier order's void kept, the latest one's
revoking), revocations applied while the API is down, purchases answered 503 while it is down,
permission errors named on an ERROR line, refund reviews keyed by their order."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from refundguard.model import Effect, Status, StoreName
from refundguard.play import function as play_function
from refundguard.playstore import judge as play_judge
from refundguard_dev import play_api_data as data
from refundguard_dev.fake_play_api import FakePlayApi, Fault
from refundguard_dev.play_messages import PACKAGE, play_request, post
from support import STORE_API_POLICY

pytestmark = pytest.mark.emulator

OTHER_PACKAGE = "com.other.app"  # accepted by the function, refused by the API (no permission)
ORDER = "GPA.3300-0000-0000-00001"
SUB_FIRST = "GPA.3300-0000-0000-00002..0"
SUB_LATEST = "GPA.3300-0000-0000-00002..1"
FAILURES = [Fault(status=503) for _ in range(10)]


@pytest.fixture
def api_env(
    play_api: FakePlayApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    monkeypatch.setattr(play_function, "API_POLICY", STORE_API_POLICY)
    monkeypatch.setattr(play_judge, "REVOCATION_API_DEADLINE_S", 3.0)
    monkeypatch.setattr(play_judge, "GRANT_API_DEADLINE_S", 3.0)
    key = play_api.write_service_account_key(tmp_path / "sa.json")
    return {
        "PLAY_PACKAGE_NAMES": f"{PACKAGE},{OTHER_PACKAGE}",
        "PLAY_DEVELOPER_API": "on",
        "PLAY_API_BASE_URL": play_api.url,
        "GOOGLE_APPLICATION_CREDENTIALS": str(key),
    }


@pytest.fixture
def client(emulator_env: dict[str, str], make_client: Any, api_env: dict[str, str]) -> Any:
    return make_client("play_notifications", **api_env)


def send(client: Any, kind: str, token: str, time_ms: int, **kw: Any) -> Any:
    return post(client, *play_request(kind, token, time_ms=time_ms, **kw))


def newest(store: Any, token: str) -> Any:
    return store.history(StoreName.GOOGLE, token)[0]


def log_lines(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line]


# ---------------------------------------------------------------------------------------- grants


def test_a_purchase_is_granted_and_enriched_from_the_api(
    client: Any, store: Any, play_api: FakePlayApi
) -> None:
    play_api.add_product_purchase(PACKAGE, "tok-1", data.product_purchase(order_id=ORDER))
    response = send(client, "one-time", "tok-1", 1_000, notification_type=1)
    assert response.status_code == 200, response.get_data(as_text=True)
    ent = store.get(StoreName.GOOGLE, "tok-1")
    assert ent.status is Status.ACTIVE
    assert (ent.order_id, ent.order_ids) == (ORDER, (ORDER,))
    assert (ent.product_id, ent.user_id) == (data.PRODUCT, data.ACCOUNT)
    assert ent.purchase_time_ms == 1_790_848_805_000  # 2026-10-01T10:00:05Z
    assert newest(store, "tok-1").details["api.purchaseState"] == "PURCHASED"
    assert play_api.count("/purchases/productsv2/tokens/tok-1") == 1
    assert [e.purchase_id for e in store.find_by_order(ORDER)] == ["tok-1"]


def test_a_pending_purchase_stays_pending_until_google_says_purchased(
    client: Any, store: Any, play_api: FakePlayApi
) -> None:
    play_api.add_product_purchase(
        PACKAGE, "tok-p", data.product_purchase(state="PENDING", order_id=None)
    )
    send(client, "one-time", "tok-p", 1_000, notification_type=1)
    ent = store.get(StoreName.GOOGLE, "tok-p")
    assert ent.status is Status.PENDING and not ent.status.grants_access
    assert "payment pending" in newest(store, "tok-p").reason
    play_api.add_product_purchase(PACKAGE, "tok-p", data.product_purchase(order_id=ORDER))
    send(client, "one-time", "tok-p", 2_000, notification_type=1)
    ent = store.get(StoreName.GOOGLE, "tok-p")
    assert ent.status is Status.ACTIVE and ent.order_id == ORDER


def test_a_cancelled_purchase_is_not_granted(
    client: Any, store: Any, play_api: FakePlayApi
) -> None:
    play_api.add_product_purchase(
        PACKAGE, "tok-c", data.product_purchase(state="CANCELLED", order_id=None)
    )
    assert send(client, "one-time", "tok-c", 1_000, notification_type=1).status_code == 200
    assert store.get(StoreName.GOOGLE, "tok-c").status is Status.CANCELED


def test_a_purchase_the_api_does_not_know_is_recorded_not_granted(client: Any, store: Any) -> None:
    response = send(client, "one-time", "tok-unknown", 1_000, notification_type=1)
    assert response.status_code == 200 and response.get_json()["effect"] == "recorded"
    assert store.get(StoreName.GOOGLE, "tok-unknown").status is Status.UNKNOWN
    entry = newest(store, "tok-unknown")
    assert "does not know this purchase" in entry.reason


def test_a_subscription_is_granted_only_while_it_entitles(
    client: Any, store: Any, play_api: FakePlayApi
) -> None:
    play_api.add_subscription(PACKAGE, "sub-1", data.subscription(latest_order_id=SUB_LATEST))
    send(client, "subscription", "sub-1", 1_000, notification_type=2)
    ent = store.get(StoreName.GOOGLE, "sub-1")
    assert ent.status is Status.ACTIVE and ent.order_id == SUB_LATEST
    assert ent.user_id == data.ACCOUNT and ent.product_id == "course.premium"
    play_api.add_subscription(
        PACKAGE, "sub-1", data.subscription(state="SUBSCRIPTION_STATE_EXPIRED")
    )
    send(client, "subscription", "sub-1", 2_000, notification_type=2)
    assert store.get(StoreName.GOOGLE, "sub-1").status is Status.EXPIRED
    assert "not granted" in newest(store, "sub-1").reason


def test_a_purchase_while_the_api_is_down_is_503_and_writes_nothing(
    client: Any, store: Any, play_api: FakePlayApi
) -> None:
    play_api.add_product_purchase(PACKAGE, "tok-d", data.product_purchase(order_id=ORDER))
    play_api.fail_next(*FAILURES)
    response = send(client, "one-time", "tok-d", 1_000, notification_type=1)
    assert response.status_code == 503 and response.headers["Retry-After"]
    assert response.get_json()["error"] == "store_unavailable"
    assert store.get(StoreName.GOOGLE, "tok-d") is None


def test_a_malformed_api_answer_is_503_and_writes_nothing(
    client: Any, store: Any, play_api: FakePlayApi
) -> None:
    play_api.fail_next(Fault(body=b'{"purchaseStateContext": 7}'))
    response = send(client, "one-time", "tok-m", 1_000, notification_type=1)
    assert response.status_code == 503
    assert response.get_json()["error"] == "store_bad_answer"
    assert store.get(StoreName.GOOGLE, "tok-m") is None


def test_a_permission_error_is_503_with_an_error_line_naming_the_fix(
    client: Any, store: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    response = send(
        client, "one-time", "tok-perm", 1_000, notification_type=1, package=OTHER_PACKAGE
    )
    assert response.status_code == 503
    assert response.get_json()["error"] == "play_api_permission"
    assert store.get(StoreName.GOOGLE, "tok-perm") is None
    (line,) = [x for x in log_lines(capsys) if x.get("function") == "play_notifications"]
    assert line["severity"] == "ERROR"
    assert "View financial data" in line["message"] and "Play Console" in line["message"]


# ---------------------------------------------------------------------------------------- voids


def _subscribed(client: Any, play_api: FakePlayApi, token: str) -> None:
    play_api.add_subscription(PACKAGE, token, data.subscription(latest_order_id=SUB_LATEST))
    assert send(client, "subscription", token, 1_000, notification_type=4).status_code == 200


def test_a_void_of_an_earlier_renewal_is_recorded_and_access_kept(
    client: Any, store: Any, play_api: FakePlayApi
) -> None:
    _subscribed(client, play_api, "sub-old")
    response = send(client, "voided", "sub-old", 2_000, order_id=SUB_FIRST, product_type=1)
    assert response.get_json() == {**response.get_json(), "effect": "recorded", "status": "active"}
    ent = store.get(StoreName.GOOGLE, "sub-old")
    assert ent.status is Status.ACTIVE
    assert set(ent.order_ids) == {SUB_FIRST, SUB_LATEST}
    entry = newest(store, "sub-old")
    assert entry.type == "VOIDED_PURCHASE" and entry.effect is Effect.RECORDED
    assert entry.details["judgement"] == "earlier_order"
    assert SUB_FIRST in entry.reason and "access kept" in entry.reason


def test_a_void_of_the_latest_order_revokes(client: Any, store: Any, play_api: FakePlayApi) -> None:
    _subscribed(client, play_api, "sub-new")
    send(client, "voided", "sub-new", 2_000, order_id=SUB_LATEST, product_type=1)
    assert store.get(StoreName.GOOGLE, "sub-new").status is Status.REVOKED
    assert newest(store, "sub-new").details["judgement"] == "latest_order"


def test_a_void_of_a_subscription_no_longer_entitled_revokes(
    client: Any, store: Any, play_api: FakePlayApi
) -> None:
    _subscribed(client, play_api, "sub-gone")
    play_api.add_subscription(
        PACKAGE,
        "sub-gone",
        data.subscription(state="SUBSCRIPTION_STATE_EXPIRED", latest_order_id=SUB_LATEST),
    )
    send(client, "voided", "sub-gone", 2_000, order_id=SUB_FIRST, product_type=1)
    assert store.get(StoreName.GOOGLE, "sub-gone").status is Status.REVOKED
    assert newest(store, "sub-gone").details["judgement"] == "not_entitled"


def test_a_subscription_void_while_the_api_is_down_revokes_unjudged(
    client: Any, store: Any, play_api: FakePlayApi
) -> None:
    _subscribed(client, play_api, "sub-down")
    play_api.fail_next(*FAILURES)
    response = send(client, "voided", "sub-down", 2_000, order_id=SUB_FIRST, product_type=1)
    assert response.status_code == 200
    assert store.get(StoreName.GOOGLE, "sub-down").status is Status.REVOKED
    entry = newest(store, "sub-down")
    assert entry.details["judgement"] == "unjudged"
    assert "without judgement" in entry.reason and "store_unavailable" in entry.reason


def test_a_one_time_void_revokes_at_once_and_is_enriched(
    client: Any, store: Any, play_api: FakePlayApi
) -> None:
    play_api.add_product_purchase(PACKAGE, "tok-v", data.product_purchase(order_id=ORDER))
    send(client, "voided", "tok-v", 2_000, order_id=ORDER)
    ent = store.get(StoreName.GOOGLE, "tok-v")
    assert ent.status is Status.REVOKED
    assert (ent.user_id, ent.product_id, ent.order_id) == (data.ACCOUNT, data.PRODUCT, ORDER)


def test_a_void_with_a_permission_error_revokes_and_raises_the_alarm(
    client: Any, store: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    response = send(client, "voided", "tok-pv", 2_000, package=OTHER_PACKAGE, product_type=1)
    assert response.status_code == 200
    assert store.get(StoreName.GOOGLE, "tok-pv").status is Status.REVOKED
    (line,) = [x for x in log_lines(capsys) if x.get("function") == "play_notifications"]
    assert line["severity"] == "ERROR" and "View financial data" in line["api_problem"]


# ---------------------------------------------------------------------------------------- reviews


def _review(client: Any, order_id: str, token: str = "") -> Any:
    return send(client, "refund-review", token, 3_000, order_id=order_id)


def test_a_refund_review_naming_only_a_known_order_is_recorded_on_its_purchase(
    client: Any, store: Any, play_api: FakePlayApi
) -> None:
    play_api.add_product_purchase(PACKAGE, "tok-r", data.product_purchase(order_id=ORDER))
    send(client, "one-time", "tok-r", 1_000, notification_type=1)
    assert _review(client, ORDER).status_code == 200
    entry = newest(store, "tok-r")
    assert entry.type == "PENDING_REFUND_REVIEW" and entry.effect is Effect.RECORDED
    assert entry.details["orderId"] == ORDER and "pendingRefundToken" not in entry.details
    assert store.get(StoreName.GOOGLE, "tok-r").status is Status.ACTIVE
    assert play_api.count("/orders/") == 0  # found in Firestore


def test_a_refund_review_of_an_unseen_order_is_keyed_through_orders_get(
    client: Any, store: Any, play_api: FakePlayApi
) -> None:
    play_api.add_order(PACKAGE, data.order("GPA.9", "tok-seen-by-api"))
    assert _review(client, "GPA.9").status_code == 200
    ent = store.get(StoreName.GOOGLE, "tok-seen-by-api")
    assert ent.order_ids == ("GPA.9",) and ent.status is Status.UNKNOWN


def test_a_refund_review_of_an_order_nobody_knows_is_quarantined(client: Any, store: Any) -> None:
    response = _review(client, "GPA.nobody")
    assert response.status_code == 200 and response.get_json()["effect"] == "quarantined"
    assert response.get_json()["code"] == "unknown_order"


# ------------------------------------------------------------------- deadlines, ids, secrets

TRICKLE = Fault(trickle_s=0.2)  # 200 and headers at once, then a byte every 0.2 s (read: 2 s)


def _timed(call: Callable[[], Any]) -> tuple[Any, float]:
    started = time.monotonic()
    return call(), time.monotonic() - started


def test_a_void_is_applied_within_its_deadline_while_the_api_trickles(
    client: Any, store: Any, play_api: FakePlayApi
) -> None:
    play_api.add_product_purchase(PACKAGE, "tok-tv", data.product_purchase(order_id=ORDER))
    play_api.fail_next(TRICKLE)
    response, took = _timed(lambda: send(client, "voided", "tok-tv", 2_000, order_id=ORDER))
    assert response.status_code == 200, response.get_data(as_text=True)
    assert took < play_judge.REVOCATION_API_DEADLINE_S + 3.0  # not the trickle's minutes
    assert store.get(StoreName.GOOGLE, "tok-tv").status is Status.REVOKED
    assert newest(store, "tok-tv").details.get("api.error") == "store_timeout"


def test_a_purchase_while_the_api_trickles_is_503_within_its_deadline(
    client: Any, store: Any, play_api: FakePlayApi
) -> None:
    play_api.add_product_purchase(PACKAGE, "tok-tg", data.product_purchase(order_id=ORDER))
    play_api.fail_next(TRICKLE)
    response, took = _timed(lambda: send(client, "one-time", "tok-tg", 1_000, notification_type=1))
    assert response.status_code == 503 and response.get_json()["error"] == "store_timeout"
    assert took < play_judge.GRANT_API_DEADLINE_S + 3.0
    assert store.get(StoreName.GOOGLE, "tok-tg") is None


@pytest.mark.parametrize("token", [".", "..", "..."])
def test_a_dot_token_is_quarantined_without_asking_the_api(
    client: Any, store: Any, play_api: FakePlayApi, token: str
) -> None:
    for kind, extra in (("one-time", {"notification_type": 1}), ("voided", {"order_id": ORDER})):
        response = send(client, kind, token, 1_000, **extra)
        assert response.status_code == 200 and response.get_json()["effect"] == "quarantined"
        assert response.get_json()["code"] == "bad_purchase_token"
    assert [r.path for r in play_api.requests] == []


def test_a_store_error_quoting_our_access_token_never_reaches_the_logs(
    client: Any, store: Any, play_api: FakePlayApi, capsys: pytest.CaptureFixture[str]
) -> None:
    echo = Fault(status=403, quote_headers=("Authorization",))
    play_api.add_product_purchase(PACKAGE, "tok-e", data.product_purchase(order_id=ORDER))
    capsys.readouterr()
    play_api.fail_next(echo)
    revoked = send(client, "voided", "tok-e", 2_000, order_id=ORDER)
    play_api.fail_next(echo)
    refused = send(client, "one-time", "tok-e2", 1_000, notification_type=1)
    tokens = list(play_api.access_tokens)
    assert tokens and all(t.startswith("ya29.") for t in tokens)
    out = capsys.readouterr().out
    lines = [json.loads(x) for x in out.splitlines() if x]
    assert any("api_problem" in x for x in lines)  # the alarm is raised, the token cut out
    assert "Authorization: Bearer [redacted]" in out
    answers = revoked.get_data(as_text=True) + refused.get_data(as_text=True)
    assert refused.status_code == 503 and "Bearer [redacted]" in answers
    history = json.dumps(
        [e.details | {"reason": e.reason} for e in store.history(StoreName.GOOGLE, "tok-e")]
    )
    for token in tokens:
        assert token not in out and token not in answers and token not in history
        assert token[len("ya29.") :] not in out + answers + history


# ---------------------------------------------------------------------------------------- settings


def test_a_local_api_url_needs_a_local_key_file(
    emulator_env: dict[str, str],
    refused_start: Callable[..., list[str]],
    play_api: FakePlayApi,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    base = {"PLAY_PACKAGE_NAMES": PACKAGE, "PLAY_DEVELOPER_API": "on"}
    problems = refused_start("play_notifications", **base, PLAY_API_BASE_URL=play_api.url)
    assert any("GOOGLE_APPLICATION_CREDENTIALS" in p for p in problems), problems
    key = play_api.write_service_account_key(tmp_path / "real.json")
    document = json.loads(key.read_text())
    key.write_text(json.dumps({**document, "token_uri": "https://oauth2.googleapis.com/token"}))
    problems = refused_start(
        "play_notifications",
        **base,
        PLAY_API_BASE_URL=play_api.url,
        GOOGLE_APPLICATION_CREDENTIALS=str(key),
    )
    assert any("token_uri is not local" in p for p in problems), problems
    problems = refused_start("play_notifications", **{**base, "PLAY_DEVELOPER_API": "maybe"})
    assert any("PLAY_DEVELOPER_API must be on or off" in p for p in problems), problems
