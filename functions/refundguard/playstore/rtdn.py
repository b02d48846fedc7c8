"""Google Play's DeveloperNotification (the decoded Pub/Sub ``data``) -> a ledger event. Pure.

Types and their effect on access follow Google's RTDN reference (the README's table):
a full voided purchase (refund) and SUBSCRIPTION_REVOKED revoke (a void's event id derives from
its order id, ``void_event_id``, so the reconciler's copy of it is a duplicate); purchases,
renewals, recoveries and restarts grant; expiry expires; on hold / paused suspend; a
quantity-based partial refund is recorded and access kept; informational types are recorded; a
test notification is acknowledged.
A pending refund review is recorded with its listed fields (``REVIEW_FIELDS``; the names of any
others, never their values); its ``pendingRefundToken`` travels beside the event, for the refund
request only, never in history. One that names an order but no purchase token comes back
``unkeyed`` (``judge.keyed`` finds the token; ``keyed`` builds the event).
What the Play Developer API adds is in ``verify``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Container, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import RefundGuardError, rejected
from ..http import parse_json_object
from ..model import LedgerEvent, Source, Status, StoreName, check_purchase_id
from .envelope import PubSubMessage, str_or_none

# subscriptionNotification.notificationType -> (name, status it sets; None = informational)
SUBSCRIPTION_TYPES: dict[int, tuple[str, Status | None]] = {
    1: ("SUBSCRIPTION_RECOVERED", Status.ACTIVE),
    2: ("SUBSCRIPTION_RENEWED", Status.ACTIVE),
    3: ("SUBSCRIPTION_CANCELED", None),  # access continues until expiry
    4: ("SUBSCRIPTION_PURCHASED", Status.ACTIVE),
    5: ("SUBSCRIPTION_ON_HOLD", Status.ON_HOLD),
    6: ("SUBSCRIPTION_IN_GRACE_PERIOD", Status.ACTIVE),
    7: ("SUBSCRIPTION_RESTARTED", Status.ACTIVE),
    8: ("SUBSCRIPTION_PRICE_CHANGE_CONFIRMED", None),
    9: ("SUBSCRIPTION_DEFERRED", Status.ACTIVE),
    10: ("SUBSCRIPTION_PAUSED", Status.PAUSED),
    11: ("SUBSCRIPTION_PAUSE_SCHEDULE_CHANGED", None),
    12: ("SUBSCRIPTION_REVOKED", Status.REVOKED),
    13: ("SUBSCRIPTION_EXPIRED", Status.EXPIRED),
    17: ("SUBSCRIPTION_ITEMS_CHANGED", None),
    18: ("SUBSCRIPTION_CANCELLATION_SCHEDULED", None),
    19: ("SUBSCRIPTION_PRICE_CHANGE_UPDATED", None),
    20: ("SUBSCRIPTION_PENDING_PURCHASE_CANCELED", Status.CANCELED),
    22: ("SUBSCRIPTION_PRICE_STEP_UP_CONSENT_UPDATED", None),
}

# oneTimeProductNotification.notificationType
ONE_TIME_TYPES: dict[int, tuple[str, Status | None]] = {
    1: ("ONE_TIME_PRODUCT_PURCHASED", Status.ACTIVE),
    2: ("ONE_TIME_PRODUCT_CANCELED", Status.CANCELED),  # a pending purchase was cancelled
}

REPLAY_ATTRIBUTE = "refundguard_replay_of"
REFUND_FULL = 1
REFUND_QUANTITY_PARTIAL = 2
PRODUCT_TYPES = {1: "subscription", 2: "one_time"}
MAX_PRODUCT_ID = 300


MAX_REVIEW_FIELDS = 24
MAX_REVIEW_TEXT = 500
#: The refund review's fields kept in history (allow-listed in ``history_details`` too).
REVIEW_FIELDS = (
    "orderId",
    "refundReason",
    "obfuscatedExternalAccountId",
    "obfuscatedExternalProfileId",
)
REVIEW_TOKEN = "pendingRefundToken"  # noqa: S105 - a field name, not a secret


@dataclass(frozen=True)
class Unkeyed:
    """An event whose purchase token is not in the notification (a refund review naming only an
    order): everything but the token."""

    order_id: str
    event_id: str
    type: str
    event_time_ms: int
    details: Mapping[str, Any]


@dataclass(frozen=True)
class PlayNotification:
    """A decoded notification: a ledger event, a test notification (``event`` and ``unkeyed``
    None), or an event still to be keyed by its purchase token (``unkeyed``)."""

    package_name: str
    type: str
    event: LedgerEvent | None
    kind: str = "testNotification"  # the notification's object, e.g. subscriptionNotification
    unkeyed: Unkeyed | None = None
    pending_refund_token: str | None = None  # a refund review's: for its request, never history


def void_event_id(order_id: str, *, partial: bool, time_ms: int) -> str:
    """The ledger event id of a voided order, the same from a notification and from
    ``voidedpurchases.list``: ``void:<order id>`` for a full refund (an order is fully voided
    once). A quantity-based partial refund can happen several times to one order, so its id adds
    the void's time (the notification's ``eventTimeMillis``, the row's ``voidedTimeMillis``)."""
    if partial:
        return f"void-partial:{order_id}:{time_ms}"
    return f"void:{order_id}"


