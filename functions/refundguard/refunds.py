"""The stores' refund questions, pure (no I/O, no clock): a ``RefundRequest`` (Apple's
CONSUMPTION_REQUEST, Google's pending refund review) built from the ledger event that announced it,
what the platform reported about the purchase (``Consumption``), and the policy's verdict
(``judge``): answer with these fields, wait for data, refuse (unanswerable) or expire. The answers'
I/O is in ``reconcile.answers``; the documents in ``refund_store``. Contract: docs/refunds.md."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .model import LedgerEvent, Source, StoreName

APPLE_CONSUMPTION = "apple_consumption"
GOOGLE_REFUND_REVIEW = "google_refund_review"
#: Apple answers are "commonly quoted" to be due within 12 hours; Google's within 24 hours.
APPLE_WINDOW_MS = 12 * 3600 * 1000
GOOGLE_WINDOW_MS = 24 * 3600 * 1000
#: States of a request: answered, unanswerable and expired are final.
PENDING, ANSWERED, UNANSWERABLE, EXPIRED = "pending", "answered", "unanswerable", "expired"
FINAL = frozenset({ANSWERED, UNANSWERABLE, EXPIRED})
DELIVERED = "DELIVERED"
DELIVERY_STATUSES = frozenset(
    {
        "DELIVERED",
        "UNDELIVERED_QUALITY_ISSUE",
        "UNDELIVERED_WRONG_ITEM",
        "UNDELIVERED_SERVER_OUTAGE",
        "UNDELIVERED_OTHER",
    }
)


@dataclass(frozen=True)
class RefundRequest:
    """``refund_requests/{id}``: one question a store asked, and what became of it."""

    id: str
    kind: str  # APPLE_CONSUMPTION | GOOGLE_REFUND_REVIEW
    store: str  # google | apple
    environment: str
    entitlement_id: str  # the entitlement's document id
    purchase_id: str
    app: str  # package name or bundle id
    received_ms: int
    deadline_ms: int
    state: str = PENDING
    order_id: str | None = None  # Google's order (the path of orders.reviewrefund)
    transaction_id: str | None = None  # Apple's transaction (the path of the consumption PUT)
    pending_refund_token: str | None = None  # Google's token for the answer: never shown
    reason: str | None = None  # why it waits, or why it was not answered
    answer: Mapping[str, Any] = field(default_factory=dict)  # the body sent
    attempts: int = 0
    updated_ms: int = 0
    answered_ms: int | None = None

    def public(self) -> dict[str, Any]:
        """What admins see (``GET /refund-requests``): never the pending refund token."""
        from .serializer import ms_to_iso

        return {
            "id": self.id,
            "kind": self.kind,
            "store": self.store,
            "environment": self.environment,
            "entitlement_id": self.entitlement_id,
            "order_id": self.order_id,
            "transaction_id": self.transaction_id,
            "received_at": ms_to_iso(self.received_ms),
            "deadline_at": ms_to_iso(self.deadline_ms),
            "state": self.state,
            "reason": self.reason,
            "answer": dict(self.answer) or None,
            "attempts": self.attempts,
            "answered_at": ms_to_iso(self.answered_ms) if self.answered_ms else None,
        }


def request_for(event: LedgerEvent, app: str) -> RefundRequest | None:
    """The request a ledger event announces (Apple CONSUMPTION_REQUEST, Google
    PENDING_REFUND_REVIEW), or None for any other event."""
    details = event.details
    if event.source is Source.APPLE and event.type.split(".")[0] == "CONSUMPTION_REQUEST":
        transaction = details.get("transactionId")
        return RefundRequest(
            id=f"apple:{event.event_id}",
            kind=APPLE_CONSUMPTION,
            store=StoreName.APPLE.value,
            environment=event.environment,
            entitlement_id=event.document_id,
            purchase_id=event.purchase_id,
            app=app,
            received_ms=event.event_time_ms,
            deadline_ms=event.event_time_ms + APPLE_WINDOW_MS,
            transaction_id=transaction if isinstance(transaction, str) else event.purchase_id,
            reason=_text(details.get("consumptionRequestReason")),
        )
    if event.source is Source.GOOGLE and event.type == "PENDING_REFUND_REVIEW":
        token = details.get("pendingRefundToken")
        order = event.order_id or _text(details.get("orderId"))
        digest = hashlib.sha256(f"{order}\n{token}".encode()).hexdigest()[:24]
        return RefundRequest(
            id=f"google:{digest}",
            kind=GOOGLE_REFUND_REVIEW,
            store=StoreName.GOOGLE.value,
            environment=event.environment,
            entitlement_id=event.document_id,
            purchase_id=event.purchase_id,
            app=app,
            received_ms=event.event_time_ms,
            deadline_ms=event.event_time_ms + GOOGLE_WINDOW_MS,
            order_id=order,
            pending_refund_token=token if isinstance(token, str) and token else None,
            reason=_text(details.get("refundReason")),
        )
    return None


def _text(value: Any) -> str | None:
    return value[:200] if isinstance(value, str) and value else None


# ---------------------------------------------------------------------------------------- policy


@dataclass(frozen=True)
class Consumption:
    """``consumption/{entitlement id}``: what the platform reported (``POST
    /entitlements:consumption``). ``percentage_milliunits``: 0..100,000 (45.2% = 45,200)."""

    entitlement_id: str
    customer_consented: bool
    delivery_status: str
    sample_content_provided: bool
    percentage_milliunits: int | None = None
    actor: str | None = None
    updated_ms: int = 0


@dataclass(frozen=True)
class Policy:
    """``REFUND_REQUESTS`` (answer or off) and how the refund preference follows consumption:
    below ``grant_below`` percent consumed the creator prefers a refund, from ``decline_from`` on
    a decline, in between a prorated refund (Apple) or no preference (Google)."""

    answer: bool = False
    grant_below_percent: float = 10.0
    decline_from_percent: float = 50.0


@dataclass(frozen=True)
class Verdict:
    """``action``: ``answer`` (send ``body``), ``wait`` (stay pending: ``reason``), ``refuse``
    (final: unanswerable, ``reason``) or ``expire`` (final: the deadline passed)."""

    action: str
    reason: str | None = None
    body: Mapping[str, Any] = field(default_factory=dict)


def preference(store: str, consumption: Consumption, policy: Policy) -> str:
    """The refund preference the policy derives from what was consumed and delivered."""
    grant, decline, neutral = (
        ("GRANT_FULL", "DECLINE", "GRANT_PRORATED")
        if store == StoreName.APPLE.value
        else ("APPROVE", "DECLINE", "NEUTRAL")
    )
    if consumption.delivery_status != DELIVERED:
        return grant
    percent = (consumption.percentage_milliunits or 0) / 1000
    if percent < policy.grant_below_percent:
        return grant
    if percent >= policy.decline_from_percent:
        return decline
    return neutral


def judge(  # noqa: PLR0911 - one return per rule, in the order docs/refunds.md lists them
    request: RefundRequest,
    consumption: Consumption | None,
    policy: Policy,
    *,
    api_on: bool,
    now_ms: int,
) -> Verdict:
    """What to do with a pending request now. Never a guess: no data, no answer."""
    if now_ms >= request.deadline_ms:
        why = request.reason if request.state == PENDING and request.reason else "not answered"
        return Verdict("expire", f"the deadline passed ({why})")
    if not policy.answer:
        return Verdict("refuse", "policy_off: REFUND_REQUESTS is off")
    if not api_on:
        return Verdict("refuse", f"api_off: the {request.store} API is not configured")
    if request.kind == GOOGLE_REFUND_REVIEW and not request.pending_refund_token:
        return Verdict("refuse", "no_token: the notification carried no pendingRefundToken")
    if consumption is None or consumption.percentage_milliunits is None:
        return Verdict("wait", "no_usage_data: the platform has not reported consumption")
    if request.kind == APPLE_CONSUMPTION and not consumption.customer_consented:
        return Verdict("refuse", "no_consent: the customer did not consent to sharing data")
    pref = preference(request.store, consumption, policy)
    if request.kind == APPLE_CONSUMPTION:
        body: dict[str, Any] = {
            "customerConsented": True,
            "deliveryStatus": consumption.delivery_status,
            "sampleContentProvided": consumption.sample_content_provided,
            "consumptionPercentage": consumption.percentage_milliunits,
            "refundPreference": pref,
        }
    else:
        body = {
            "sampleContentProvided": consumption.sample_content_provided,
            "refundPreference": pref,
            "consumptionPercentageMilliunits": consumption.percentage_milliunits,
        }
    return Verdict("answer", None, body)


def history_event(
    request: RefundRequest, *, type_: str, now_ms: int, **details: Any
) -> LedgerEvent:
    """The informational ledger entry that records what became of a request in the entitlement's
    history (its id derives from the request and the outcome: recorded once)."""
    store = StoreName(request.store)
    facts = {"request_id": request.id, "kind": request.kind, "order_id": request.order_id}
    facts.update({k: v for k, v in details.items() if isinstance(v, (str, int, bool, float))})
    return LedgerEvent(
        store=store,
        purchase_id=request.purchase_id,
        event_id=f"{type_.lower()}:{request.id}",
        source=Source.REFUNDGUARD,
        type=type_,
        event_time_ms=now_ms,
        effect=None,
        environment=request.environment,
        order_id=request.order_id,
        reason=request.reason,
        details={k: v for k, v in facts.items() if v is not None},
    )
