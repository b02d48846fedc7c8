"""A tenant's refund-request rules: read field by field (anything else a 400), the first match
decides, a condition on an unknown fact never matches, and whatever rules a tenant writes, an
answer refundguard sends is one the store's documented rules accept."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from refundguard.errors import Kind, RefundGuardError
from refundguard.refund_answers import (
    THRESHOLDS,
    Policy,
    apple_problems,
    google_problems,
    judge,
)
from refundguard.refund_rules import (
    ANSWERS,
    Facts,
    RefundRule,
    first_match,
    parse_rules,
    rules_json,
)
from refundguard.refunds import (
    APPLE_CONSUMPTION,
    APPLE_PRODUCT_TYPES,
    DELIVERY_STATUSES,
    GOOGLE_REFUND_REVIEW,
    Consumption,
    RefundRequest,
)

DAY = 86_400_000
ASKED = 1_800_000_000_000
POLICY = Policy(answer=True)


def refused(value: Any) -> str:
    with pytest.raises(RefundGuardError) as info:
        parse_rules(value)
    assert info.value.kind is Kind.REJECTED
    return info.value.message


@pytest.mark.parametrize(
    ("rules", "says"),
    [
        ("x", "a list"),
        ([{"answer": "refund"}], "name"),
        ([{"name": "a", "answer": "maybe"}], "answer must be one of"),
        ([{"name": "a", "answer": "refund", "when": 1}], "unknown field"),
        ([{"name": "a", "answer": "refund", "stores": ["amazon"]}], "may hold"),
        ([{"name": "a", "answer": "prorated"}], "Apple's answer only"),
        ([{"name": "a", "answer": "prorated", "stores": ["apple"]}], "0% < consumed < 100%"),
        ([{"name": "a", "answer": "refund", "min_age_days": -1}], "must be a number"),
        ([{"name": "a", "answer": "refund", "min_age_days": float("nan")}], "must be a number"),
        ([{"name": "a", "answer": "refund", "min_age_days": True}], "must be a number"),
        ([{"name": "a", "answer": "refund", "min_age_days": 5, "below_age_days": 5}], "min_*"),
        ([{"name": "a", "answer": "refund"}, {"name": "a", "answer": "decline"}], "own name"),
        ([{"name": "a", "answer": "refund", "products": [""]}], "not an id"),
    ],
)
def test_a_bad_rule_is_refused_naming_what(rules: Any, says: str) -> None:
    assert says in refused(rules)


def test_the_first_matching_rule_decides_and_unknown_facts_match_no_condition() -> None:
    rules = parse_rules(
        [
            {"name": "courses-early", "answer": "refund", "products": ["course.*"],
             "below_age_days": 3},
            {"name": "german-store", "answer": "decline", "storefronts": ["deu"]},
            {"name": "heavy-use", "answer": "decline", "min_consumed_percent": 50},
            {"name": "rest", "answer": "neutral"},
        ]
    )  # fmt: skip
    early = Facts("google", "course.piano", None, ASKED - DAY, ASKED, 90)
    assert first_match(rules, early).name == "courses-early"
    late = Facts("google", "course.piano", "DEU", ASKED - 10 * DAY, ASKED, 10)
    assert first_match(rules, late).name == "german-store"
    unknown_age = Facts("apple", "course.piano", None, None, ASKED, 10)
    assert first_match(rules, unknown_age).name == "rest"  # no age: "courses-early" cannot hold
    unknown_use = Facts("apple", "book", None, None, ASKED, None)
    assert first_match(rules, unknown_use).name == "rest"
    assert rules_json(rules)[1] == {
        "name": "german-store", "answer": "decline", "storefronts": ["DEU"]
    }  # fmt: skip


def request(kind: str, product_type: str | None) -> RefundRequest:
    return RefundRequest(
        id="r-1",
        kind=kind,
        store="apple" if kind == APPLE_CONSUMPTION else "google",
        environment="Production",
        entitlement_id="x:1",
        purchase_id="1",
        app="com.a",
        received_ms=ASKED,
        deadline_ms=ASKED + DAY,
        product_type=product_type,
        pending_refund_token="t" if kind == GOOGLE_REFUND_REVIEW else None,
    )


def test_the_rule_that_answered_is_recorded_and_skip_answers_nothing() -> None:
    rules = parse_rules(
        [{"name": "vip", "answer": "skip", "products": ["vip"]},
         {"name": "small", "answer": "refund", "below_consumed_percent": 5}]
    )  # fmt: skip
    ruled = Policy(answer=True, rules=rules)
    used = Consumption("x:1", True, "DELIVERED", False, 2_000)
    req = request(APPLE_CONSUMPTION, "Consumable")
    course, vip_product = Facts("apple", "course"), Facts("apple", "vip")
    verdict = judge(req, used, ruled, api_on=True, now_ms=ASKED, facts=course)
    assert (verdict.action, verdict.rule) == ("answer", "small")
    assert verdict.body["refundPreference"] == "GRANT_FULL"
    vip = judge(req, used, ruled, api_on=True, now_ms=ASKED, facts=vip_product)
    assert (vip.action, vip.rule) == ("refuse", "vip") and "rule_skip" in (vip.reason or "")
    heavy = Consumption("x:1", True, "DELIVERED", False, 90_000)
    fallback = judge(req, heavy, ruled, api_on=True, now_ms=ASKED, facts=course)
    assert (fallback.action, fallback.rule) == ("answer", THRESHOLDS)
    assert fallback.body["refundPreference"] == "DECLINE"


RULE = st.fixed_dictionaries(
    {"name": st.uuids().map(str), "answer": st.sampled_from(ANSWERS)},
    optional={
        "stores": st.lists(st.sampled_from(["apple", "google"]), max_size=2, unique=True),
        "products": st.lists(st.sampled_from(["a", "b", "c*"]), max_size=2),
        "min_consumed_percent": st.floats(0, 100),
        "below_consumed_percent": st.floats(0, 100),
        "min_age_days": st.floats(0, 30),
    },
)


@settings(max_examples=400, deadline=None)
@given(
    rules=st.lists(RULE, max_size=4),
    kind=st.sampled_from([APPLE_CONSUMPTION, GOOGLE_REFUND_REVIEW]),
    product_type=st.sampled_from([*APPLE_PRODUCT_TYPES, None, "Other"]),
    product=st.sampled_from(["a", "b", "cat", None]),
    delivery=st.sampled_from(sorted(DELIVERY_STATUSES)),
    milliunits=st.integers(0, 100_000),
    age_days=st.one_of(st.none(), st.floats(0, 60)),
)
def test_whatever_the_rules_every_answer_sent_is_one_the_store_accepts(
    rules: list[dict[str, Any]],
    kind: str,
    product_type: str | None,
    product: str | None,
    delivery: str,
    milliunits: int,
    age_days: float | None,
) -> None:
    try:
        parsed = parse_rules(rules)
    except RefundGuardError:
        return
    req = request(kind, product_type)
    purchase = None if age_days is None else int(ASKED - age_days * DAY)
    facts = Facts(req.store, product, None, purchase, ASKED)
    used = Consumption("x:1", True, delivery, False, milliunits)
    policy = Policy(answer=True, rules=parsed)
    verdict = judge(req, used, policy, api_on=True, now_ms=ASKED, facts=facts)
    assert verdict.action in ("answer", "refuse")
    if verdict.action == "answer":
        problems = (
            apple_problems(
                verdict.body, product_type if product_type in APPLE_PRODUCT_TYPES else None
            )
            if kind == APPLE_CONSUMPTION
            else google_problems(verdict.body)
        )
        assert problems == []
        matched = first_match(
            parsed, Facts(req.store, product, None, purchase, ASKED, milliunits / 1000)
        )
        assert verdict.rule == (matched.name if matched else THRESHOLDS)
    assert isinstance(parsed, tuple) and all(isinstance(r, RefundRule) for r in parsed)
