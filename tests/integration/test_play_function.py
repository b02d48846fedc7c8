"""The Play function through functions-framework's app, against the real Firestore emulator."""

from __future__ import annotations

import base64
import itertools
import json
import threading
from typing import Any

import pytest
from refundguard.model import Effect, Status, StoreName
from refundguard.playstore.rtdn import ONE_TIME_TYPES, SUBSCRIPTION_TYPES
from refundguard_dev.play_messages import PACKAGE, play_request, post, raw_push

pytestmark = pytest.mark.emulator


@pytest.fixture
def client(emulator_env: dict[str, str], make_client: Any) -> Any:
    return make_client("play_notifications", PLAY_PACKAGE_NAMES=f"com.other.app, {PACKAGE}")


def status_of(store: Any, token: str) -> Status | None:
    ent = store.get(StoreName.GOOGLE, token)
    return ent.status if ent else None


def quarantined(store: Any) -> list[dict[str, Any]]:
    return [d.to_dict() for d in store._client.collection("quarantine").stream()]


def entitlement_count(store: Any) -> int:
    return len(list(store._client.collection("entitlements").stream()))


# ------------------------------------------------------------------ every notification type

_EXPECTED = (
    [("subscription", n, name, eff) for n, (name, eff) in SUBSCRIPTION_TYPES.items()]
    + [("one-time", n, name, eff) for n, (name, eff) in ONE_TIME_TYPES.items()]
    + [
        ("voided", None, "VOIDED_PURCHASE", Status.REVOKED),
        ("voided-partial", None, "VOIDED_PURCHASE_PARTIAL_REFUND", None),
        ("subscription", 99, "SUBSCRIPTION_NOTIFICATION_99", None),
    ]
)


@pytest.mark.parametrize(
    ("kind", "number", "name", "effect"), _EXPECTED, ids=[e[2] for e in _EXPECTED]
)
def test_every_notification_type_sets_the_documented_status(
    client: Any,
    store: Any,
    kind: str,
    number: int | None,
    name: str,
    effect: Status | None,
) -> None:
    # An active purchase first, so that "no effect" visibly keeps access.
    post(client, *play_request("one-time", "tok-x", time_ms=1_000, notification_type=1))
    response = post(client, *play_request(kind, "tok-x", time_ms=2_000, notification_type=number))
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert body["effect"] == ("applied" if effect else "recorded")
    assert status_of(store, "tok-x") == (effect or Status.ACTIVE)
    newest = store.history(StoreName.GOOGLE, "tok-x")[0]
    assert newest.type == name
    if kind == "voided-partial":
        assert newest.details["refundType"] == "quantity_based_partial"
        assert newest.effect is Effect.RECORDED


def test_test_notification_is_acknowledged_and_writes_nothing(client: Any, store: Any) -> None:
    response = post(client, *play_request("test"))
    assert response.status_code == 200 and response.get_json()["effect"] == "test"
    assert entitlement_count(store) == 0 and quarantined(store) == []


@pytest.mark.parametrize("delivery", ["push", "cloudevent-binary", "cloudevent-structured"])
def test_every_delivery_format_applies_the_same_message(
    client: Any, store: Any, delivery: str
) -> None:
    response = post(client, *play_request("voided", "tok-ce", delivery=delivery))
    assert response.status_code == 200 and response.get_json()["effect"] == "applied"
    assert status_of(store, "tok-ce") is Status.REVOKED
    assert store.history(StoreName.GOOGLE, "tok-ce")[0].details["delivery"] == delivery


# ------------------------------------------------------------------ duplicates and ordering


def test_redelivering_the_same_message_three_times_leaves_one_history_entry(
    client: Any, store: Any
) -> None:
    body, headers = play_request("voided", "tok-dup", message_id="m-1")
    answers = [post(client, body, headers).get_json()["effect"] for _ in range(3)]
    assert answers == ["applied", "duplicate", "duplicate"]
    assert len(store.history(StoreName.GOOGLE, "tok-dup")) == 1
    assert store.get(StoreName.GOOGLE, "tok-dup").history_count == 1


_PURCHASE = ("one-time", 1_000, 1, "m-purchase")
_VOID = ("voided", 2_000, None, "m-void")