def keyed(unkeyed: Unkeyed, purchase_token: str) -> LedgerEvent:
    """The event of an unkeyed notification, once its purchase token is known."""
    return LedgerEvent(
        store=StoreName.GOOGLE,
        purchase_id=check_purchase_id(purchase_token),
        event_id=unkeyed.event_id,
        source=Source.GOOGLE,
        type=unkeyed.type,
        event_time_ms=unkeyed.event_time_ms,
        effect=None,
        order_id=unkeyed.order_id,
        details=dict(unkeyed.details),
    )


def parse(message: PubSubMessage, allowed_packages: Container[str]) -> PlayNotification:
    """The notification in ``message``, for a package in ``allowed_packages`` (a list, or
    anything that answers ``in``: the tenants' claims)."""
    mid = message.message_id
    try:
        payload = parse_json_object(message.data, what="message data")
    except RefundGuardError as err:
        raise rejected(err.code, err.message, message_id=mid) from None

    package = payload.get("packageName")
    if not isinstance(package, str) or not package:
        raise rejected("missing_package", "notification has no packageName", message_id=mid)
    if package not in allowed_packages:
        raise rejected(
            "unknown_package",
            f"package {package!r} is not claimed by any tenant (nor in PLAY_PACKAGE_NAMES)",
            message_id=mid,
            package=package,
        )

    kinds = [k for k in _OBJECTS if isinstance(payload.get(k), dict)]
    if len(kinds) != 1:
        raise rejected(
            "bad_notification",
            "expected exactly one of " + ", ".join(_OBJECTS) + f"; found {kinds or 'none'}",
            message_id=mid,
            package=package,
        )
    key = kinds[0]
    body: dict[str, Any] = payload[key]
    if key == "testNotification":
        return PlayNotification(package, "TEST_NOTIFICATION", None)

    event_time = _event_time(payload.get("eventTimeMillis"), mid)
    base_details: dict[str, Any] = {
        "packageName": package,
        "publishTime": message.publish_time,
        "delivery": message.delivery,
    }
    name, effect, product, facts = _DECODERS[key](body, mid)
    details = {**base_details, **facts}

    # A message re-published from the dead-letter topic (scripts/replay_dead_letters.sh) carries
    # its original message id, so that a replay of something already applied is a duplicate.
    replay_of = message.attributes.get(REPLAY_ATTRIBUTE)
    event_id = replay_of if replay_of and len(replay_of) <= 200 else mid
    if event_id != mid:
        details["replayedAs"] = mid
    details = {k: v for k, v in details.items() if v is not None}
    order_id = str_or_none(details.get("orderId"))
    if key == "voidedPurchaseNotification" and order_id:
        # Keyed by the order, as the reconciler keys the same void read from voidedpurchases.list:
        # a void seen both ways (and every redelivery or replay) is one ledger event.
        details["messageId"] = mid
        partial = details.get("refundType") == "quantity_based_partial"
        event_id = void_event_id(order_id, partial=partial, time_ms=event_time)
    refund_token = _review_token(body) if key == "pendingRefundReviewNotification" else None
    if key == "pendingRefundReviewNotification" and not body.get("purchaseToken") and order_id:
        unkeyed = Unkeyed(order_id[:MAX_PRODUCT_ID], event_id, name, event_time, details)
        return PlayNotification(package, name, None, key, unkeyed, refund_token)
    token = _token(body.get("purchaseToken"), mid)
    try:
        event = LedgerEvent(
            store=StoreName.GOOGLE,
            purchase_id=token,
            event_id=event_id,
            source=Source.GOOGLE,
            type=name,
            event_time_ms=event_time,
            effect=effect,
            product_id=product,
            order_id=order_id,
            details=details,
        )
    except RefundGuardError as err:  # e.g. text Firestore cannot store
        raise rejected(err.code, err.message, message_id=mid, package=package) from None
    return PlayNotification(package, name, event, key, None, refund_token)


_Decoded = tuple[str, Status | None, str | None, dict[str, Any]]


def _subscription(body: dict[str, Any], mid: str) -> _Decoded:
    number = _int(body.get("notificationType"), "notificationType", mid)
    name, effect = SUBSCRIPTION_TYPES.get(number, (f"SUBSCRIPTION_NOTIFICATION_{number}", None))
    product = _product(body.get("subscriptionId"))
    return name, effect, product, {"notificationType": number, "subscriptionId": product}


