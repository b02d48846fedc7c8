"""A verified App Store Server Notification V2 -> a ``LedgerEvent``. Pure: no I/O, no clock.

The entitlement is the transaction's ``originalTransactionId`` in the notification's environment
(``apple:<id>`` or ``apple-sandbox:<id>``: Sandbox and Production never mix); the event id is the
``notificationUUID`` (the same across Apple's retries); the event time is the notification's
``signedDate``; the purchase time is the transaction's ``originalPurchaseDate`` (else its
``purchaseDate``). What each type does to access (``EFFECTS``):

- ONE_TIME_CHARGE, SUBSCRIBED, DID_RENEW, REFUND_REVERSED -> active;
- DID_FAIL_TO_RENEW with subtype GRACE_PERIOD -> active (billing grace); without it -> recorded;
- REFUND, REVOKE -> revoked (``revocationDate``/``Reason``/``Type``/``Percentage`` kept in history,
  and said in words in the event's reason: only the values Apple sent);
- EXPIRED, GRACE_PERIOD_EXPIRED -> expired;
- every other type (REFUND_DECLINED, CONSUMPTION_REQUEST, DID_CHANGE_RENEWAL_STATUS, PRICE_INCREASE,
  ... and types Apple adds later) -> recorded in history, access unchanged;
- TEST, and notifications without a signed transaction (renewal-extension summaries, external
  purchase tokens, RESCIND_CONSENT's app data) -> acknowledged, nothing written (there is no
  purchase to key them by; the function's log line keeps what they say).

METADATA_UPDATE, MIGRATION and PRICE_CHANGE (Advanced Commerce) carry a transaction: recorded.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import Kind, RefundGuardError
from ..history_details import APPLE_DATA, APPLE_RENEWAL, APPLE_TRANSACTION
from ..model import MAX_EVENT_TIME_MS, LedgerEvent, Source, Status, StoreName

if TYPE_CHECKING:
    from .verifier import VerifiedNotification

#: notificationType -> the status it sets (absent: informational, recorded without changing access).
EFFECTS: dict[str, Status] = {
    "ONE_TIME_CHARGE": Status.ACTIVE,
    "SUBSCRIBED": Status.ACTIVE,
    "DID_RENEW": Status.ACTIVE,
    "REFUND_REVERSED": Status.ACTIVE,
    "REFUND": Status.REVOKED,
    "REVOKE": Status.REVOKED,
    "EXPIRED": Status.EXPIRED,
    "GRACE_PERIOD_EXPIRED": Status.EXPIRED,
}
#: (notificationType, subtype) pairs whose effect differs from the type's.
SUBTYPE_EFFECTS: dict[tuple[str, str], Status] = {
    ("DID_FAIL_TO_RENEW", "GRACE_PERIOD"): Status.ACTIVE,
}
#: Types documented as informational (recorded, access unchanged); unknown types are treated alike.
INFORMATIONAL = frozenset(
    {
        "REFUND_DECLINED",
        "CONSUMPTION_REQUEST",
        "DID_CHANGE_RENEWAL_STATUS",
        "DID_CHANGE_RENEWAL_PREF",
        "DID_FAIL_TO_RENEW",
        "PRICE_INCREASE",
        "RENEWAL_EXTENDED",
        "RENEWAL_EXTENSION",
        "OFFER_REDEEMED",
        "METADATA_UPDATE",
        "MIGRATION",
        "PRICE_CHANGE",
        "EXTERNAL_PURCHASE_TOKEN",
        "RESCIND_CONSENT",
    }
)
ACKNOWLEDGED_ONLY = frozenset({"TEST"})
#: Why a notification without a transaction is only acknowledged, by type.
ACKNOWLEDGE_REASONS = {
    "RESCIND_CONSENT": "consent rescinded for the app (appData): not a purchase, nothing to key by",
}

# Transaction / renewal / data fields kept in history when present (all JSON scalars): the
# allow-list's own (``history_details``), so that what is copied and what is kept are one list.
_TRANSACTION_DETAILS = APPLE_TRANSACTION
_DATA_DETAILS = APPLE_DATA
_RENEWAL_DETAILS = APPLE_RENEWAL


#: revocationReason -> words (Apple: 0 another reason, 1 an actual or perceived issue in the app).
_REVOCATION_REASONS = {0: "another reason", 1: "an actual or perceived issue in the app"}
#: revocationType -> words.
_REVOCATION_TYPES = {
    "REFUND_FULL": "full refund",
    "REFUND_PRORATED": "prorated refund",
    "FAMILY_REVOKE": "Family Sharing access withdrawn",
}


class UnmappableNotification(RefundGuardError):
    """A verified notification that lacks what a ledger event needs (kept in quarantine, 200)."""


@dataclass(frozen=True)
class Mapped:
    """What to do with a verified notification: apply ``event``, or acknowledge (``event`` None)."""

    notification_type: str
    subtype: str | None
    notification_uuid: str | None
    event: LedgerEvent | None
    acknowledge_reason: str | None = None


def _unmappable(message: str, uuid: object) -> UnmappableNotification:
    details = {"notification_uuid": uuid} if isinstance(uuid, str) and uuid else None
    return UnmappableNotification(Kind.REJECTED, "apple_unmappable", message, details=details)


def _scalars(
    source: Mapping[str, Any] | None, names: tuple[str, ...], prefix: str = ""
) -> dict[str, Any]:
    if not source:
        return {}
    return {
        f"{prefix}{name}": source[name]
        for name in names
        if isinstance(source.get(name), (str, int, float, bool))
    }


def effect_of(notification_type: str, subtype: str | None) -> Status | None:
    if subtype is not None and (notification_type, subtype) in SUBTYPE_EFFECTS:
        return SUBTYPE_EFFECTS[(notification_type, subtype)]
    return EFFECTS.get(notification_type)


def _millis(value: object) -> int | None:
    """A time in milliseconds the ledger can store, else None (never a reason to refuse)."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_EVENT_TIME_MS:
        return value
    return None


