"""Access-change events through the functions (functions-framework apps, as deployed) against
the real Firestore and Pub/Sub emulators: a Play refund, Apple purchases and refunds, admin
re-grants and revokes each give one event with the right data; redeliveries and stale events give
none; Pub/Sub away never fails a request, the admin sees what waits and the sweep function
publishes it; events off or misconfigured says so at start-up."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from refundguard.model import Status, StoreName
from refundguard.outbox import OUTBOX
from refundguard_dev.apple_pki import BUNDLE_ID, SIGNED_DATE_MS, default_pki, sign_notification
from refundguard_dev.emulator import free_port
from refundguard_dev.id_tokens import AUDIENCE, CertServer, TestSigner, bearer
from refundguard_dev.play_messages import PACKAGE, play_request, post

pytestmark = pytest.mark.emulator

ADMIN = "admin@example.com"


def admin_client(make_client: Any, certs: CertServer) -> Any:
    return make_client(
        "admin", ADMIN_AUDIENCES=AUDIENCE, ADMIN_EMAILS=ADMIN, ADMIN_CERTS_URL=certs.url
    )


def log_lines(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]


def outbox_docs(store: Any) -> list[Any]:
    return list(store._client.collection(OUTBOX).stream())


# ------------------------------------------------------------------------------ each source


def test_a_play_refund_is_one_revoked_event_and_its_redelivery_none(
    platform_events: Any, make_client: Any, store: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    play = make_client("play_notifications", PLAY_PACKAGE_NAMES=PACKAGE)
    bought = play_request("subscription", "tok-p", notification_type=4, message_id="m-buy")
    refund = play_request("voided", "tok-p", time_ms=1_700_000_100_000, message_id="m-refund")
    assert post(play, *bought).get_json()["status"] == "active"
    capsys.readouterr()
    assert post(play, *refund).get_json()["status"] == "revoked"
    [line] = [x for x in log_lines(capsys) if x.get("function") == "play_notifications"]
    assert line["platform_event_published"] is True
    assert post(play, *refund).get_json()["effect"] == "duplicate"
    late = play_request("subscription", "tok-p", notification_type=2, message_id="m-renew")
    assert post(play, *late).get_json()["effect"] == "stale"

    got = platform_events.received()
    assert [(g.data["cause"]["event_id"], g.data["status"]) for g in got] == [
        ("m-buy", "active"),
        ("void:GPA.1234-5678-9012-34567", "revoked"),  # a void is keyed by its order id
    ]
    refund_event = got[1]
    assert refund_event.event["id"] == line["platform_event_id"]
    assert refund_event.data["previous_status"] == "active" and refund_event.data["access"] is False
    assert refund_event.data["order_id"] == "GPA.1234-5678-9012-34567"
    assert refund_event.data["cause"]["type"] == "VOIDED_PURCHASE"
    assert refund_event.attributes["access"] == "false"
    assert outbox_docs(store) == []


def test_apple_purchase_and_refund_are_events_with_the_apple_facts(
    platform_events: Any, make_client: Any, tmp_path: Path
) -> None:
    root = tmp_path / "root.der"
    root.write_bytes(default_pki().root_der)
    apple = make_client(
        "apple_notifications",
        APPLE_BUNDLE_IDS=BUNDLE_ID,
        APPLE_ENVIRONMENTS="Sandbox",
        APPLE_APP_APPLE_ID="",
        APPLE_ROOT_CERTS=str(root),
    )
    user = "5b1f6a0e-1a2b-4c3d-8e9f-0a1b2c3d4e5f"
    for jws in (
        sign_notification("ONE_TIME_CHARGE", transaction={"appAccountToken": user}),
        sign_notification(
            "REFUND",
            signed_date=SIGNED_DATE_MS + 60_000,
            transaction={"revocationDate": SIGNED_DATE_MS + 59_000, "revocationReason": 1},
        ),
    ):
        response = apple.post("/", json={"signedPayload": jws})
        assert response.status_code == 200, response.get_json()
    got = platform_events.received()
    assert [g.data["status"] for g in got] == ["active", "revoked"]
    refund = got[1]
    assert refund.attributes == {
        "tenant": "default",
        "store": "apple",
        "environment": "Sandbox",
        "status": "revoked",
        "access": "false",
    }
    assert refund.event["subject"].startswith("apple-sandbox:")
    assert refund.data["user_id"] == user and refund.data["version"] == 2
    assert refund.data["cause"]["type"] == "REFUND"
    assert "revocationReason=1" in refund.data["cause"]["reason"]


def test_admin_regrant_and_revoke_are_events_with_actor_and_reason(
    platform_events: Any, make_client: Any, certs: CertServer, signer: TestSigner
) -> None:
    admin = admin_client(make_client, certs)
    auth = bearer(signer.token(ADMIN))
    path = "/entitlements/google/tok-admin"

    def act(action: str, reason: str, key: str) -> Any:
        headers = {**auth, "Idempotency-Key": key}
        response = admin.post(f"{path}/{action}", json={"reason": reason}, headers=headers)
        assert response.status_code == 200, response.get_json()
        return response.get_json()

    act("revoke", "chargeback, ticket 1", "k-1")
    act("regrant", "refund was a mistake, ticket 2", "k-2")
    assert act("regrant", "refund was a mistake, ticket 2", "k-2")["effect"] == "applied"  # replay
    got = platform_events.received()
    assert [(g.data["status"], g.data["previous_status"]) for g in got] == [
        ("revoked", None),
        ("active", "revoked"),
    ]
    for g, reason in zip(
        got, ("chargeback, ticket 1", "refund was a mistake, ticket 2"), strict=True
    ):
        assert g.data["cause"]["source"] == "admin"
        assert (g.data["cause"]["actor"], g.data["cause"]["reason"]) == (ADMIN, reason)
    assert [g.data["cause"]["type"] for g in got] == ["ADMIN_REVOKE", "ADMIN_REGRANT"]


# ------------------------------------------------------------------------------ Pub/Sub away


def test_pubsub_away_never_fails_a_request_the_admin_sees_it_and_the_sweep_publishes_it(
    platform_events: Any,
    pubsub_emulator: Any,
    make_client: Any,
    certs: CertServer,
    signer: TestSigner,
    store: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    nowhere = f"127.0.0.1:{free_port()}"  # nothing listens there
    play = make_client(
        "play_notifications", PLAY_PACKAGE_NAMES=PACKAGE, PUBSUB_EMULATOR_HOST=nowhere
    )
    capsys.readouterr()
    refund = play_request("voided", "tok-away", message_id="m-away")
    response = post(play, *refund)
    assert response.status_code == 200 and response.get_json()["status"] == "revoked"
    lines = log_lines(capsys)
    [warning] = [x for x in lines if x["severity"] == "WARNING"]
    assert warning["message"].startswith("access event not published")
    assert warning["function"] == "play_notifications"
    [request_line] = [x for x in lines if x.get("http_status") == 200]
    assert request_line["platform_event_published"] is False
    assert store.get(StoreName.GOOGLE, "tok-away").status is Status.REVOKED

    admin = admin_client(make_client, certs)
    capsys.readouterr()
    listed = admin.get("/events/unpublished", headers=bearer(signer.token(ADMIN)))
    assert listed.status_code == 200
    body = listed.get_json()
    assert body["count"] == 1 and body["truncated"] is False
    [entry] = body["events"]
    assert entry["event_id"] == warning["platform_event_id"]
    assert entry["entitlement"] == "google:tok-away" and entry["status"] == "revoked"
    assert entry["cause"] == {"source": "google", "type": "VOIDED_PURCHASE"}
    [audit] = [x for x in log_lines(capsys) if x.get("audit")]
    assert audit["action"] == "unpublished_events" and audit["actor"] == ADMIN
    assert (
        admin.get("/events/unpublished?limit=0", headers=bearer(signer.token(ADMIN))).status_code
        == 400
    )
    assert admin.get("/events/unpublished").status_code == 401

    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", pubsub_emulator.host)
    sweep = make_client("events_sweep", EVENTS_SWEEP_GRACE_SECONDS="1")
    time.sleep(1.1)
    swept = sweep.post("/")
    assert swept.status_code == 200 and swept.get_json()["published"] == 1
    [got] = platform_events.received()
    assert got.event["id"] == entry["event_id"] and got.data["status"] == "revoked"
    again = admin.get("/events/unpublished", headers=bearer(signer.token(ADMIN))).get_json()
    assert again["count"] == 0 and again["events"] == []
    assert sweep.post("/").get_json()["published"] == 0


def test_the_sweep_takes_post_only_and_needs_the_topic(
    platform_events: Any, make_client: Any, refused_start: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    sweep = make_client("events_sweep")
    assert sweep.get("/").status_code == 405
    assert refused_start("events_sweep", EVENTS_SWEEP_GRACE_SECONDS="0") == [
        "EVENTS_SWEEP_GRACE_SECONDS must be between 1 and 3600, not 0"
    ]
    monkeypatch.delenv("EVENTS_TOPIC")
    assert refused_start("events_sweep", EVENTS_SWEEP_GRACE_SECONDS="60") == [
        "EVENTS_TOPIC must be set"
    ]


# ------------------------------------------------------------------------------ settings


@pytest.mark.parametrize("target", ["play_notifications", "admin"])
def test_events_off_warns_at_start_up_and_writes_no_outbox(
    emulator_env: dict[str, str],
    make_client: Any,
    certs: CertServer,
    store: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    target: str,
) -> None:
    monkeypatch.delenv("EVENTS_TOPIC", raising=False)
    if target == "admin":
        admin_client(make_client, certs)
    else:
        client = make_client(target, PLAY_PACKAGE_NAMES=PACKAGE)
    [warning] = [x for x in log_lines(capsys) if "EVENTS_TOPIC is not set" in x["message"]]
    assert warning["severity"] == "WARNING" and warning["function"] == target
    if target == "play_notifications":
        assert post(client, *play_request("voided", "tok-off")).status_code == 200
        assert store.get(StoreName.GOOGLE, "tok-off").status is Status.REVOKED
        assert outbox_docs(store) == []


def test_a_bad_topic_or_a_demo_topic_without_the_emulator_refuses_to_start(
    emulator_env: dict[str, str], refused_start: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    problems = refused_start(
        "play_notifications", PLAY_PACKAGE_NAMES=PACKAGE, EVENTS_TOPIC="access-events"
    )
    assert problems == [
        "EVENTS_TOPIC must be a topic's full name, projects/PROJECT/topics/TOPIC, "
        "not 'access-events'"
    ]
    monkeypatch.delenv("PUBSUB_EMULATOR_HOST", raising=False)
    problems = refused_start(
        "play_notifications",
        PLAY_PACKAGE_NAMES=PACKAGE,
        EVENTS_TOPIC="projects/demo-refundguard/topics/access-events",
    )
    assert problems == [
        "EVENTS_TOPIC is in demo-refundguard, a local demo project, but PUBSUB_EMULATOR_HOST "
        "is not set: refusing to publish to a real Pub/Sub"
    ]
