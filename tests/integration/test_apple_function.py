"""The Apple function through functions-framework's app (and its handler), against the Firestore
emulator: verified notifications change entitlements; rejected ones change nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import flask
import pytest
from refundguard.apple.function import create_handler
from refundguard.apple.settings import load_settings
from refundguard.appstore.config import fingerprint
from refundguard.model import Effect, Status, StoreName
from refundguard_dev.apple_pki import (
    APP_APPLE_ID,
    BUNDLE_ID,
    SIGNED_DATE_MS,
    default_pki,
    generate_pki,
    sign_notification,
)

pytestmark = pytest.mark.emulator

TX = "2000000000000001"
USER = "5b1f6a0e-1a2b-4c3d-8e9f-0a1b2c3d4e5f"


@pytest.fixture
def root_path(tmp_path: Path) -> Path:
    path = tmp_path / "test-root.der"
    path.write_bytes(default_pki().root_der)
    return path


@pytest.fixture
def client(emulator_env: dict[str, str], make_client: Any, root_path: Path) -> Any:
    return make_client(
        "apple_notifications",
        APPLE_BUNDLE_IDS=f"com.other.app,{BUNDLE_ID}",
        APPLE_ENVIRONMENTS="Sandbox",
        APPLE_APP_APPLE_ID="",
        APPLE_ROOT_CERTS=str(root_path),
    )


def post(client: Any, token: str | None, *, body: bytes | None = None) -> Any:
    data = body if body is not None else json.dumps({"signedPayload": token}).encode()
    return client.post("/", data=data, content_type="application/json")


def at(offset_s: int) -> int:
    return SIGNED_DATE_MS + offset_s * 1000


def status_of(store: Any, tx: str = TX, environment: str = "Sandbox") -> Status | None:
    ent = store.get(StoreName.APPLE, tx, environment)
    return ent.status if ent else None


def document_count(store: Any) -> int:
    return sum(
        len(list(store._client.collection(c).stream())) for c in ("entitlements", "quarantine")
    )


def test_purchase_then_refund_revokes_and_keeps_the_revocation_facts(
    client: Any, store: Any
) -> None:
    r = post(client, sign_notification("ONE_TIME_CHARGE", signed_date=at(0)))
    assert r.status_code == 200 and r.get_json()["effect"] == "applied"
    assert status_of(store) is Status.ACTIVE
    refund = sign_notification(
        "REFUND",
        signed_date=at(60),
        transaction={
            "revocationDate": at(59),
            "revocationReason": 1,
            "revocationType": "REFUND_FULL",
        },
    )
    r = post(client, refund)
    assert r.status_code == 200 and r.get_json() == {
        "effect": "applied",
        "status": "revoked",
        "entitlement": f"apple-sandbox:{TX}",
    }
    ent = store.get(StoreName.APPLE, TX, "Sandbox")
    assert ent.status is Status.REVOKED and ent.user_id == USER and ent.environment == "Sandbox"
    newest = store.history(StoreName.APPLE, TX, "Sandbox")[0]
    assert newest.type == "REFUND" and newest.details["revocationReason"] == 1
    assert newest.details["revocationType"] == "REFUND_FULL"
    assert newest.details["revocationDate"] == at(59)
    assert newest.reason == (
        "REFUND by Apple: an actual or perceived issue in the app (revocationReason=1); "
        "full refund (revocationType=REFUND_FULL)"
    )
    # The purchase time is the transaction's (originalPurchaseDate), as the Google path records.
    assert ent.purchase_time_ms == at(0) - 60_000


def test_a_refund_without_revocation_facts_says_so_and_names_nothing_absent(
    client: Any, store: Any
) -> None:
    r = post(client, sign_notification("REFUND", signed_date=at(60)))
    assert r.status_code == 200 and r.get_json()["status"] == "revoked"
    newest = store.history(StoreName.APPLE, TX, "Sandbox")[0]
    assert newest.reason == "REFUND by Apple (no reason given)"


def test_refund_reversed_restores_access(client: Any, store: Any) -> None:
    post(client, sign_notification("ONE_TIME_CHARGE", signed_date=at(0)))
    post(client, sign_notification("REFUND", signed_date=at(60)))
    assert status_of(store) is Status.REVOKED
    r = post(client, sign_notification("REFUND_REVERSED", signed_date=at(120)))
    assert r.status_code == 200 and r.get_json()["status"] == "active"
    assert status_of(store) is Status.ACTIVE


def test_redelivered_notification_adds_one_history_entry(client: Any, store: Any) -> None:
    token = sign_notification("REFUND", signed_date=at(60), notification_uuid="same-uuid-1")
    first, second = post(client, token), post(client, token)
    assert first.get_json()["effect"] == "applied"
    assert second.status_code == 200 and second.get_json()["effect"] == Effect.DUPLICATE.value
    assert len(store.history(StoreName.APPLE, TX, "Sandbox")) == 1


def test_refund_before_its_purchase_stays_revoked(client: Any, store: Any) -> None:
    assert post(client, sign_notification("REFUND", signed_date=at(60))).status_code == 200
    late_purchase = post(client, sign_notification("ONE_TIME_CHARGE", signed_date=at(0)))
    assert late_purchase.status_code == 200 and late_purchase.get_json()["effect"] == "stale"
    assert status_of(store) is Status.REVOKED


def test_informational_notification_is_recorded_without_changing_access(
    client: Any, store: Any
) -> None:
    post(client, sign_notification("ONE_TIME_CHARGE", signed_date=at(0)))
    r = post(client, sign_notification("REFUND_DECLINED", signed_date=at(60)))
    assert r.get_json()["effect"] == "recorded"
    assert status_of(store) is Status.ACTIVE
    assert len(store.history(StoreName.APPLE, TX, "Sandbox")) == 2


def test_test_notification_is_acknowledged_and_writes_nothing(client: Any, store: Any) -> None:
    r = post(client, sign_notification("TEST"))
    assert r.status_code == 200 and r.get_json()["effect"] == "acknowledged"
    assert document_count(store) == 0


@pytest.mark.parametrize(
    ("name", "body", "code"),
    [
        ("not_json", b"{signedPayload:", "bad_json"),
        ("json_array", b"[]", "bad_json"),
        ("missing_signed_payload", b"{}", "missing_signed_payload"),
        ("signed_payload_not_string", b'{"signedPayload": 5}', "missing_signed_payload"),
        ("not_a_jws", b'{"signedPayload": "abc"}', "apple_malformed"),
    ],
)
def test_bad_bodies_are_4xx_and_write_nothing(
    client: Any, store: Any, name: str, body: bytes, code: str
) -> None:
    r = post(client, None, body=body)
    assert r.status_code == 400 and r.get_json()["error"] == code
    assert document_count(store) == 0


def test_forged_notification_is_rejected_with_a_warning_and_no_write(
    client: Any, store: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    token = sign_notification("REFUND", pki=generate_pki("Forger"))
    r = post(client, token)
    assert r.status_code == 400 and r.get_json()["error"] == "apple_invalid_chain"
    assert document_count(store) == 0
    lines = [
        json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")
    ]
    warnings = [line for line in lines if line["severity"] == "WARNING"]
    assert len(warnings) == 1 and warnings[0]["code"] == "apple_invalid_chain"
    assert token not in json.dumps(warnings) and token.split(".")[2] not in json.dumps(lines)


@pytest.mark.parametrize(
    ("kw", "code"),
    [
        (
            {"bundle_id": "com.evil.app", "transaction": {"bundleId": "com.evil.app"}},
            "apple_invalid_app_identifier",
        ),
        ({"environment": "Production"}, "apple_invalid_environment"),
        ({"transaction": {"environment": "Production"}}, "apple_inconsistent_payload"),
    ],
    ids=["foreign_bundle", "production_not_enabled", "inner_environment_differs"],
)
def test_unconfigured_app_or_environment_is_rejected(
    client: Any, store: Any, kw: dict[str, Any], code: str
) -> None:
    r = post(client, sign_notification("REFUND", **kw))
    assert r.status_code == 400 and r.get_json()["error"] == code
    assert document_count(store) == 0


def test_get_is_not_allowed(client: Any) -> None:
    assert client.get("/").status_code == 405


def test_verified_but_unmappable_notification_is_quarantined_and_refused(
    client: Any, store: Any
) -> None:
    token = sign_notification(
        "REFUND",
        transaction={"original_transaction_id": "not/an id"},
        notification_uuid="uuid-unmappable",
    )
    r = post(client, token)
    assert r.status_code == 422 and r.get_json()["effect"] == "quarantined"
    docs = [d.to_dict() for d in store._client.collection("quarantine").stream()]
    assert len(docs) == 1 and docs[0]["source"] == "apple"
    assert len(list(store._client.collection("entitlements").stream())) == 0


def test_verified_notification_with_a_value_firestore_cannot_store_is_quarantined(
    client: Any, store: Any
) -> None:
    token = sign_notification(
        "REFUND", transaction={"revocationReason": 2**70}, notification_uuid="uuid-unstorable"
    )
    r = post(client, token)
    assert r.status_code == 422 and r.get_json()["effect"] == "quarantined"
    assert r.get_json()["quarantine_id"] == "apple:uuid-unstorable"
    [doc] = [d.to_dict() for d in store._client.collection("quarantine").stream()]
    assert doc["code"] == "apple_unmappable" and doc["source"] == "apple"
    assert len(list(store._client.collection("entitlements").stream())) == 0


def test_firestore_unreachable_is_503_so_apple_retries(
    emulator_env: dict[str, str], make_client: Any, root_path: Path, unused_port: int
) -> None:
    client = make_client(
        "apple_notifications",
        APPLE_BUNDLE_IDS=BUNDLE_ID,
        APPLE_ENVIRONMENTS="Sandbox",
        APPLE_ROOT_CERTS=str(root_path),
        FIRESTORE_EMULATOR_HOST=f"127.0.0.1:{unused_port}",
        FIRESTORE_DEADLINE_SECONDS="1",
    )
    r = post(client, sign_notification("REFUND"))
    assert r.status_code == 503 and r.headers.get("Retry-After")


@pytest.fixture
def unused_port() -> int:
    from refundguard_dev.emulator import free_port

    return free_port()


def test_sandbox_and_production_never_mix(
    emulator_env: dict[str, str], store: Any, root_path: Path
) -> None:
    env = {
        "APPLE_BUNDLE_IDS": BUNDLE_ID,
        "APPLE_ENVIRONMENTS": "Production,Sandbox",
        "APPLE_APP_APPLE_ID": str(APP_APPLE_ID),
        "APPLE_ROOT_CERTS": str(root_path),
    }
    settings = load_settings(
        env, trusted_production_fingerprints={fingerprint(default_pki().root.cert)}
    )
    handler = create_handler(env, settings=settings, entitlements=store)
    app = flask.Flask("t")

    def call(token: str) -> flask.Response:
        with app.test_request_context("/", method="POST", json={"signedPayload": token}):
            return handler(flask.request)

    assert (
        call(
            sign_notification("ONE_TIME_CHARGE", environment="Production", signed_date=at(0))
        ).status_code
        == 200
    )
    assert (
        call(sign_notification("REFUND", environment="Sandbox", signed_date=at(60))).status_code
        == 200
    )
    assert status_of(store, environment="Production") is Status.ACTIVE
    assert status_of(store, environment="Sandbox") is Status.REVOKED
