"""Google Play Developer API resources shaped as the reference documents them (``Order``,
``ProductPurchaseV2``, ``SubscriptionPurchaseV2``, ``VoidedPurchase``): seeds for the stand-in."""

from __future__ import annotations

from typing import Any

PACKAGE = "com.example.courses"
PRODUCT = "course.premium"
MONTHLY = "premium.monthly"
ACCOUNT = "user-7f3a9c"  # obfuscatedExternalAccountId: the buyer, as the app set it


def money(units: int, currency: str = "USD") -> dict[str, Any]:
    return {"currencyCode": currency, "units": str(units), "nanos": 0}


def order(
    order_id: str,
    purchase_token: str,
    *,
    state: str = "PROCESSED",
    product_id: str = PRODUCT,
    subscription: bool = False,
    quantity: int = 1,
    refunded_at: str | None = None,
    refund_reason: str = "OTHER",
) -> dict[str, Any]:
    item: dict[str, Any] = {
        "productId": product_id,
        "productTitle": "Premium",
        "listingPrice": money(5),
        "total": money(5),
        "tax": money(0),
    }
    if subscription:
        item["subscriptionDetails"] = {"basePlanId": "monthly", "offerPhase": "BASE"}
    else:
        item["oneTimePurchaseDetails"] = {"quantity": quantity, "purchaseOptionId": "buy"}
    document: dict[str, Any] = {
        "orderId": order_id,
        "purchaseToken": purchase_token,
        "state": state,
        "createTime": "2026-10-01T10:00:00.123456789Z",
        "lastEventTime": refunded_at or "2026-10-01T10:00:05Z",
        "lineItems": [item],
        "total": money(5),
        "tax": money(0),
        "buyerAddress": {"buyerCountry": "US"},
        "salesChannel": "IN_APP",
        "orderHistory": {"processedEvent": {"eventTime": "2026-10-01T10:00:05Z"}},
    }
    if refunded_at:
        document["orderHistory"]["refundEvent"] = {
            "eventTime": refunded_at,
            "refundReason": refund_reason,
            "refundDetails": {"total": money(5), "tax": money(0)},
        }
    return document


def product_purchase(
    *,
    state: str = "PURCHASED",
    order_id: str | None = "GPA.3300-0000-0000-00001",
    account: str | None = ACCOUNT,
    product_id: str = PRODUCT,
    quantity: int = 1,
    refundable: int | None = None,
    test: bool = False,
) -> dict[str, Any]:
    document: dict[str, Any] = {
        "kind": "androidpublisher#productPurchaseV2",
        "purchaseStateContext": {"purchaseState": state},
        "productLineItem": [
            {
                "productId": product_id,
                "productOfferDetails": {
                    "purchaseOptionId": "buy",
                    "quantity": quantity,
                    "refundableQuantity": quantity if refundable is None else refundable,
                    "consumptionState": "CONSUMPTION_STATE_YET_TO_BE_CONSUMED",
                },
            }
        ],
        "regionCode": "US",
        "acknowledgementState": "ACKNOWLEDGEMENT_STATE_ACKNOWLEDGED",
    }
    if order_id:
        document["orderId"] = order_id
    if account:
        document["obfuscatedExternalAccountId"] = account
    if state == "PURCHASED":
        document["purchaseCompletionTime"] = "2026-10-01T10:00:05Z"
    if test:
        document["testPurchaseContext"] = {"fopType": "TEST"}
    return document


def subscription(
    *,
    state: str = "SUBSCRIPTION_STATE_ACTIVE",
    product_id: str = MONTHLY,
    latest_order_id: str | None = "GPA.3300-0000-0000-00002..1",
    expiry: str = "2026-12-01T10:00:00Z",
    account: str | None = ACCOUNT,
    canceled_by: str | None = None,
) -> dict[str, Any]:
    item: dict[str, Any] = {
        "productId": product_id,
        "expiryTime": expiry,
        "autoRenewingPlan": {"autoRenewEnabled": canceled_by is None},
        "offerDetails": {"basePlanId": "monthly"},
    }
    if latest_order_id:
        item["latestSuccessfulOrderId"] = latest_order_id
    document: dict[str, Any] = {
        "kind": "androidpublisher#subscriptionPurchaseV2",
        "regionCode": "US",
        "lineItems": [item],
        "startTime": "2026-09-01T10:00:00Z",
        "subscriptionState": state,
        "acknowledgementState": "ACKNOWLEDGEMENT_STATE_ACKNOWLEDGED",
        "etag": "etag-1",
    }
    if account:
        document["externalAccountIdentifiers"] = {"obfuscatedExternalAccountId": account}
    if canceled_by:
        document["canceledStateContext"] = {f"{canceled_by}InitiatedCancellation": {}}
    return document


def voided(
    purchase_token: str,
    order_id: str,
    *,
    voided_ms: int,
    purchase_ms: int | None = None,
    source: int = 0,
    reason: int = 1,
    quantity: int | None = None,
) -> dict[str, Any]:
    row: dict[str, Any] = {
        "kind": "androidpublisher#voidedPurchase",
        "purchaseToken": purchase_token,
        "orderId": order_id,
        "purchaseTimeMillis": str(purchase_ms or voided_ms - 86_400_000),
        "voidedTimeMillis": str(voided_ms),
        "voidedSource": source,
        "voidedReason": reason,
    }
    if quantity is not None:
        row["voidedQuantity"] = quantity
    return row
