"""Google Play Developer API (androidpublisher v3) answers as small dataclasses holding what
refundguard needs, and the pure functions that build them from JSON (``MalformedAnswer`` when a
required field is missing or of the wrong type; unknown fields and enum values are kept as data).

Field names follow the API reference (discovery revision 20261026): ``Order``,
``ProductPurchaseV2``, ``SubscriptionPurchaseV2``, ``VoidedPurchasesListResponse``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..storeapi import MalformedAnswer, answer_int
from ..storeapi import answer_object as _obj
from ..storeapi import answer_text as _str

# Order.state
ORDER_STATES = frozenset(
    {"PENDING", "PROCESSED", "CANCELED", "PENDING_REFUND", "PARTIALLY_REFUNDED", "REFUNDED"}
)
# ProductPurchaseV2.purchaseStateContext.purchaseState
PURCHASED, PENDING, CANCELLED = "PURCHASED", "PENDING", "CANCELLED"
# SubscriptionPurchaseV2.subscriptionState values that grant access
ACCESS_STATES = frozenset(
    {
        "SUBSCRIPTION_STATE_ACTIVE",
        "SUBSCRIPTION_STATE_IN_GRACE_PERIOD",
        "SUBSCRIPTION_STATE_CANCELED",  # cancelled: access until expiry
    }
)
VOIDED_SOURCES = {0: "user", 1: "developer", 2: "google"}
VOIDED_REASONS = {
    0: "other",
    1: "remorse",
    2: "not_received",
    3: "defective",
    4: "accidental_purchase",
    5: "fraud",
    6: "friendly_fraud",
    7: "chargeback",
    8: "unacknowledged_purchase",
}


def _opt_obj(doc: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = doc.get(name)
    return {} if value is None else _obj(value, name)


def _int(doc: Mapping[str, Any], name: str, *, required: bool = False) -> int | None:
    """An integer, or an int64 as proto3 JSON writes it (a decimal string)."""
    return answer_int(doc, name, required=required, decimal_strings=True)


def _time_ms(doc: Mapping[str, Any], name: str) -> int | None:
    """An RFC 3339 timestamp (``google-datetime``) as epoch milliseconds."""
    text = _str(doc, name)
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
        if moment.tzinfo is None:
            raise MalformedAnswer(f"{name} has no time zone")
        return int(moment.timestamp() * 1000)
    except (ValueError, OverflowError) as exc:
        if isinstance(exc, MalformedAnswer):
            raise
        raise MalformedAnswer(f"{name} is not an RFC 3339 timestamp") from None


def _list(doc: Mapping[str, Any], name: str) -> list[Mapping[str, Any]]:
    value = doc.get(name)
    if value is None:
        return []
    if not isinstance(value, list):
        raise MalformedAnswer(f"{name} must be a list")
    return [_obj(item, f"{name}[]") for item in value]


# ---------------------------------------------------------------------------------------- orders


@dataclass(frozen=True)
class OrderLineItem:
    product_id: str | None
    kind: str  # one_time | subscription | paid_app | unknown
    quantity: int | None  # one-time purchases only


@dataclass(frozen=True)
class Order:
    """``orders.get``: the purchase token behind a ``GPA.`` order id, and the order's state."""

    order_id: str
    purchase_token: str
    state: str  # ORDER_STATES, or a value newer than this code
    line_items: tuple[OrderLineItem, ...]
    create_time_ms: int | None
    last_event_time_ms: int | None
    refund_time_ms: int | None  # orderHistory.refundEvent.eventTime (full refund)
    refund_reason: str | None  # orderHistory.refundEvent.refundReason (OTHER | CHARGEBACK)
    raw: Mapping[str, Any] = field(repr=False, compare=False)

    @property
    def refunded(self) -> bool:
        return self.state == "REFUNDED"


