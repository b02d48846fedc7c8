"""What the Play Developer API says about a notification's purchase, combined with the notification
into the ledger event. Pure: ``check_for`` names the call an event needs, the other functions turn
the API's answer (or its failure) into the ``LedgerEvent`` to apply. The I/O is in ``function``.

- a purchase (grant) is granted only if the store says so: pending stays pending, cancelled is not
  granted, an unknown state is recorded without granting;
- a subscription void revokes when it voids the latest order or the subscription no longer
  entitles; a void of an older order is recorded (access kept); one that could not be judged
  revokes, and history says so;
- a revocation is never held back by the API: it is only enriched (product, buyer, purchase time).
"""

from __future__ import annotations

import enum
from dataclasses import replace
from typing import Any

from ..errors import RefundGuardError
from ..model import LedgerEvent, Status
from .resources import CANCELLED, PENDING, PURCHASED, ProductPurchase, SubscriptionPurchase

MAX_DETAIL_CHARS = 300

#: subscriptionState -> the status it means when it gives no access (else: recorded, not granted).
SUBSCRIPTION_STATES: dict[str, Status] = {
    "SUBSCRIPTION_STATE_PENDING": Status.PENDING,
    "SUBSCRIPTION_STATE_ON_HOLD": Status.ON_HOLD,
    "SUBSCRIPTION_STATE_PAUSED": Status.PAUSED,
    "SUBSCRIPTION_STATE_EXPIRED": Status.EXPIRED,
    "SUBSCRIPTION_STATE_PENDING_PURCHASE_CANCELED": Status.CANCELED,
}


class Check(enum.Enum):
    """The Play API call an event needs, and what its answer is for."""

    NONE = "none"
    PRODUCT_GRANT = "product_grant"  # productsv2: grant only if PURCHASED
    SUBSCRIPTION_GRANT = "subscription_grant"  # subscriptionsv2: grant only if it entitles
    SUBSCRIPTION_VOID = "subscription_void"  # subscriptionsv2: judge the void
    PRODUCT_ENRICH = "product_enrich"  # productsv2: a revocation, enriched when possible
    SUBSCRIPTION_ENRICH = "subscription_enrich"  # subscriptionsv2: likewise

    @property
    def grants(self) -> bool:
        return self in (Check.PRODUCT_GRANT, Check.SUBSCRIPTION_GRANT)

    @property
    def subscription(self) -> bool:
        return self.value.startswith("subscription")


def check_for(kind: str, event: LedgerEvent) -> Check:
    """Which call ``event`` needs; ``kind`` is the notification's object (``rtdn.parse``)."""
    if kind == "oneTimeProductNotification" and event.effect is Status.ACTIVE:
        return Check.PRODUCT_GRANT
    if kind == "subscriptionNotification":
        if event.effect is Status.ACTIVE:
            return Check.SUBSCRIPTION_GRANT
        if event.effect is Status.REVOKED:
            return Check.SUBSCRIPTION_ENRICH
    if kind == "voidedPurchaseNotification" and event.effect is Status.REVOKED:
        if event.details.get("productType") == "subscription":
            return Check.SUBSCRIPTION_VOID
        return Check.PRODUCT_ENRICH
    return Check.NONE


def _text(value: Any) -> str | None:
    return value[:MAX_DETAIL_CHARS] if isinstance(value, str) and value else None


def _with(event: LedgerEvent, **changes: Any) -> LedgerEvent:
    """``event`` with ``changes``. When the API's text cannot be stored (lone surrogates...), its
    facts are left out but the decision (effect, and that there is a reason) is kept: the event as
    it came is always storable."""
    details = {k: v for k, v in changes.pop("details", {}).items() if v is not None}
    try:
        return replace(event, details={**event.details, **details}, **changes)
    except RefundGuardError:
        kept: dict[str, Any] = {}
        if "effect" in changes:
            kept["effect"] = changes["effect"]
        if changes.get("reason"):
            kept["reason"] = "decided on a Play API answer whose text cannot be stored"
        return replace(event, details={**event.details, "api": "answer not storable"}, **kept)


def _facts(
    event: LedgerEvent,
    *,
    order_id: str | None,
    product_id: str | None,
    user_id: str | None,
    purchase_time_ms: int | None,
) -> dict[str, Any]:
    """The LedgerEvent fields an API answer fills in (the notification's own values first)."""
    time_ms = purchase_time_ms if purchase_time_ms and purchase_time_ms > 0 else None
    return {
        "order_id": event.order_id or _text(order_id),
        "product_id": event.product_id or _text(product_id),
        "user_id": event.user_id or _text(user_id),
        "purchase_time_ms": event.purchase_time_ms or time_ms,
    }


def _product_facts(event: LedgerEvent, purchase: ProductPurchase) -> dict[str, Any]:
    return _facts(
        event,
        order_id=purchase.order_id,
        product_id=next(iter(purchase.product_ids), None),
        user_id=purchase.obfuscated_account_id,
        purchase_time_ms=purchase.purchase_completion_time_ms,
    )


