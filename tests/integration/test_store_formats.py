"""The 2025-2026 notification formats: Apple's METADATA_UPDATE, MIGRATION, PRICE_CHANGE (recorded),
RESCIND_CONSENT (acknowledged, its verified app transaction on the log line), revocationType and
revocationPercentage in history; Google's pendingRefundReviewNotification (its fields kept as data,
unknown ones too) and subscription type 22. Through the functions' apps and the emulator."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from refundguard.model import Effect, Status, StoreName
from refundguard.refund_store import RefundStore
from refundguard_dev.apple_pki import BUNDLE_ID, SIGNED_DATE_MS, default_pki, sign_notification
from refundguard_dev.play_messages import PACKAGE, envelope, play_request, post

pytestmark = pytest.mark.emulator

TX = "2000000000000001"


@pytest.fixture
def apple(emulator_env: dict[str, str], make_client: Any, tmp_path: Path) -> Any:
    root = tmp_path / "root.der"
    root.write_bytes(default_pki().root_der)
    return make_client(
        "apple_notifications",
        APPLE_BUNDLE_IDS=BUNDLE_ID,
        APPLE_ENVIRONMENTS="Sandbox",
        APPLE_APP_APPLE_ID="",
        APPLE_ROOT_CERTS=str(root),
    )


@pytest.fixture
def play(emulator_env: dict[str, str], make_client: Any) -> Any:
    return make_client("play_notifications", PLAY_PACKAGE_NAMES=PACKAGE)


def apple_post(client: Any, token: str) -> Any:
    return client.post("/", json={"signedPayload": token})


@pytest.mark.parametrize("kind", ["METADATA_UPDATE", "MIGRATION", "PRICE_CHANGE"])
def test_advanced_commerce_types_are_recorded(apple: Any, store: Any, kind: str) -> None:
    apple_post(apple, sign_notification("ONE_TIME_CHARGE", signed_date=SIGNED_DATE_MS))
    response = apple_post(apple, sign_notification(kind, signed_date=SIGNED_DATE_MS + 1000))
    assert response.status_code == 200 and response.get_json()["effect"] == "recorded"
    newest = store.history(StoreName.APPLE, TX, "Sandbox")[0]
    assert newest.type == kind and newest.effect is Effect.RECORDED
    assert store.get(StoreName.APPLE, TX, "Sandbox").status is Status.ACTIVE


def test_a_prorated_refund_keeps_type_and_percentage(apple: Any, store: Any) -> None:
    refund = sign_notification(
        "REFUND",
        transaction={
            "revocationDate": SIGNED_DATE_MS,
            "revocationReason": 0,
            "revocationType": "REFUND_PRORATED",
            "revocationPercentage": 40_000,
        },
    )
    assert apple_post(apple, refund).status_code == 200
    newest = store.history(StoreName.APPLE, TX, "Sandbox")[0]
    assert newest.details["revocationType"] == "REFUND_PRORATED"
    assert newest.details["revocationPercentage"] == 40_000
    assert "revocationPercentage=40000" in newest.reason


def test_rescind_consent_is_acknowledged_with_its_app_transaction_logged(
    apple: Any, store: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    pki = default_pki()
    app_transaction = pki.sign(
        {
            "appTransactionId": "704289572311",
            "bundleId": BUNDLE_ID,
            "originalPlatform": "iOS",
            "receiptType": "Sandbox",
            "signedDate": SIGNED_DATE_MS,
        }
    )
    app_data = {
        "appAppleId": 1234567890,
        "bundleId": BUNDLE_ID,
        "environment": "Sandbox",
        "signedAppTransactionInfo": app_transaction,
    }
    payload = {
        "notificationType": "RESCIND_CONSENT",
        "notificationUUID": "rescind-1",
        "version": "2.0",
        "signedDate": SIGNED_DATE_MS,
        "appData": app_data,
    }
    capsys.readouterr()
    response = apple_post(apple, pki.sign(payload))
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json()["effect"] == "acknowledged"
    assert "consent rescinded" in response.get_json()["reason"]
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x]
    (line,) = [x for x in lines if x.get("notification_type") == "RESCIND_CONSENT"]
    assert line["app_transaction.appTransactionId"] == "704289572311"
    assert list(store._client.collection("entitlements").stream()) == []


def test_a_refund_review_keeps_its_listed_fields_and_never_its_token(play: Any, store: Any) -> None:
    note = {
        "version": "1.0",
        "packageName": PACKAGE,
        "eventTimeMillis": "1700000000000",
        "pendingRefundReviewNotification": {
            "purchaseToken": "tok-review",
            "orderId": "GPA.1111-2222",
            "pendingRefundToken": "prt-1",
            "refundReason": "CHARGEBACK",
            "obfuscatedExternalAccountId": "user-9",
            "newerField": {"nested": [1, 2]},
            "amountMicros": 4_990_000,
        },
    }
    body, headers = envelope(note, message_id="review-1", delivery="push", subscription="s")
    response = post(play, body, headers)
    assert response.status_code == 200 and response.get_json()["effect"] == "recorded"
    ent = store.get(StoreName.GOOGLE, "tok-review")
    assert ent.order_ids == ("GPA.1111-2222",) and ent.status is Status.UNKNOWN
    details = store.history(StoreName.GOOGLE, "tok-review")[0].details
    assert details["refundReason"] == "CHARGEBACK" and details["orderId"] == "GPA.1111-2222"
    assert details["obfuscatedExternalAccountId"] == "user-9"
    # Fields of unknown meaning: their names only; the token: nowhere in history.
    assert details["unlistedFields"] == "amountMicros,newerField"
    assert "prt-1" not in json.dumps(details) and "purchaseToken" not in details
    (request,) = RefundStore(store.client, timeout_s=store.deadline_s).recent(limit=5)
    assert request.pending_refund_token == "prt-1"  # kept to answer with, on the request only


def test_a_refund_review_of_an_unknown_order_without_the_api_is_quarantined(
    play: Any,
) -> None:
    response = post(play, *play_request("refund-review", "", order_id="GPA.unknown"))
    assert response.status_code == 200 and response.get_json()["code"] == "unknown_order"


def test_subscription_type_22_is_recorded(play: Any, store: Any) -> None:
    post(play, *play_request("subscription", "tok-22", time_ms=1_000, notification_type=4))
    response = post(
        play, *play_request("subscription", "tok-22", time_ms=2_000, notification_type=22)
    )
    assert response.get_json()["effect"] == "recorded"
    newest = store.history(StoreName.GOOGLE, "tok-22")[0]
    assert newest.type == "SUBSCRIPTION_PRICE_STEP_UP_CONSENT_UPDATED"
    assert store.get(StoreName.GOOGLE, "tok-22").status is Status.ACTIVE
