"""The stores' refund questions, pure (no I/O, no clock): a ``RefundRequest`` (Apple's
CONSUMPTION_REQUEST, Google's pending refund review) built from the ledger event that announced it,
what the platform reported about the purchase (``Consumption``), the answer each store accepts
(``apple_answer``, ``google_answer``: a body valid by the store's documented rules, or why none
can be given; ``policy_problems``: a policy that would make one invalid) and the policy's verdict
(``judge``): answer with these fields, wait for data, refuse (unanswerable) or expire. The
answers' I/O is in ``reconciliation.answers``; the documents in ``refund_store``. Contract:
docs/refunds.md."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import rejected
from .model import LedgerEvent, Source, StoreName, check_purchase_id, document_id, parse_namespace

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


@dataclass(frozen=True)
class Answer:
    """A body the store accepts (``body``), or why none can be given (``problem``, starting with
    its code: ``bad_usage_data``, ``no_consent``, ``unknown_product_type``, ``invalid_answer``)."""

    body: Mapping[str, Any] | None = None
    problem: str | None = None


def usage_problems(consumption: Consumption) -> list[str]:
    """What makes a report unusable (a document written directly may hold anything)."""
    problems = []
    if not isinstance(consumption.customer_consented, bool):
        problems.append("customer_consented must be a boolean")
    if not _hashable_text(consumption.delivery_status, DELIVERY_STATUSES):
        problems.append(f"delivery_status must be one of {', '.join(sorted(DELIVERY_STATUSES))}")
    if not isinstance(consumption.sample_content_provided, bool):
        problems.append("sample_content_provided must be a boolean")
    if not _is_milliunits(consumption.percentage_milliunits):
        problems.append("percentage_milliunits must be an integer 0..100000")
    return problems


def apple_problems(body: Mapping[str, Any], product_type: str | None) -> list[str]:
    """Apple's documented rules for a ConsumptionRequest (Send Consumption Information v2), one
    text per broken rule (Apple's 400 error named); ``product_type`` None: not known, so only what
    is valid for every type is (no ``consumptionPercentage``, no ``GRANT_PRORATED``)."""
    problems = []
    if set(body) - {*_APPLE_FIELDS}:
        problems.append(f"only {', '.join(_APPLE_FIELDS)} are sent")
    if body.get("customerConsented") is not True:
        problems.append("customerConsented must be true (InvalidCustomerConsentedError)")
    if not _hashable_text(body.get("deliveryStatus"), DELIVERY_STATUSES):
        problems.append("deliveryStatus is not one of Apple's values (InvalidDeliveryStatusError)")
    if not isinstance(body.get("sampleContentProvided"), bool):
        problems.append("sampleContentProvided must be a boolean (InvalidSampleContentProvided...)")
    pref = body.get("refundPreference")
    if pref is not None and not _hashable_text(pref, APPLE_PREFERENCES):
        problems.append("refundPreference is not one of Apple's (InvalidRefundPreferenceError)")
    return problems + _apple_percentage_problems(body, product_type)


def _apple_percentage_problems(body: Mapping[str, Any], product_type: str | None) -> list[str]:
    problems = []
    percent = body.get("consumptionPercentage")
    if "consumptionPercentage" in body:
        if not _is_milliunits(percent):
            problems.append(
                "consumptionPercentage must be an integer 0..100000 (ConsumptionPercentage"
                "OutOfRangeError)"
            )
        elif body.get("deliveryStatus") != DELIVERED and percent != 0:
            problems.append(
                "consumptionPercentage must be 0 or absent when deliveryStatus is not DELIVERED "
                "(UndeliveredConsumptionPercentageNonZeroError)"
            )
        if product_type == AUTO_RENEWABLE:
            problems.append(
                "no consumptionPercentage for an auto-renewable subscription: Apple works it out "
                "(ConsumptionPercentageAutoRenewableSubscriptionError)"
            )
        elif product_type is None:
            problems.append("no consumptionPercentage for a product of unknown type")
    if body.get("refundPreference") == "GRANT_PRORATED" and product_type != AUTO_RENEWABLE:
        if product_type is None:
            problems.append("no GRANT_PRORATED for a product of unknown type")
        elif not (_is_milliunits(percent) and 0 < percent < MAX_MILLIUNITS):
            problems.append(
                "GRANT_PRORATED needs 0 < consumptionPercentage < 100000 "
                "(ConsumptionPercentageOutOfRangeError)"
            )
    return problems


def google_problems(body: Mapping[str, Any]) -> list[str]:
    """Google's documented rules for ``orders.reviewrefund`` (what refundguard decides: the
    ``pendingRefundToken`` is added, and checked, by ``play.api.RefundReview``)."""
    problems = []
    if set(body) - {*_GOOGLE_FIELDS}:
        problems.append(f"only {', '.join(_GOOGLE_FIELDS)} are decided")
    if not isinstance(body.get("sampleContentProvided"), bool):
        problems.append("sampleContentProvided is required: a boolean")
    if not _hashable_text(body.get("refundPreference"), GOOGLE_PREFERENCES):
        problems.append("refundPreference is required: APPROVE, DECLINE or NEUTRAL")
    if "consumptionPercentageMilliunits" in body and not _is_milliunits(
        body["consumptionPercentageMilliunits"]
    ):
        problems.append("consumptionPercentageMilliunits must be an integer 0..100000")
    return problems


def apple_answer(consumption: Consumption, policy: Policy, product_type: str | None) -> Answer:
    """The ConsumptionRequest for Apple: the policy's preference, and a percentage only where Apple
    takes one (0 when not delivered; none for an auto-renewable subscription or an unknown type)."""
    problems = usage_problems(consumption)
    if problems:
        return Answer(problem="bad_usage_data: " + "; ".join(problems))
    if not consumption.customer_consented:
        return Answer(problem="no_consent: the customer did not consent to sharing data")
    known = product_type if product_type in APPLE_PRODUCT_TYPES else None
    pref = preference(StoreName.APPLE.value, consumption, policy)
    body: dict[str, Any] = {
        "customerConsented": True,
        "deliveryStatus": consumption.delivery_status,
        "sampleContentProvided": consumption.sample_content_provided,
    }
    if known is not None and known != AUTO_RENEWABLE:
        delivered = consumption.delivery_status == DELIVERED
        body["consumptionPercentage"] = consumption.percentage_milliunits if delivered else 0
    body["refundPreference"] = pref
    if known is None and pref == "GRANT_PRORATED":
        return Answer(
            problem=f"unknown_product_type: Apple takes GRANT_PRORATED only with the product's "
            f"type, and the request's is {str(product_type)[:60]!r}"
        )
    problems = apple_problems(body, known)
    if problems:
        return Answer(problem="invalid_answer: " + "; ".join(problems))
    return Answer(body)


def google_answer(consumption: Consumption, policy: Policy) -> Answer:
    """The ``orders.reviewrefund`` fields refundguard decides (the token is added when sent)."""
    problems = usage_problems(consumption)
    if problems:
        return Answer(problem="bad_usage_data: " + "; ".join(problems))
    body = {
        "sampleContentProvided": consumption.sample_content_provided,
        "refundPreference": preference(StoreName.GOOGLE.value, consumption, policy),
        "consumptionPercentageMilliunits": consumption.percentage_milliunits,
    }
    problems = google_problems(body)
    if problems:
        return Answer(problem="invalid_answer: " + "; ".join(problems))
    return Answer(body)


def policy_problems(policy: Policy) -> list[str]:
    """Why ``policy`` would make an answer a store refuses (empty: every report a platform can
    make gets a valid answer). The preference is constant between the thresholds and every rule
    but the ends of the range holds inside it, so the ends decide: 0% and 100% consumed, for every
    delivery status and product type."""
    thresholds = (policy.grant_below_percent, policy.decline_from_percent)
    if not all(isinstance(t, (int, float)) and math.isfinite(t) for t in thresholds):
        return ["the thresholds must be finite numbers"]
    refused: dict[tuple[int, str, str], list[str]] = {}
    for milliunits in (0, MAX_MILLIUNITS):
        for delivery in sorted(DELIVERY_STATUSES):
            facts = Consumption("policy-check", True, delivery, False, milliunits)
            answers = [(f"Apple {t}", apple_answer(facts, policy, t)) for t in APPLE_PRODUCT_TYPES]
            answers.append(("Google", google_answer(facts, policy)))
            for what, answer in sorted(answers, key=lambda pair: pair[0]):
                if answer.problem:
                    refused.setdefault((milliunits, delivery, answer.problem), []).append(what)
    return [
        f"{milliunits // 1000}% consumed, {delivery}: the answer would be refused for "
        f"{', '.join(whats)} ({problem})"
        for (milliunits, delivery, problem), whats in refused.items()
    ]


_APPLE_FIELDS = (
    "customerConsented",
    "deliveryStatus",
    "sampleContentProvided",
    "consumptionPercentage",
    "refundPreference",
)
_GOOGLE_FIELDS = ("sampleContentProvided", "refundPreference", "consumptionPercentageMilliunits")


def _is_milliunits(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_MILLIUNITS


def _hashable_text(value: Any, allowed: frozenset[str]) -> bool:
    return isinstance(value, str) and value in allowed


def judge(  # noqa: PLR0911 - one return per rule, in the order docs/refunds.md lists them
    request: RefundRequest,
    consumption: Consumption | None,
    policy: Policy,
    *,
    api_on: bool,
    now_ms: int,
) -> Verdict:
    """What to do with a pending request now. Never a guess: no data, no answer; never an answer
    the store's documented rules refuse."""
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
    if request.kind == APPLE_CONSUMPTION:
        answer = apple_answer(consumption, policy, request.product_type)
    else:
        answer = google_answer(consumption, policy)
    if answer.body is not None:
        return Verdict("answer", None, answer.body)
    assert answer.problem is not None
    if answer.problem.startswith("bad_usage_data"):
        return Verdict("wait", answer.problem[:300])  # the platform may report again
    return Verdict("refuse", answer.problem[:300])


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