def parse_order(doc: Any) -> Order:
    doc = _obj(doc, "order")
    items = []
    for item in _list(doc, "lineItems"):
        one_time = _opt_obj(item, "oneTimePurchaseDetails")
        kind = next(
            (
                name
                for key, name in (
                    ("oneTimePurchaseDetails", "one_time"),
                    ("subscriptionDetails", "subscription"),
                    ("paidAppDetails", "paid_app"),
                )
                if item.get(key) is not None
            ),
            "unknown",
        )
        items.append(OrderLineItem(_str(item, "productId"), kind, _int(one_time, "quantity")))
    refund = _opt_obj(_opt_obj(doc, "orderHistory"), "refundEvent")
    return Order(
        order_id=_str(doc, "orderId", required=True) or "",
        purchase_token=_str(doc, "purchaseToken", required=True) or "",
        state=_str(doc, "state", required=True) or "",
        line_items=tuple(items),
        create_time_ms=_time_ms(doc, "createTime"),
        last_event_time_ms=_time_ms(doc, "lastEventTime"),
        refund_time_ms=_time_ms(refund, "eventTime"),
        refund_reason=_str(refund, "refundReason"),
        raw=doc,
    )


def parse_orders(doc: Any) -> tuple[Order, ...]:
    """``orders.batchGet``: ``{"orders": [...]}`` (an empty answer may omit the list)."""
    return tuple(parse_order(item) for item in _list(_obj(doc, "answer"), "orders"))


# ---------------------------------------------------------------------------------------- one-time


@dataclass(frozen=True)
class ProductLineItem:
    product_id: str | None
    quantity: int | None
    refundable_quantity: int | None
    consumption_state: str | None


@dataclass(frozen=True)
class ProductPurchase:
    """``purchases.productsv2.getproductpurchasev2``: a one-time purchase."""

    purchase_state: str  # PURCHASED | PENDING | CANCELLED | PURCHASE_STATE_UNSPECIFIED | newer
    order_id: str | None  # absent when no order is associated (e.g. a pending purchase)
    obfuscated_account_id: str | None
    obfuscated_profile_id: str | None
    line_items: tuple[ProductLineItem, ...]
    purchase_completion_time_ms: int | None
    acknowledgement_state: str | None
    region_code: str | None
    test: bool
    raw: Mapping[str, Any] = field(repr=False, compare=False)

    @property
    def product_ids(self) -> tuple[str, ...]:
        return tuple(item.product_id for item in self.line_items if item.product_id)


def parse_product_purchase(doc: Any) -> ProductPurchase:
    doc = _obj(doc, "product purchase")
    state = _str(_opt_obj(doc, "purchaseStateContext"), "purchaseState", required=True) or ""
    items = []
    for item in _list(doc, "productLineItem"):
        offer = _opt_obj(item, "productOfferDetails")
        items.append(
            ProductLineItem(
                _str(item, "productId"),
                _int(offer, "quantity"),
                _int(offer, "refundableQuantity"),
                _str(offer, "consumptionState"),
            )
        )
    return ProductPurchase(
        purchase_state=state,
        order_id=_str(doc, "orderId"),
        obfuscated_account_id=_str(doc, "obfuscatedExternalAccountId"),
        obfuscated_profile_id=_str(doc, "obfuscatedExternalProfileId"),
        line_items=tuple(items),
        purchase_completion_time_ms=_time_ms(doc, "purchaseCompletionTime"),
        acknowledgement_state=_str(doc, "acknowledgementState"),
        region_code=_str(doc, "regionCode"),
        test=doc.get("testPurchaseContext") is not None,
        raw=doc,
    )


# ---------------------------------------------------------------------------------------- subs


@dataclass(frozen=True)
class SubscriptionLineItem:
    product_id: str | None
    expiry_time_ms: int | None
    latest_successful_order_id: str | None
    auto_renewing: bool  # autoRenewingPlan present (else prepaid)