@pytest.mark.parametrize(
    "order",
    sorted(set(itertools.permutations([_PURCHASE, _VOID, _PURCHASE, _VOID]))),
    ids=lambda o: "-".join(m[3][2:] for m in o),
)
def test_every_ordering_of_purchase_and_void_ends_revoked(
    client: Any, store: Any, order: tuple[tuple[str, int, int | None, str], ...]
) -> None:
    for kind, time_ms, number, mid in order:
        response = post(
            client,
            *play_request(
                kind, "tok-ord", time_ms=time_ms, notification_type=number, message_id=mid
            ),
        )
        assert response.status_code == 200
    assert status_of(store, "tok-ord") is Status.REVOKED
    assert len(store.history(StoreName.GOOGLE, "tok-ord")) == 2


def test_purchase_delivered_after_its_void_stays_revoked(client: Any, store: Any) -> None:
    post(client, *play_request("voided", "tok-late", time_ms=2_000))  # refund for an unknown token
    assert status_of(store, "tok-late") is Status.REVOKED  # a tombstone
    late = post(
        client, *play_request("subscription", "tok-late", time_ms=1_000, notification_type=4)
    )
    assert late.get_json()["effect"] == "stale"
    assert status_of(store, "tok-late") is Status.REVOKED
    effects = [h.effect for h in store.history(StoreName.GOOGLE, "tok-late")]
    assert effects == [Effect.STALE, Effect.APPLIED]  # newest first


def test_concurrent_deliveries_for_one_token_all_land(client: Any, store: Any) -> None:
    messages = [
        play_request(
            "subscription",
            "tok-race",
            time_ms=1_000 + i,
            notification_type=2,
            message_id=f"race-{i}",
        )
        for i in range(3)
    ]
    messages.append(play_request("voided", "tok-race", time_ms=5_000, message_id="race-void"))
    answers: list[int] = []

    def deliver(body: bytes, headers: dict[str, str]) -> None:
        answers.append(post(client, body, headers).status_code)

    threads = [threading.Thread(target=deliver, args=m) for m in messages]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert answers == [200] * 4
    assert status_of(store, "tok-race") is Status.REVOKED  # the newest event, whatever the order
    history = store.history(StoreName.GOOGLE, "tok-race")
    assert sorted(h.event_id for h in history) == sorted(
        ["race-0", "race-1", "race-2", "void:GPA.1234-5678-9012-34567"]
    )


# ------------------------------------------------------------------ poison messages


def _b64(value: object) -> str:
    raw = value if isinstance(value, bytes) else json.dumps(value).encode()
    return base64.b64encode(raw).decode()


_NOTE = {"version": "1.0", "packageName": PACKAGE, "eventTimeMillis": "1700000000000"}
_POISON = {
    "bad_base64": raw_push("!!not base64!!"),
    "bad_json": raw_push(_b64(b"{not json")),
    "unknown_package": raw_push(
        _b64({**_NOTE, "packageName": "com.evil.app", "testNotification": {"version": "1.0"}})
    ),
    "missing_purchase_token": raw_push(
        _b64({**_NOTE, "voidedPurchaseNotification": {"orderId": "GPA.1"}})
    ),
    "bad_notification": raw_push(
        _b64(
            {**_NOTE, "testNotification": {}, "voidedPurchaseNotification": {"purchaseToken": "t"}}
        )
    ),
    "bad_event_time": raw_push(
        _b64(
            {
                **_NOTE,
                "eventTimeMillis": "yesterday",
                "voidedPurchaseNotification": {"purchaseToken": "t"},
            }
        )
    ),
    "missing_message_id": json.dumps({"message": {"data": _b64(_NOTE)}}).encode(),
    "bad_envelope": json.dumps({"hello": "world"}).encode(),
}


@pytest.mark.parametrize("code", sorted(_POISON))
def test_poison_message_is_acknowledged_and_quarantined_whole(
    client: Any, store: Any, code: str
) -> None:
    body = _POISON[code]
    response = post(client, body)
    assert response.status_code == 200  # acknowledged: Pub/Sub must not retry it forever
    answer = response.get_json()
    assert answer["effect"] == "quarantined" and answer["code"] == code
    [record] = quarantined(store)
    assert record["code"] == code and record["reason"]
    assert record["body"] == body.decode() and record["body_sha256"]
    assert entitlement_count(store) == 0  # and nothing else changed


