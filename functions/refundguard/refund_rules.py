"""Refund-request rules, pure: a tenant's ordered rules, each matching on store, product,
storefront (country), purchase age and consumption, and the answer the first that matches gives
(refund, decline, prorated, neutral, or don't answer). A condition on a fact that is not known
never matches. ``parse_rules`` refuses (400) a rule that could produce an answer a store refuses
(``prorated`` for Google). Contract: docs/refunds.md."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import rejected
from .model import StoreName

REFUND, DECLINE, PRORATED, NEUTRAL, SKIP = "refund", "decline", "prorated", "neutral", "skip"
ANSWERS = (REFUND, DECLINE, PRORATED, NEUTRAL, SKIP)
MAX_RULES = 50
MAX_VALUES = 100
_DAY_MS = 86_400_000

#: The store's refund preference for each answer (None: the answer sends no preference).
APPLE_PREFERENCE = {REFUND: "GRANT_FULL", DECLINE: "DECLINE", PRORATED: "GRANT_PRORATED"}
GOOGLE_PREFERENCE = {REFUND: "APPROVE", DECLINE: "DECLINE", NEUTRAL: "NEUTRAL"}


@dataclass(frozen=True)
class RefundRule:
    """One rule; an empty condition matches anything. Percentages are of the purchase consumed
    (0-100; ``min`` inclusive, ``below`` exclusive); ages in days since the purchase, at the time
    the store asked."""

    name: str
    answer: str
    stores: tuple[str, ...] = ()
    products: tuple[str, ...] = ()  # exact product ids, or a prefix ending in ``*``
    storefronts: tuple[str, ...] = ()  # Apple's storefront (``USA``), Google's region (``US``)
    min_age_days: float | None = None
    below_age_days: float | None = None
    min_consumed_percent: float | None = None
    below_consumed_percent: float | None = None


@dataclass(frozen=True)
class Facts:
    """What is known about a refund question when it is judged (None: not known)."""

    store: str
    product_id: str | None = None
    storefront: str | None = None
    purchase_time_ms: int | None = None
    asked_ms: int = 0
    consumed_percent: float | None = None

    @property
    def age_days(self) -> float | None:
        if self.purchase_time_ms is None or not self.asked_ms:
            return None
        return max(0.0, (self.asked_ms - self.purchase_time_ms) / _DAY_MS)


def matches(rule: RefundRule, facts: Facts) -> bool:
    if rule.stores and facts.store not in rule.stores:
        return False
    if rule.products and not _product_matches(rule.products, facts.product_id):
        return False
    if rule.storefronts and (facts.storefront or "").upper() not in rule.storefronts:
        return False
    if not _within(facts.age_days, rule.min_age_days, rule.below_age_days):
        return False
    return _within(facts.consumed_percent, rule.min_consumed_percent, rule.below_consumed_percent)


def first_match(rules: Sequence[RefundRule], facts: Facts) -> RefundRule | None:
    """The first rule (in order) whose every condition holds, or None."""
    return next((rule for rule in rules if matches(rule, facts)), None)


def _product_matches(products: tuple[str, ...], product_id: str | None) -> bool:
    if product_id is None:
        return False
    return any(
        product_id.startswith(p[:-1]) if p.endswith("*") else product_id == p for p in products
    )


def _within(value: float | None, low: float | None, below: float | None) -> bool:
    if low is None and below is None:
        return True
    if value is None:
        return False
    return (low is None or value >= low) and (below is None or value < below)


# ---------------------------------------------------------------------------- the JSON


_RULE_FIELDS = frozenset(
    {
        "name",
        "answer",
        "stores",
        "products",
        "storefronts",
        "min_age_days",
        "below_age_days",
        "min_consumed_percent",
        "below_consumed_percent",
    }
)


def parse_rules(value: Any) -> tuple[RefundRule, ...]:
    """A tenant's rules from JSON (a list, in order), each field checked; a 400 names the rule
    and the field."""
    if not isinstance(value, list) or len(value) > MAX_RULES:
        raise rejected("bad_rules", f"refund_rules must be a list of at most {MAX_RULES} rules")
    rules = [_parse_rule(item, index) for index, item in enumerate(value)]
    names = [rule.name for rule in rules]
    if len(set(names)) != len(names):
        raise rejected("bad_rules", "each rule needs its own name")
    return tuple(rules)


def _parse_rule(item: Any, index: int) -> RefundRule:
    where = f"refund_rules[{index}]"
    if not isinstance(item, dict):
        raise rejected("bad_rules", f"{where} must be an object")
    unknown = set(item) - _RULE_FIELDS
    if unknown:
        raise rejected("bad_rules", f"{where}: unknown field(s) {sorted(map(str, unknown))[:5]}")
    name = item.get("name")
    if not isinstance(name, str) or not 0 < len(name) <= 80 or not name.isprintable():
        raise rejected("bad_rules", f"{where}.name must be 1-80 printable characters")
    answer = item.get("answer")
    if answer not in ANSWERS:
        raise rejected("bad_rules", f"{where}.answer must be one of {', '.join(ANSWERS)}")
    stores = _texts(item, "stores", where, allowed={s.value for s in StoreName})
    if answer == PRORATED and stores != (StoreName.APPLE.value,):
        raise rejected(
            "bad_rules",
            f"{where}: prorated is Apple's answer only (Google has none): give it "
            '"stores": ["apple"]',
        )
    rule = RefundRule(
        name=name,
        answer=answer,
        stores=stores,
        products=_texts(item, "products", where),
        storefronts=tuple(s.upper() for s in _texts(item, "storefronts", where)),
        min_age_days=_number(item, "min_age_days", where, high=36_500),
        below_age_days=_number(item, "below_age_days", where, high=36_500),
        min_consumed_percent=_number(item, "min_consumed_percent", where, high=100),
        below_consumed_percent=_number(item, "below_consumed_percent", where, high=100.001),
    )
    if answer == PRORATED and not (
        (rule.min_consumed_percent or 0) > 0 and (rule.below_consumed_percent or 101) <= 100
    ):
        raise rejected(
            "bad_rules",
            f"{where}: Apple takes a prorated refund only for 0% < consumed < 100%: give it "
            "min_consumed_percent above 0 and below_consumed_percent of at most 100",
        )
    for low, below in (
        (rule.min_age_days, rule.below_age_days),
        (rule.min_consumed_percent, rule.below_consumed_percent),
    ):
        if low is not None and below is not None and low >= below:
            raise rejected("bad_rules", f"{where}: a min_* must be below its below_*")
    return rule


def _texts(
    item: Mapping[str, Any], name: str, where: str, *, allowed: set[str] | None = None
) -> tuple[str, ...]:
    value = item.get(name, [])
    if not isinstance(value, list) or len(value) > MAX_VALUES:
        raise rejected("bad_rules", f"{where}.{name} must be a list of at most {MAX_VALUES}")
    for text in value:
        if not isinstance(text, str) or not 0 < len(text) <= 200 or not text.isprintable():
            raise rejected("bad_rules", f"{where}.{name} holds something that is not an id")
        if allowed is not None and text not in allowed:
            raise rejected("bad_rules", f"{where}.{name} may hold {', '.join(sorted(allowed))}")
    return tuple(dict.fromkeys(value))


def _number(item: Mapping[str, Any], name: str, where: str, *, high: float) -> float | None:
    value = item.get(name)
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or not 0 <= value <= high
    ):
        raise rejected("bad_rules", f"{where}.{name} must be a number 0-{high:g}")
    return float(value)


def rules_json(rules: Sequence[RefundRule]) -> list[dict[str, Any]]:
    """The rules as the API shows them (empty conditions left out)."""
    out = []
    for rule in rules:
        fields = {k: v for k, v in rule.__dict__.items() if v not in ((), None)}
        out.append({k: list(v) if isinstance(v, tuple) else v for k, v in fields.items()})
    return out