@dataclass(frozen=True)
class SubscriptionPurchase:
    """``purchases.subscriptionsv2.get``: a subscription's current state and latest order."""

    state: str  # SubscriptionState enum name, or a newer value
    line_items: tuple[SubscriptionLineItem, ...]
    latest_order_id: str | None  # the latest line item's latestSuccessfulOrderId
    obfuscated_account_id: str | None
    obfuscated_profile_id: str | None
    linked_purchase_token: str | None
    start_time_ms: int | None
    acknowledgement_state: str | None
    canceled_by: str | None  # user | system | developer | replacement (canceledStateContext)
    test: bool
    raw: Mapping[str, Any] = field(repr=False, compare=False)

    @property
    def grants_access(self) -> bool:
        return self.state in ACCESS_STATES


_CANCELLATIONS = (
    ("userInitiatedCancellation", "user"),
    ("systemInitiatedCancellation", "system"),
    ("developerInitiatedCancellation", "developer"),
    ("replacementCancellation", "replacement"),
)


def parse_subscription_purchase(doc: Any) -> SubscriptionPurchase:
    doc = _obj(doc, "subscription purchase")
    state = _str(doc, "subscriptionState", required=True) or ""
    items = []
    for item in _list(doc, "lineItems"):
        items.append(
            SubscriptionLineItem(
                _str(item, "productId"),
                _time_ms(item, "expiryTime"),
                _str(item, "latestSuccessfulOrderId"),
                item.get("autoRenewingPlan") is not None,
            )
        )
    # The latest order: of the line item expiring last; the deprecated top-level latestOrderId
    # (no longer in the reference) only when no line item names one.
    dated = [i for i in items if i.latest_successful_order_id]
    dated.sort(key=lambda i: i.expiry_time_ms or 0)
    latest = dated[-1].latest_successful_order_id if dated else _str(doc, "latestOrderId")
    accounts = _opt_obj(doc, "externalAccountIdentifiers")
    canceled = _opt_obj(doc, "canceledStateContext")
    return SubscriptionPurchase(
        state=state,
        line_items=tuple(items),
        latest_order_id=latest,
        obfuscated_account_id=_str(accounts, "obfuscatedExternalAccountId"),
        obfuscated_profile_id=_str(accounts, "obfuscatedExternalProfileId"),
        linked_purchase_token=_str(doc, "linkedPurchaseToken"),
        start_time_ms=_time_ms(doc, "startTime"),
        acknowledgement_state=_str(doc, "acknowledgementState"),
        canceled_by=next((who for key, who in _CANCELLATIONS if key in canceled), None),
        test=doc.get("testPurchase") is not None,
        raw=doc,
    )


# ---------------------------------------------------------------------------------------- voided


@dataclass(frozen=True)
class VoidedPurchase:
    purchase_token: str
    order_id: str | None  # key rows on it with type=1: renewals share a purchase token
    purchase_time_ms: int | None
    voided_time_ms: int
    voided_source: str | None  # user | developer | google | source_N
    voided_reason: str | None  # VOIDED_REASONS value or reason_N
    voided_quantity: int | None  # quantity-based partial refunds only


@dataclass(frozen=True)
class VoidedPage:
    rows: tuple[VoidedPurchase, ...]
    next_token: str | None


def _named(number: int | None, names: Mapping[int, str], prefix: str) -> str | None:
    return None if number is None else names.get(number, f"{prefix}_{number}")


def parse_voided_page(doc: Any) -> VoidedPage:
    doc = _obj(doc, "voided purchases page")
    rows = tuple(
        VoidedPurchase(
            purchase_token=_str(row, "purchaseToken", required=True) or "",
            order_id=_str(row, "orderId"),
            purchase_time_ms=_int(row, "purchaseTimeMillis"),
            voided_time_ms=_int(row, "voidedTimeMillis", required=True) or 0,
            voided_source=_named(_int(row, "voidedSource"), VOIDED_SOURCES, "source"),
            voided_reason=_named(_int(row, "voidedReason"), VOIDED_REASONS, "reason"),
            voided_quantity=_int(row, "voidedQuantity"),
        )
        for row in _list(doc, "voidedPurchases")
    )
    next_token = _str(_opt_obj(doc, "tokenPagination"), "nextPageToken")
    return VoidedPage(rows, next_token)