def revocation_reason(notification_type: str, transaction: Mapping[str, Any]) -> str:
    """A revocation in words, naming only what Apple sent, e.g. "REFUND by Apple: an actual or
    perceived issue in the app (revocationReason=1); full refund (revocationType=REFUND_FULL)"."""
    parts = []
    code = transaction.get("revocationReason")
    if isinstance(code, int) and not isinstance(code, bool):
        why = _REVOCATION_REASONS.get(code, "an unknown reason")
        parts.append(f"{why} (revocationReason={code})")
    kind = transaction.get("revocationType")
    if isinstance(kind, str) and kind:
        what = _REVOCATION_TYPES.get(kind, "an unknown type")
        parts.append(f"{what} (revocationType={kind})")
    percentage = transaction.get("revocationPercentage")
    if isinstance(percentage, int) and not isinstance(percentage, bool):
        parts.append(f"{percentage / 1000:g}% refunded (revocationPercentage={percentage})")
    said = f"{notification_type} by Apple"
    return f"{said}: {'; '.join(parts)}" if parts else f"{said} (no reason given)"


def map_notification(verified: VerifiedNotification) -> Mapped:
    """Map a verified notification. Raises ``UnmappableNotification`` when a field it needs is
    missing or of the wrong type (never for an unknown type: that is recorded)."""
    payload = verified.payload
    notification_type = payload.get("notificationType")
    subtype = payload.get("subtype")
    uuid = payload.get("notificationUUID")
    if not isinstance(notification_type, str) or not notification_type:
        raise _unmappable("notificationType is missing", uuid)
    if subtype is not None and not isinstance(subtype, str):
        raise _unmappable("subtype must be a string", uuid)
    if not isinstance(uuid, str) or not uuid:
        raise _unmappable("notificationUUID is missing", uuid)

    if notification_type in ACKNOWLEDGED_ONLY:
        return Mapped(notification_type, subtype, uuid, None, "test notification")
    transaction = verified.transaction
    if transaction is None:
        reason = ACKNOWLEDGE_REASONS.get(notification_type, "no signed transaction to key by")
        return Mapped(notification_type, subtype, uuid, None, reason)

    signed_date = payload.get("signedDate")
    if isinstance(signed_date, bool) or not isinstance(signed_date, int) or signed_date <= 0:
        raise _unmappable("signedDate must be a positive integer of milliseconds", uuid)
    original_id = transaction.get("originalTransactionId")
    if not isinstance(original_id, str) or not original_id:
        raise _unmappable("the transaction has no originalTransactionId", uuid)

    status = effect_of(notification_type, subtype)
    data = payload.get("data") if isinstance(payload.get("data"), dict) else None
    details: dict[str, Any] = {"notificationType": notification_type}
    if subtype:
        details["subtype"] = subtype
    details.update(_scalars(transaction, _TRANSACTION_DETAILS))
    details.update(_scalars(data, _DATA_DETAILS))
    details.update(_scalars(verified.renewal, _RENEWAL_DETAILS, prefix="renewal."))
    product_id = transaction.get("productId")
    user_id = transaction.get("appAccountToken")
    reason = None
    if status is Status.REVOKED:
        reason = revocation_reason(notification_type, transaction)
    purchased = _millis(transaction.get("originalPurchaseDate")) or _millis(
        transaction.get("purchaseDate")
    )
    try:
        event = LedgerEvent(
            store=StoreName.APPLE,
            purchase_id=original_id,
            event_id=uuid,
            source=Source.APPLE,
            type=f"{notification_type}.{subtype}" if subtype else notification_type,
            event_time_ms=signed_date,
            effect=status,
            environment=verified.environment,
            product_id=product_id if isinstance(product_id, str) else None,
            user_id=user_id if isinstance(user_id, str) and user_id else None,
            purchase_time_ms=purchased,
            reason=reason,
            details=details,
        )
    except RefundGuardError as exc:
        raise _unmappable(exc.message, uuid) from None
    return Mapped(notification_type, subtype, uuid, event)
