"""The answer each store accepts to a refund question, pure: ``apple_answer`` and
``google_answer`` build a body valid by the store's documented rules (``apple_problems``,
``google_problems``), or say why none can be given; ``policy_problems`` finds a policy that would
make one invalid (refused at start-up); ``judge`` gives the policy's verdict on a pending request:
answer with these fields, wait for data, refuse (unanswerable) or expire. Contract:
docs/refunds.md."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from .model import StoreName
from .refund_rules import APPLE_PREFERENCE, GOOGLE_PREFERENCE, SKIP, Facts, RefundRule, first_match
from .refunds import (
    APPLE_CONSUMPTION,
    APPLE_PREFERENCES,
    APPLE_PRODUCT_TYPES,
    AUTO_RENEWABLE,
    DELIVERED,
    DELIVERY_STATUSES,
    GOOGLE_PREFERENCES,
    GOOGLE_REFUND_REVIEW,
    MAX_MILLIUNITS,
    PENDING,
    Consumption,
    RefundRequest,
)


@dataclass(frozen=True)
class Policy:
    """``REFUND_REQUESTS`` (answer or off) and how the refund preference follows consumption:
    below ``grant_below`` percent consumed the creator prefers a refund, from ``decline_from`` on
    a decline, in between a prorated refund (Apple) or no preference (Google)."""

    answer: bool = False
    grant_below_percent: float = 10.0
    decline_from_percent: float = 50.0
    #: Ordered rules (``refund_rules``): the first that matches decides the preference; none
    #: matching, the two thresholds do.
    rules: tuple[RefundRule, ...] = ()


@dataclass(frozen=True)
class Verdict:
    """``action``: ``answer`` (send ``body``), ``wait`` (stay pending: ``reason``), ``refuse``
    (final: unanswerable, ``reason``) or ``expire`` (final: the deadline passed)."""

    action: str
    reason: str | None = None
    body: Mapping[str, Any] = field(default_factory=dict)
    #: The tenant's rule that decided the answer (``THRESHOLDS``: no rule matched, the policy's
    #: two thresholds did); None when nothing was decided (waiting, expired, off).
    rule: str | None = None


#: The rule name recorded when no rule matched and the thresholds decided.
THRESHOLDS = "thresholds"


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


def apple_answer(
    consumption: Consumption,
    policy: Policy,
    product_type: str | None,
    *,
    rule_answer: str | None = None,
) -> Answer:
    """The ConsumptionRequest for Apple: the policy's preference (or the matching rule's
    ``rule_answer``: ``neutral`` sends none), and a percentage only where Apple takes one (0 when
    not delivered; none for an auto-renewable subscription or an unknown type)."""
    problems = usage_problems(consumption)
    if problems:
        return Answer(problem="bad_usage_data: " + "; ".join(problems))
    if not consumption.customer_consented:
        return Answer(problem="no_consent: the customer did not consent to sharing data")
    known = product_type if product_type in APPLE_PRODUCT_TYPES else None
    pref: str | None = preference(StoreName.APPLE.value, consumption, policy)
    if rule_answer is not None:
        pref = APPLE_PREFERENCE.get(rule_answer)
    body: dict[str, Any] = {
        "customerConsented": True,
        "deliveryStatus": consumption.delivery_status,
        "sampleContentProvided": consumption.sample_content_provided,
    }
    if known is not None and known != AUTO_RENEWABLE:
        delivered = consumption.delivery_status == DELIVERED
        body["consumptionPercentage"] = consumption.percentage_milliunits if delivered else 0
    if pref is not None:
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


def google_answer(
    consumption: Consumption, policy: Policy, *, rule_answer: str | None = None
) -> Answer:
    """The ``orders.reviewrefund`` fields refundguard decides (the token is added when sent): the
    policy's preference, or the matching rule's ``rule_answer``."""
    problems = usage_problems(consumption)
    if problems:
        return Answer(problem="bad_usage_data: " + "; ".join(problems))
    pref = preference(StoreName.GOOGLE.value, consumption, policy)
    if rule_answer is not None:
        pref = GOOGLE_PREFERENCE.get(rule_answer, f"none for {rule_answer}")
    body = {
        "sampleContentProvided": consumption.sample_content_provided,
        "refundPreference": pref,
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
    facts: Facts | None = None,
) -> Verdict:
    """What to do with a pending request now: the first of the policy's rules that matches
    ``facts`` (with the consumption reported) decides the preference, else its thresholds.
    Never a guess: no data, no answer; never an answer the store's documented rules refuse."""
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
    rule, rules = None, policy.rules
    if rules and facts is not None:
        percent = consumption.percentage_milliunits
        known = replace(facts, consumed_percent=percent / 1000 if _is_milliunits(percent) else None)
        rule = first_match(rules, known)
    name = rule.name if rule is not None else THRESHOLDS
    if rule is not None and rule.answer == SKIP:
        return Verdict("refuse", f"rule_skip: rule {rule.name!r} says not to answer", rule=name)
    chosen = rule.answer if rule is not None else None
    if request.kind == APPLE_CONSUMPTION:
        answer = apple_answer(consumption, policy, request.product_type, rule_answer=chosen)
    else:
        answer = google_answer(consumption, policy, rule_answer=chosen)
    if answer.body is not None:
        return Verdict("answer", None, answer.body, rule=name)
    assert answer.problem is not None
    if answer.problem.startswith("bad_usage_data"):
        return Verdict("wait", answer.problem[:300])  # the platform may report again
    return Verdict("refuse", answer.problem[:300], rule=name)