@pytest.mark.parametrize(
    ("facts", "code"),
    [
        ({"productType": 2**70}, "bad_notification"),  # no such product type
        ({"refundType": 2**70}, "bad_notification"),
        ({"orderId": "GPA." + "1" * 1_100_000}, "unstorable_event"),  # Firestore could not store
        ({"orderId": "GPA.\udc00"}, "unstorable_event"),  # a lone surrogate: no UTF-8 for it
    ],
    ids=["product-type-out-of-range", "refund-type-out-of-range", "too-large", "surrogate"],
)
def test_a_value_firestore_cannot_store_is_quarantined_not_retried(
    client: Any, store: Any, facts: dict[str, Any], code: str
) -> None:
    void = {"purchaseToken": "tok-unstorable", "orderId": "GPA.1", **facts}
    body = raw_push(_b64({**_NOTE, "voidedPurchaseNotification": void}), "m-unstorable")
    response = post(client, body)
    assert response.status_code == 200  # acknowledged: a retry could never store it
    answer = response.get_json()
    assert answer["effect"] == "quarantined" and answer["code"] == code
    assert answer["quarantine_id"] == "play:m-unstorable"
    [record] = quarantined(store)
    assert record["code"] == code and record["body_sha256"]
    assert body.decode().startswith(record["body"])  # whole, or its first 512 KiB
    assert entitlement_count(store) == 0


def test_body_that_is_not_json_is_quarantined(client: Any, store: Any) -> None:
    response = client.post("/", data=b"\xff\xfe garbage", headers={"Content-Type": "text/plain"})
    assert response.status_code == 200 and response.get_json()["code"] == "bad_json"
    [record] = quarantined(store)
    assert record["body_encoding"] == "base64"


def test_redelivered_poison_message_is_quarantined_once(client: Any, store: Any) -> None:
    for _ in range(3):
        assert post(client, _POISON["bad_base64"]).status_code == 200
    assert len(quarantined(store)) == 1


def test_get_is_not_allowed(client: Any) -> None:
    response = client.get("/")
    assert response.status_code == 405 and response.get_json()["error"] == "method_not_allowed"


# ------------------------------------------------------------------ logs


def test_one_structured_log_line_per_message_without_the_token(
    client: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    token = "secret-purchase-token-that-grants-access"
    capsys.readouterr()
    post(client, *play_request("voided", token, message_id="m-log"))
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
    [entry] = [line for line in lines if line.get("message_id") == "m-log"]
    assert entry["severity"] == "INFO" and entry["effect"] == "applied"
    assert entry["package"] == PACKAGE and len(entry["token_hash"]) == 16
    assert all(token not in json.dumps(line) for line in lines)


# ------------------------------------------------------------------ configuration


def test_misconfiguration_refuses_to_start_naming_every_problem(
    emulator_env: dict[str, str], refused_start: Any
) -> None:
    # main.py builds the handler while loading: a misconfigured function fails to start rather
    # than on its first message, and names every problem at once, one line each. An empty
    # PLAY_PACKAGE_NAMES is not one: the apps may all be registered tenants'.
    problems = refused_start(
        "play_notifications",
        PLAY_PACKAGE_NAMES=" , ",
        FIRESTORE_DEADLINE_SECONDS="soon",
        PLAY_PUSH_CERTS_URL="http://keys.example.com/certs",
        PLAY_DEVELOPER_API="maybe",
    )
    assert [p.split(" ")[0] for p in problems] == [
        "FIRESTORE_DEADLINE_SECONDS",
        "PLAY_PUSH_CERTS_URL",
        "PLAY_DEVELOPER_API",
    ]


def test_replayed_dead_letter_keeps_its_original_event_id(client: Any, store: Any) -> None:
    """scripts/replay_dead_letters.sh re-publishes with refundguard_replay_of=<original id>."""
    body, headers = play_request("voided", "tok-replay", message_id="orig-1")
    assert post(client, body, headers).get_json()["effect"] == "applied"
    replay = json.loads(body)
    replay["message"]["messageId"] = "new-42"
    replay["message"]["attributes"] = {"refundguard_replay_of": "orig-1"}
    answer = post(client, json.dumps(replay).encode(), headers).get_json()
    assert answer["effect"] == "duplicate"
    assert len(store.history(StoreName.GOOGLE, "tok-replay")) == 1
