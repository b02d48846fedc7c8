"""The stores' refund questions, pure (no I/O, no clock): a ``RefundRequest`` (Apple's
CONSUMPTION_REQUEST, Google's pending refund review) built from the ledger event that announced it,
what the platform reported about the purchase (``Consumption``, checked by
``parse_consumption_report``), and the history entry of what became of a request. The answers
and the policy are in ``refund_answers``; their I/O in ``reconciliation.answers``; the documents
in ``refund_store``. Contract: docs/refunds.md."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import rejected
from .model import (
    DEFAULT_TENANT,
    LedgerEvent,
    Source,
    StoreName,
    check_purchase_id,
    document_id,
    parse_namespace,
)

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
MAX_MILLIUNITS = 100_000
#: Apple's transaction ``type`` values; an auto-renewable subscription's consumption Apple works
#: out itself (a ``consumptionPercentage`` for one is refused).
AUTO_RENEWABLE = "Auto-Renewable Subscription"
APPLE_PRODUCT_TYPES = frozenset(
    {AUTO_RENEWABLE, "Non-Renewing Subscription", "Consumable", "Non-Consumable"}
)
APPLE_PREFERENCES = frozenset({"DECLINE", "GRANT_FULL", "GRANT_PRORATED"})
GOOGLE_PREFERENCES = frozenset({"APPROVE", "DECLINE", "NEUTRAL"})


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
    product_type: str | None = None  # Apple's transaction type (APPLE_PRODUCT_TYPES), when known
    pending_refund_token: str | None = None  # Google's token for the answer: never shown
    reason: str | None = None  # why it waits, or why it was not answered
    answer: Mapping[str, Any] = field(default_factory=dict)  # the body sent
    attempts: int = 0
    updated_ms: int = 0
    answered_ms: int | None = None
    #: Whose app asked (the event's tenant); written before tenants: ``default``.
    tenant: str = DEFAULT_TENANT
    #: Where the purchase was made (Apple's storefront, e.g. ``USA``), when the store said.
    storefront: str | None = None
    #: The rule that decided the answer (``refund_rules``; ``thresholds`` when none matched).
    rule: str | None = None

    def public(self) -> dict[str, Any]:
        """What admins see (``GET /refund-requests``): never the pending refund token."""
        from .serializer import ms_to_iso

        return {
            "id": self.id,
            "tenant": self.tenant,
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
            "rule": self.rule,
            "attempts": self.attempts,
            "answered_at": ms_to_iso(self.answered_ms) if self.answered_ms else None,
        }


def request_for(
    event: LedgerEvent, app: str, *, pending_refund_token: str | None = None
) -> RefundRequest | None:
    """The request a ledger event announces (Apple CONSUMPTION_REQUEST, Google
    PENDING_REFUND_REVIEW, whose token comes beside the event: history never holds it), or None
    for any other event."""
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
            product_type=_text(details.get("type")),
            reason=_text(details.get("consumptionRequestReason")),
            tenant=event.tenant or DEFAULT_TENANT,
            storefront=_text(details.get("storefront")),
        )
    if event.source is Source.GOOGLE and event.type == "PENDING_REFUND_REVIEW":
        token = pending_refund_token
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
            tenant=event.tenant or DEFAULT_TENANT,
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


#: The fields of ``POST /entitlements:consumption`` (docs/refunds.md).
REPORT_FIELDS = (
    "store",
    "purchase_id",
    "customer_consented",
    "consumption_percentage",
    "delivery_status",
    "sample_content_provided",
)


@dataclass(frozen=True)
class ConsumptionReport:
    """A checked ``POST /entitlements:consumption`` body: the entitlement and what was reported
    (``percent`` 0-100 as given)."""

    store: StoreName
    environment: str
    purchase_id: str
    customer_consented: bool
    percent: int | float
    delivery_status: str
    sample_content_provided: bool

    @property
    def entitlement_id(self) -> str:
        return document_id(self.store, self.purchase_id, self.environment)

    def consumption(self, *, actor: str, now_ms: int) -> Consumption:
        return Consumption(
            entitlement_id=self.entitlement_id,
            customer_consented=self.customer_consented,
            delivery_status=self.delivery_status,
            sample_content_provided=self.sample_content_provided,
            percentage_milliunits=round(self.percent * 1000),
            actor=actor,
            updated_ms=now_ms,
        )


def parse_consumption_report(body: Mapping[str, Any]) -> ConsumptionReport:
    """Every field of a consumption report checked before anything is read or written: a value
    of any JSON type is either accepted or refused (REJECTED, a 400 with its code)."""
    unknown = sorted(str(k)[:40] for k in set(body) - set(REPORT_FIELDS))
    if unknown:
        raise rejected("unknown_field", f"unknown field(s): {', '.join(unknown)[:200]}")
    store_ns, purchase_id = body.get("store"), body.get("purchase_id")
    if not isinstance(store_ns, str) or not isinstance(purchase_id, str):
        raise rejected("missing_target", '"store" and "purchase_id" are required strings')
    store, environment = parse_namespace(store_ns)
    check_purchase_id(purchase_id)
    consented, sample = body.get("customer_consented"), body.get("sample_content_provided")
    if not isinstance(consented, bool) or not isinstance(sample, bool):
        raise rejected(
            "bad_consumption",
            '"customer_consented" and "sample_content_provided" are required booleans',
        )
    percent = body.get("consumption_percentage")
    if (
        isinstance(percent, bool)
        or not isinstance(percent, (int, float))
        or not 0 <= percent <= 100  # NaN fails too
    ):
        raise rejected("bad_consumption", '"consumption_percentage" must be a number 0-100')
    delivery = body.get("delivery_status", DELIVERED)
    if not isinstance(delivery, str) or delivery not in DELIVERY_STATUSES:
        raise rejected(
            "bad_consumption", f'"delivery_status" must be one of {sorted(DELIVERY_STATUSES)}'
        )
    return ConsumptionReport(store, environment, purchase_id, consented, percent, delivery, sample)


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
