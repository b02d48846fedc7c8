"""What an entitlement's history may hold in ``details``: an allow-list per source. A field a
source sends that is not listed never reaches history (``ledger.decide`` keeps only these when it
writes an entry, ``store.history`` only these when it reads one back), so a store's secret (Google's
``pendingRefundToken``) or a field of unknown meaning a store adds later is never stored or shown
by a look-up. Add a field here when a source starts sending one worth showing."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .model import Source

#: Written by ``ledger.decide`` for every source: an event dated in the future, ordered at receipt.
COMMON = frozenset({"stated_event_time_ms"})

#: Google Play: RTDN (``playstore/rtdn.py``), what the Play API adds (``playstore/verify.py``,
#: ``playstore/judge.py``) and the reconciler's voids (``reconciliation/plan.py``).
GOOGLE = frozenset(
    {
        # every notification
        "packageName",
        "publishTime",
        "delivery",
        "replayedAs",
        "messageId",
        "notificationType",
        # subscription / one-time
        "subscriptionId",
        "sku",
        # voided purchase (notification and voidedpurchases.list)
        "orderId",
        "productType",
        "refundType",
        "voidedSource",
        "voidedReason",
        "voidedQuantity",
        "voidedTimeMillis",
        "via",
        # pending refund review: never its pendingRefundToken (kept on the request only)
        "refundReason",
        "obfuscatedExternalAccountId",
        "obfuscatedExternalProfileId",
        "unlistedFields",
        # the Play Developer API's answer
        "api",
        "api.purchaseState",
        "api.subscriptionState",
        "api.latestOrderId",
        "api.state",
        "api.test",
        "api.error",
        "judgement",
    }
)

#: Apple: the fields of a notification's signed transaction, its ``data`` and its signed renewal
#: info that history keeps (``appstore/notifications.py`` copies these, from the endpoint or from
#: Apple's notification history; renewal fields as ``renewal.<name>``).
APPLE_TRANSACTION = (
    "transactionId",
    "productId",
    "type",
    "inAppOwnershipType",
    "purchaseDate",
    "expiresDate",
    "revocationDate",
    "revocationReason",
    "revocationType",
    "revocationPercentage",
    "transactionReason",
    "offerType",
    "quantity",
    "storefront",
)
APPLE_DATA = ("status", "consumptionRequestReason", "bundleId", "appAppleId", "bundleVersion")
APPLE_RENEWAL = (
    "autoRenewStatus",
    "autoRenewProductId",
    "expirationIntent",
    "isInBillingRetryPeriod",
    "gracePeriodExpiresDate",
)
APPLE = frozenset(
    {
        "notificationType",
        "subtype",
        *APPLE_TRANSACTION,
        *APPLE_DATA,
        *(f"renewal.{name}" for name in APPLE_RENEWAL),
    }
)

#: Admin actions (``adminapi/actions.py``) and order look-ups (``adminapi/orders.py``).
ADMIN = frozenset(
    {"idempotency_key", "package", "orderState", "refundTimeMs", "bundleId", "transactionId", "api"}
)

#: refundguard's own entries: what became of a refund request (``refunds.history_event``), with
#: the fields of the answer sent (never Google's token: it is not part of the decided answer).
REFUNDGUARD = frozenset(
    {
        "request_id",
        "kind",
        "order_id",
        "conflict",
        "customerConsented",
        "deliveryStatus",
        "sampleContentProvided",
        "consumptionPercentage",
        "refundPreference",
        "consumptionPercentageMilliunits",
        "rule",
    }
)

ALLOWED: Mapping[Source, frozenset[str]] = {
    Source.GOOGLE: GOOGLE | COMMON,
    Source.APPLE: APPLE | COMMON,
    Source.ADMIN: ADMIN | COMMON,
    Source.REFUNDGUARD: REFUNDGUARD | COMMON,
}


def allowed(source: Source, details: Mapping[str, Any]) -> dict[str, Any]:
    """``details`` without any field the source's allow-list does not name."""
    names = ALLOWED.get(source, COMMON)
    return {name: value for name, value in details.items() if name in names}
