"""The verifier's contract (statuses, one exception, cache), its settings, and the mapping from a
verified notification to a ledger event. No emulator needed."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from appstoreserverlibrary.models.Environment import Environment
from appstoreserverlibrary.signed_data_verifier import SignedDataVerifier
from cryptography.hazmat.primitives import serialization
from hypothesis import given, settings
from hypothesis import strategies as st
from refundguard.apple.settings import load_settings
from refundguard.appstore import notifications
from refundguard.appstore.config import APPLE_ROOT_CA_G3_SHA256, fingerprint
from refundguard.appstore.notifications import (
    EFFECTS,
    INFORMATIONAL,
    UnmappableNotification,
    map_notification,
)
from refundguard.appstore.verifier import (
    AppleVerificationError,
    AppleVerifier,
    VerificationStatus,
    VerifiedNotification,
)
from refundguard.config import ConfigError
from refundguard.errors import Kind, RefundGuardError
from refundguard.model import Source, Status, StoreName
from refundguard_dev.apple_pki import (
    APP_APPLE_ID,
    BUNDLE_ID,
    SIGNED_DATE_MS,
    ApplePKI,
    default_pki,
    generate_pki,
    make_leaf,
    notification_payload,
    sign_notification,
    transaction_payload,
)


def verifier(p: ApplePKI | None = None, **kw: Any) -> AppleVerifier:
    kw.setdefault("bundle_ids", [BUNDLE_ID])
    kw.setdefault("environments", ["Sandbox"])
    return AppleVerifier([(p or default_pki()).root_der], **kw)


# --------------------------------------------------------------------------- the exception


@pytest.mark.parametrize(
    ("token", "status"),
    [
        ("abc", VerificationStatus.MALFORMED),
        (sign_notification("REFUND", pki=generate_pki("Other")), VerificationStatus.INVALID_CHAIN),
        (
            sign_notification("REFUND", bundle_id="x.y", transaction={"bundleId": "x.y"}),
            VerificationStatus.INVALID_APP_IDENTIFIER,
        ),
        (
            sign_notification("REFUND", environment="Production"),
            VerificationStatus.INVALID_ENVIRONMENT,
        ),
        (
            sign_notification("REFUND", transaction={"bundleId": "com.other"}),
            VerificationStatus.INCONSISTENT_PAYLOAD,
        ),
    ],
    ids=["malformed", "foreign_root", "bundle", "environment", "inner_bundle"],
)
def test_failures_raise_one_exception_with_a_status(token: str, status: VerificationStatus) -> None:
    with pytest.raises(AppleVerificationError) as info:
        verifier(
            bundle_ids=[BUNDLE_ID, "x.y"]
            if status is VerificationStatus.INCONSISTENT_PAYLOAD
            else [BUNDLE_ID]
        ).verify_notification(token)
    err = info.value
    assert err.status is status and not err.retryable and not status.retryable
    assert (
        isinstance(err, RefundGuardError) and err.kind is Kind.REJECTED and err.http_status == 400
    )
    assert err.code == f"apple_{status.code}"
    assert token not in err.message


def test_valid_notification_returns_the_decoded_inner_data() -> None:
    token = sign_notification("DID_RENEW", renewal={})
    verified = verifier().verify_notification(token)
    assert verified.environment == "Sandbox" and verified.bundle_id == BUNDLE_ID
    assert verified.transaction is not None and verified.renewal is not None
    assert verified.transaction["originalTransactionId"] == "2000000000000001"


def test_chain_cache_is_bounded_and_reused() -> None:
    v = verifier(cache_size=2)
    base = default_pki()
    leaves = [
        ApplePKI(base.root, base.intermediate, make_leaf(base.intermediate)) for _ in range(3)
    ]
    for p in leaves:
        v.verify_jws(p.sign(transaction_payload()))
    assert v.cached_chains == 2
    token = leaves[-1].sign(transaction_payload())
    v.verify_jws(token)
    assert v.cached_chains == 2
    # a cached chain never skips the signature
    parts = token.split(".")
    bad_sig = base64.urlsafe_b64encode(bytes(64)).rstrip(b"=").decode()
    with pytest.raises(AppleVerificationError) as info:
        v.verify_jws(f"{parts[0]}.{parts[1]}.{bad_sig}")
    assert info.value.status is VerificationStatus.INVALID_SIGNATURE


def test_production_requires_app_apple_id() -> None:
    with pytest.raises(ValueError, match="app_apple_id"):
        verifier(environments=["Production"])


# --------------------------------------------------------------------------- stricter than Apple
# Deliberate differences, outside the differential corpus (they need a validly signed odd payload,
# which only the holder of an Apple signing key could produce): documented in docs/apple.md.


def _apple(environment: str = "Sandbox") -> SignedDataVerifier:
    return SignedDataVerifier(
        [default_pki().root_der],
        False,
        Environment(environment),
        BUNDLE_ID,
        APP_APPLE_ID if environment == "Production" else None,
    )


def test_stricter_than_apple_signed_date_must_be_a_number() -> None:
    token = default_pki().sign(transaction_payload(signedDate=str(SIGNED_DATE_MS)))
    _apple().verify_and_decode_signed_transaction(token)  # Apple's library accepts "digits"
    with pytest.raises(AppleVerificationError) as info:
        verifier().verify_jws(token)
    assert info.value.status is VerificationStatus.INVALID_CLAIMS


@pytest.mark.parametrize("app_apple_id", [str(APP_APPLE_ID), float(APP_APPLE_ID)])
def test_stricter_than_apple_app_apple_id_must_be_an_integer(app_apple_id: object) -> None:
    payload = notification_payload("TEST", environment="Production")
    payload["data"]["appAppleId"] = app_apple_id
    token = default_pki().sign(payload)
    _apple("Production").verify_and_decode_notification(token)  # Apple's converts to int
    with pytest.raises(AppleVerificationError) as info:
        verifier(environments=["Production"], app_apple_id=APP_APPLE_ID).verify_notification(token)
    assert info.value.status is VerificationStatus.INVALID_APP_IDENTIFIER


# --------------------------------------------------------------------------- settings


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_settings_read_der_and_pem_and_resolve_relative_paths(tmp_path: Path) -> None:
    p = default_pki()
    _write(tmp_path, "root.der", p.root_der)
    _write(tmp_path, "root.pem", p.root.pem)
    env = {
        "APPLE_BUNDLE_IDS": f" {BUNDLE_ID} ,com.b",
        "APPLE_ENVIRONMENTS": "Sandbox",
        "APPLE_ROOT_CERTS": "root.der, root.pem",
    }
    settings = load_settings(env, base_dir=tmp_path)
    assert settings.bundle_ids == (BUNDLE_ID, "com.b") and settings.environments == ("Sandbox",)
    assert len(settings.roots) == 2 and settings.app_apple_id is None
    assert (
        settings.verifier().verify_notification(sign_notification("TEST")).environment == "Sandbox"
    )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"APPLE_ENVIRONMENTS": "sandbox"}, "APPLE_ENVIRONMENTS"),
        ({"APPLE_ENVIRONMENTS": "Xcode"}, "APPLE_ENVIRONMENTS"),
        ({"APPLE_ENVIRONMENTS": "Production", "APPLE_APP_APPLE_ID": ""}, "APPLE_APP_APPLE_ID"),
        ({"APPLE_APP_APPLE_ID": "12a"}, "APPLE_APP_APPLE_ID"),
        ({"APPLE_ROOT_CERTS": ""}, "APPLE_ROOT_CERTS"),
        ({"APPLE_ROOT_CERTS": "missing.der"}, "cannot read"),
        ({"APPLE_ROOT_CERTS": "junk.der"}, "not a DER or PEM"),
        ({"APPLE_ROOT_CERTS": "leaf.der"}, "not a CA"),
        (
            {"APPLE_ENVIRONMENTS": "Production,Sandbox", "APPLE_APP_APPLE_ID": "1"},
            APPLE_ROOT_CA_G3_SHA256,
        ),
    ],
    ids=[
        "env_case",
        "xcode",
        "prod_without_app_id",
        "app_id_digits",
        "no_roots",
        "missing_root",
        "junk_root",
        "leaf_as_root",
        "prod_without_g3",
    ],
)
def test_bad_settings_refuse_to_start(tmp_path: Path, env: dict[str, str], message: str) -> None:
    _write(tmp_path, "root.der", default_pki().root_der)
    _write(tmp_path, "junk.der", b"not a certificate")
    _write(tmp_path, "leaf.der", default_pki().leaf.der)
    full = {
        "APPLE_BUNDLE_IDS": BUNDLE_ID,
        "APPLE_ENVIRONMENTS": "Sandbox",
        "APPLE_ROOT_CERTS": "root.der",
    } | env
    with pytest.raises(ConfigError, match=message):
        load_settings(full, base_dir=tmp_path)


def test_production_accepts_a_root_with_the_pinned_fingerprint(tmp_path: Path) -> None:
    p = default_pki()
    _write(tmp_path, "root.pem", p.root.pem)
    env = {
        "APPLE_BUNDLE_IDS": BUNDLE_ID,
        "APPLE_APP_APPLE_ID": str(APP_APPLE_ID),
        "APPLE_ROOT_CERTS": "root.pem",
    }
    settings = load_settings(
        env, base_dir=tmp_path, trusted_production_fingerprints={fingerprint(p.root.cert)}
    )
    assert settings.environments == ("Production",) and settings.app_apple_id == APP_APPLE_ID
    der = p.root.cert.public_bytes(serialization.Encoding.DER)
    assert len(fingerprint(p.root.cert)) == 64 and der == p.root_der


# --------------------------------------------------------------------------- mapping


def verified(
    notification_type: str,
    subtype: str | None = None,
    *,
    environment: str = "Sandbox",
    transaction: dict[str, Any] | None = None,
    **kw: Any,
) -> VerifiedNotification:
    payload = notification_payload(
        notification_type, subtype, environment=environment, notification_uuid="uuid-1", **kw
    )
    tx = None if transaction is None else transaction_payload(environment=environment) | transaction
    return VerifiedNotification(payload, BUNDLE_ID, environment, tx, None)


ALL_TYPES = sorted(set(EFFECTS) | set(INFORMATIONAL))


@pytest.mark.parametrize("notification_type", ALL_TYPES)
def test_every_type_maps_to_its_documented_effect(notification_type: str) -> None:
    mapped = map_notification(verified(notification_type, transaction={}))
    event = mapped.event
    assert event is not None
    assert event.effect is EFFECTS.get(notification_type)
    assert (event.store, event.source, event.purchase_id) == (
        StoreName.APPLE,
        Source.APPLE,
        "2000000000000001",
    )
    assert event.event_id == "uuid-1" and event.event_time_ms == SIGNED_DATE_MS
    assert event.user_id == "5b1f6a0e-1a2b-4c3d-8e9f-0a1b2c3d4e5f"
    assert event.environment == "Sandbox" and event.document_id == "apple-sandbox:2000000000000001"
    json.dumps(dict(event.details))  # JSON-safe


def test_documented_effects() -> None:
    assert {t for t, s in EFFECTS.items() if s is Status.REVOKED} == {"REFUND", "REVOKE"}
    assert {t for t, s in EFFECTS.items() if s is Status.EXPIRED} == {
        "EXPIRED",
        "GRACE_PERIOD_EXPIRED",
    }
    assert {t for t, s in EFFECTS.items() if s is Status.ACTIVE} == {
        "ONE_TIME_CHARGE",
        "SUBSCRIBED",
        "DID_RENEW",
        "REFUND_REVERSED",
    }


def test_grace_period_keeps_access_and_subtype_is_part_of_the_type() -> None:
    event = map_notification(verified("DID_FAIL_TO_RENEW", "GRACE_PERIOD", transaction={})).event
    assert event is not None and event.effect is Status.ACTIVE
    assert event.type == "DID_FAIL_TO_RENEW.GRACE_PERIOD"
    plain = map_notification(verified("DID_FAIL_TO_RENEW", transaction={})).event
    assert plain is not None and plain.effect is None


def test_revocation_facts_are_kept() -> None:
    event = map_notification(
        verified(
            "REVOKE",
            environment="Production",
            transaction={
                "revocationDate": 5,
                "revocationReason": 0,
                "revocationType": "FAMILY_REVOKE",
                "inAppOwnershipType": "FAMILY_SHARED",
            },
        )
    ).event
    assert event is not None and event.effect is Status.REVOKED
    assert event.document_id == "apple:2000000000000001"
    assert event.details["revocationType"] == "FAMILY_REVOKE"
    assert event.details["inAppOwnershipType"] == "FAMILY_SHARED"
    assert event.reason is not None and "revocationReason=0" in event.reason


ABSENT = object()
_ints = st.integers(min_value=-(2**63), max_value=2**63 - 1)
_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)  # storable text
_odd = st.one_of(st.none(), st.booleans(), _text, st.floats(allow_nan=False, allow_infinity=False))


@settings(max_examples=200, deadline=None)
@given(
    notification_type=st.sampled_from(["REFUND", "REVOKE"]),
    reason_code=st.one_of(st.just(ABSENT), st.sampled_from([0, 1]), _ints, _odd),
    kind=st.one_of(
        st.just(ABSENT),
        st.sampled_from(["REFUND_FULL", "REFUND_PRORATED", "FAMILY_REVOKE"]),
        _text,
        _odd,
    ),
    percentage=st.one_of(st.just(ABSENT), st.integers(0, 100_000), _odd),
)
def test_a_revocation_reason_names_only_what_apple_sent(
    notification_type: str, reason_code: Any, kind: Any, percentage: Any
) -> None:
    fields = {"revocationReason": reason_code, "revocationType": kind}
    fields["revocationPercentage"] = percentage
    transaction = {k: v for k, v in fields.items() if v is not ABSENT}
    event = map_notification(verified(notification_type, transaction=transaction)).event
    assert event is not None and event.reason is not None
    assert event.reason.startswith(f"{notification_type} by Apple")
    assert "None" not in event.reason.replace(str(kind), "")  # absent values are never shown
    for name, value in fields.items():
        sent = value is not ABSENT and value is not None and not isinstance(value, (bool, float))
        sent = sent and (name == "revocationType") == isinstance(value, str)
        assert (f"{name}=" in event.reason) is bool(sent and value != ""), (name, value)
        if sent and value != "":
            assert f"{name}={value}" in event.reason
    if all(f"{name}=" not in event.reason for name in fields):
        assert event.reason == f"{notification_type} by Apple (no reason given)"


@settings(max_examples=200, deadline=None)
@given(
    original=st.one_of(st.just(ABSENT), st.integers(1, 10**14), _ints, _odd),
    purchased=st.one_of(st.just(ABSENT), st.integers(1, 10**14), _ints, _odd),
)
def test_the_purchase_time_is_the_original_purchase_date_when_usable(
    original: Any, purchased: Any
) -> None:
    transaction = {"originalPurchaseDate": original, "purchaseDate": purchased}
    transaction = {k: v for k, v in transaction.items() if v is not ABSENT}
    base = transaction_payload()
    base.pop("originalPurchaseDate"), base.pop("purchaseDate")
    mapped = map_notification(
        VerifiedNotification(
            notification_payload("REFUND", environment="Sandbox", notification_uuid="uuid-1"),
            BUNDLE_ID,
            "Sandbox",
            base | transaction,
            None,
        )
    )  # never unmappable for an odd purchase date: the refund is what matters

    def usable(value: Any) -> bool:
        return type(value) is int and 0 < value <= 10**14

    expected = original if usable(original) else purchased if usable(purchased) else None
    assert mapped.event is not None and mapped.event.purchase_time_ms == expected


def test_unknown_type_is_recorded_and_test_is_acknowledged() -> None:
    future = map_notification(verified("SOMETHING_NEW", transaction={})).event
    assert future is not None and future.effect is None
    test = map_notification(verified("TEST"))
    assert test.event is None and test.acknowledge_reason


def test_summary_without_transaction_is_acknowledged() -> None:
    mapped = map_notification(verified("RENEWAL_EXTENSION", "SUMMARY"))
    assert mapped.event is None


@pytest.mark.parametrize(
    "change",
    [{"notificationUUID": None}, {"signedDate": "1"}, {"notificationType": None}],
    ids=["no_uuid", "signed_date_string", "no_type"],
)
def test_missing_fields_are_unmappable(change: dict[str, Any]) -> None:
    v = verified("REFUND", transaction={})
    v.payload.update(change)
    with pytest.raises(UnmappableNotification):
        map_notification(v)


def test_bad_original_transaction_id_is_unmappable() -> None:
    with pytest.raises(UnmappableNotification):
        map_notification(verified("REFUND", transaction={"originalTransactionId": "a/b"}))
    assert notifications.effect_of("REFUND", None) is Status.REVOKED