def _one_time(body: dict[str, Any], mid: str) -> _Decoded:
    number = _int(body.get("notificationType"), "notificationType", mid)
    name, effect = ONE_TIME_TYPES.get(number, (f"ONE_TIME_PRODUCT_NOTIFICATION_{number}", None))
    product = _product(body.get("sku"))
    return name, effect, product, {"notificationType": number, "sku": product}


def _voided(body: dict[str, Any], mid: str) -> _Decoded:
    # refundType is absent from older notifications, which were all full refunds.
    refund_type = _int(body.get("refundType", REFUND_FULL), "refundType", mid)
    partial = refund_type == REFUND_QUANTITY_PARTIAL
    product_type = body.get("productType")
    if product_type is not None:
        number = _int(product_type, "productType", mid)
        product_type = PRODUCT_TYPES.get(number, number)
    facts = {
        "orderId": str_or_none(body.get("orderId")),
        "productType": product_type,
        "refundType": "quantity_based_partial" if partial else "full",
    }
    if partial:
        # Some units were refunded; the purchase itself stands. Visible in history, no revoke.
        return "VOIDED_PURCHASE_PARTIAL_REFUND", None, None, facts
    return "VOIDED_PURCHASE", Status.REVOKED, None, facts


def _pending_refund_review(body: dict[str, Any], mid: str) -> _Decoded:
    # Google asks whether to approve a refund (answer within 24 h with orders.reviewrefund):
    # recorded so that it is visible; access does not change until a refund is decided. Its
    # listed fields are kept as data (scalars as they are, anything else as cut JSON text); of
    # any other (the token, fields Google adds later) only the name, so a secret is never shown.
    facts: dict[str, Any] = {name: _as_data(body[name]) for name in REVIEW_FIELDS if name in body}
    others = sorted(
        name
        for name in list(body)[:MAX_REVIEW_FIELDS]
        if name not in REVIEW_FIELDS and name not in ("purchaseToken", REVIEW_TOKEN)
    )
    if others:
        facts["unlistedFields"] = ",".join(n[:100] for n in others)[:MAX_REVIEW_TEXT]
    return "PENDING_REFUND_REVIEW", None, None, facts


def _review_token(body: dict[str, Any]) -> str | None:
    token = body.get(REVIEW_TOKEN)
    return token if isinstance(token, str) and token and len(token) <= 4096 else None


def _as_data(value: Any) -> Any:
    """A field of unknown meaning as storable data: a scalar as it is (text cut), else JSON."""
    if isinstance(value, str):
        return value[:MAX_REVIEW_TEXT]
    if value is None or isinstance(value, bool):
        return value
    if (isinstance(value, int) and abs(value) < 2**63) or (
        isinstance(value, float) and math.isfinite(value)
    ):
        return value
    return json.dumps(value, ensure_ascii=True, default=str)[:MAX_REVIEW_TEXT]


_DECODERS = {
    "subscriptionNotification": _subscription,
    "oneTimeProductNotification": _one_time,
    "voidedPurchaseNotification": _voided,
    "pendingRefundReviewNotification": _pending_refund_review,
}

_OBJECTS = (
    "subscriptionNotification",
    "oneTimeProductNotification",
    "voidedPurchaseNotification",
    "pendingRefundReviewNotification",
    "testNotification",
)


def _event_time(value: Any, mid: str) -> int:
    # eventTimeMillis is a JSON string of an int64 (proto3 JSON); accept a number too.
    millis = None
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 15:
        millis = int(value)
    elif isinstance(value, int) and not isinstance(value, bool):
        millis = value
    if millis is None or not 0 < millis < 10**14:
        raise rejected(
            "bad_event_time", "eventTimeMillis must be milliseconds since the epoch", message_id=mid
        )
    return millis


def _token(value: Any, mid: str) -> str:
    if not isinstance(value, str) or not value:
        raise rejected(
            "missing_purchase_token", "notification has no purchaseToken", message_id=mid
        )
    try:
        return check_purchase_id(value)
    except RefundGuardError:
        raise rejected(
            "bad_purchase_token",
            "purchaseToken has unexpected characters or is dots only",
            message_id=mid,
        ) from None


def _int(value: Any, name: str, mid: str) -> int:
    """A small non-negative integer, as a JSON number or a string of ASCII digits."""
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 10:
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**31:
        raise rejected(
            "bad_notification", f"{name} must be a small non-negative integer", message_id=mid
        )
    return value


def _product(value: Any) -> str | None:
    return value[:MAX_PRODUCT_ID] if isinstance(value, str) and value else None
