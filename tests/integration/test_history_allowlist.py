"""What history may hold, through the functions' apps against the Firestore emulator: whatever
extra fields (any name, any JSON value) a store puts in a notification, only the fields its
source's allow-list names (``history_details``) reach the entitlement's history and the admin
look-up; Google's ``pendingRefundToken`` is never among them (it is kept on the refund request,
to answer with) and entries stored before a field left the list are shown without it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from refundguard.history_details import ALLOWED
from refundguard.model import LedgerEvent, Source, StoreName
from refundguard.refund_store import RefundStore
from refundguard_dev.apple_pki import (
    BUNDLE_ID,
    SIGNED_DATE_MS,
    default_pki,
    notification_payload,
    transaction_payload,
)
from refundguard_dev.id_tokens import AUDIENCE, CertServer
from refundguard_dev.play_messages import PACKAGE, developer_notification, envelope, post

pytestmark = pytest.mark.emulator

ADMIN = "admin@example.com"
SECRET = "prt-SECRET-d0n0tshow"
HEALTH = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]


@pytest.fixture
def admin(make_client: Any, emulator_env: dict[str, str], certs: CertServer) -> Any:
    return make_client(
        "admin", ADMIN_AUDIENCES=AUDIENCE, ADMIN_EMAILS=ADMIN, ADMIN_CERTS_URL=certs.url
    )


@pytest.fixture
def play(emulator_env: dict[str, str], make_client: Any) -> Any:
    return make_client("play_notifications", PLAY_PACKAGE_NAMES=PACKAGE)


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


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.text(max_size=12)
    | st.just(SECRET),
    lambda inner: st.lists(inner, max_size=2) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=4,
)
#: Any name (``x`` first, so that a name never replaces a field the message needs).
extra_fields = st.dictionaries(st.text(min_size=1, max_size=16).map("x".__add__), json_values)
KIND_OBJECTS = {
    "subscription": "subscriptionNotification",
    "one-time": "oneTimeProductNotification",
    "voided": "voidedPurchaseNotification",
    "refund-review": "pendingRefundReviewNotification",
}


def look_up(admin: Any, auth: dict[str, str], store: str, purchase_id: str) -> dict[str, Any]:
    answer = admin.post(
        "/entitlements:lookup", json={"store": store, "purchase_id": purchase_id}, headers=auth
    )
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return answer.get_json()


def assert_only_listed(shown: dict[str, Any], source: Source) -> None:
    for entry in shown["history"]:
        assert set(entry["details"]) <= ALLOWED[source], entry["details"]
    assert SECRET not in json.dumps(shown)


@settings(max_examples=40, deadline=None, suppress_health_check=HEALTH)
@given(
    kind=st.sampled_from(sorted(KIND_OBJECTS)),
    inner=extra_fields,
    outer=extra_fields,
    n=st.integers(0, 10**9),
)
def test_no_field_outside_the_allow_list_reaches_play_history_or_the_look_up(
    play: Any,
    admin: Any,
    auth: dict[str, str],
    store: Any,
    kind: str,
    inner: dict[str, Any],
    outer: dict[str, Any],
    n: int,
) -> None:
    token = f"tok-allow-{n}"
    note = developer_notification(
        kind,
        package=PACKAGE,
        token=token,
        event_time_ms=1_700_000_000_000,
        notification_type=4 if kind == "subscription" else 1,
        product="course.pro",
        order_id=f"GPA.7000-{n}",
    )
    note[KIND_OBJECTS[kind]].update(inner)
    if kind == "refund-review":
        note[KIND_OBJECTS[kind]]["pendingRefundToken"] = SECRET
    note.update(outer)
    body, headers = envelope(note, message_id=f"m-{n}", delivery="push", subscription="s")
    assert post(play, body, headers).status_code == 200
    assert_only_listed(look_up(admin, auth, "google", token), Source.GOOGLE)
    if kind == "refund-review":  # kept where it is needed: the request, never shown
        tokens = [
            r.pending_refund_token
            for r in RefundStore(store.client, timeout_s=store.deadline_s).recent(limit=500)
        ]
        assert SECRET in tokens


@settings(max_examples=25, deadline=None, suppress_health_check=HEALTH)
@given(transaction=extra_fields, data=extra_fields, n=st.integers(0, 10**6))
def test_no_field_outside_the_allow_list_reaches_apple_history_or_the_look_up(
    apple: Any,
    admin: Any,
    auth: dict[str, str],
    transaction: dict[str, Any],
    data: dict[str, Any],
    n: int,
) -> None:
    tx = f"{2000000000000000 + n}"
    pki = default_pki()
    signed_tx = pki.sign(
        transaction_payload(
            original_transaction_id=tx, signed_date=SIGNED_DATE_MS + n, **transaction
        )
    )
    payload = notification_payload(
        "CONSUMPTION_REQUEST", signed_transaction=signed_tx, signed_date=SIGNED_DATE_MS + n
    )
    payload["data"].update(data)
    signed = pki.sign(payload)
    answer = apple.post("/", json={"signedPayload": signed})
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert_only_listed(look_up(admin, auth, "apple-sandbox", tx), Source.APPLE)


def test_a_token_stored_before_the_allow_list_is_not_shown(
    admin: Any, auth: dict[str, str], store: Any
) -> None:
    """History written by an earlier version kept every review field: read back, the entry shows
    only what the list names."""
    event = LedgerEvent(
        store=StoreName.GOOGLE,
        purchase_id="tok-old",
        event_id="old-review",
        source=Source.GOOGLE,
        type="PENDING_REFUND_REVIEW",
        event_time_ms=1_700_000_000_000,
        effect=None,
        details={"orderId": "GPA.1"},
    )
    store.apply(event)
    (entry,) = store._client.collection("entitlements").document("google:tok-old").collections()
    (doc,) = list(entry.stream())
    doc.reference.update({"details.pendingRefundToken": SECRET, "details.x": "y"})
    shown = look_up(admin, auth, "google", "tok-old")
    assert shown["history"][0]["details"] == {"orderId": "GPA.1"}
    assert_only_listed(shown, Source.GOOGLE)


def test_the_pending_refund_token_reaches_the_request_not_history(
    play: Any, admin: Any, auth: dict[str, str], store: Any
) -> None:
    note = developer_notification(
        "refund-review",
        package=PACKAGE,
        token="tok-rr",
        event_time_ms=1_700_000_000_000,
        notification_type=None,
        product="course.pro",
        order_id="GPA.7100-1",
    )
    note["pendingRefundReviewNotification"]["pendingRefundToken"] = SECRET
    body, headers = envelope(note, message_id="rr-1", delivery="push", subscription="s")
    assert post(play, body, headers).status_code == 200
    (request,) = RefundStore(store.client, timeout_s=store.deadline_s).recent(limit=5)
    assert request.pending_refund_token == SECRET
    shown = look_up(admin, auth, "google", "tok-rr")
    assert shown["history"][0]["details"]["orderId"] == "GPA.7100-1"
    assert_only_listed(shown, Source.GOOGLE)
    raw = [d.to_dict() for d in store._client.collection_group("history").stream()]
    assert SECRET not in json.dumps(raw, default=str)  # not even in Firestore's history