def _subscription_facts(event: LedgerEvent, sub: SubscriptionPurchase) -> dict[str, Any]:
    product = next((item.product_id for item in sub.line_items if item.product_id), None)
    return _facts(
        event,
        order_id=sub.latest_order_id,
        product_id=product,
        user_id=sub.obfuscated_account_id,
        purchase_time_ms=sub.start_time_ms,
    )


# ---------------------------------------------------------------------------------------- grants


def product_grant(event: LedgerEvent, purchase: ProductPurchase) -> LedgerEvent:
    """ONE_TIME_PRODUCT_PURCHASED and what productsv2 says: PURCHASED grants, PENDING is recorded
    as pending (no access), CANCELLED as cancelled, any other state recorded without granting."""
    state = purchase.purchase_state
    details = {"api.purchaseState": _text(state), "api.test": purchase.test or None}
    facts = _product_facts(event, purchase)
    if state == PURCHASED:
        return _with(event, **facts, details=details)
    if state == PENDING:
        reason = "payment pending: not granted until Google says PURCHASED"
        return _with(event, **facts, effect=Status.PENDING, reason=reason, details=details)
    if state == CANCELLED:
        reason = "the Play API says this purchase was cancelled: not granted"
        return _with(event, **facts, effect=Status.CANCELED, reason=reason, details=details)
    reason = f"the Play API answered purchase state {_text(state)!r}: not granted"
    return _with(event, **facts, effect=None, reason=reason, details=details)


def subscription_grant(event: LedgerEvent, sub: SubscriptionPurchase) -> LedgerEvent:
    """A purchase, renewal, recovery or restart and what subscriptionsv2 says: granted only while
    the subscription entitles; a known state without access sets its status; others are recorded."""
    details = {"api.subscriptionState": _text(sub.state), "api.latestOrderId": sub.latest_order_id}
    details["api.test"] = sub.test or None
    facts = _subscription_facts(event, sub)
    if sub.grants_access:
        return _with(event, **facts, details=details)
    status = SUBSCRIPTION_STATES.get(sub.state)
    reason = f"the Play API says {_text(sub.state)}: not granted"
    return _with(event, **facts, effect=status, reason=reason, details=details)


def not_verified(event: LedgerEvent, err: RefundGuardError) -> LedgerEvent:
    """A purchase the Play API does not know (404, 410, 400 for this token): recorded, not
    granted. A retry would get the same answer."""
    reason = f"the Play API does not know this purchase ({err.code}): not granted"
    return _with(event, effect=None, reason=reason, details={"api.error": err.code})


# ---------------------------------------------------------------------------------------- voids


def subscription_void(event: LedgerEvent, sub: SubscriptionPurchase) -> LedgerEvent:
    """A voided subscription order: revokes when it is the latest order, when the order is not
    named, or when the subscription no longer entitles; a void of an earlier order (a past
    renewal) is recorded with the reason, access kept."""
    latest = sub.latest_order_id
    details = {"api.subscriptionState": _text(sub.state), "api.latestOrderId": latest}
    facts = _subscription_facts(event, sub)
    facts["order_id"] = event.order_id  # the voided order, not the latest one
    if event.order_id is None:
        judgement, reason = "no_order", "revoked: the void names no order"
    elif not sub.grants_access:
        judgement = "not_entitled"
        reason = f"revoked: the subscription no longer entitles ({_text(sub.state)})"
    elif latest is None:
        judgement, reason = "latest_unknown", "revoked: the Play API names no latest order"
    elif event.order_id != latest:
        details["judgement"] = "earlier_order"
        reason = (
            f"an earlier order ({event.order_id}) was voided; the latest order ({latest}) still "
            "entitles: access kept"
        )
        return _with(event, **facts, effect=None, reason=reason, details=details)
    else:
        judgement, reason = "latest_order", "revoked: the latest order was voided"
    details["judgement"] = judgement
    return _with(event, **facts, reason=reason, details=details)


def unjudged_void(event: LedgerEvent, err: RefundGuardError) -> LedgerEvent:
    """A subscription void whose judgement failed: it revokes at once, and history says why."""
    reason = f"revoked without judgement: the Play API could not be asked ({err.code})"
    return _with(event, reason=reason, details={"judgement": "unjudged", "api.error": err.code})


def enriched(event: LedgerEvent, answer: ProductPurchase | SubscriptionPurchase) -> LedgerEvent:
    """A revocation with what the API adds (product, buyer, purchase time); its effect is kept."""
    if isinstance(answer, ProductPurchase):
        facts = _product_facts(event, answer)
        state = answer.purchase_state
    else:
        facts = _subscription_facts(event, answer)
        facts["order_id"] = event.order_id or facts["order_id"]
        state = answer.state
    return _with(event, **facts, details={"api.state": _text(state)})


def not_enriched(event: LedgerEvent, err: RefundGuardError) -> LedgerEvent:
    return _with(event, details={"api.error": err.code})
