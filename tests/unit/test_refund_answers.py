"""The answers to the stores' refund questions, as classes of input (pure: no emulator): over every
policy, delivery status, product type and percentage, each answer refundguard builds is one the
store's documented rules accept (Apple's Send Consumption Information v2 as the App Store stand-in
enforces them, ``refund_answers.apple_problems``; Google's ``orders.reviewrefund`` as
``RefundReview`` sends it); a policy with no problems answers every consented report, and one
with problems is shown to produce a refused answer. The stand-in's rules and refundguard's agree
on any body."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from refundguard.playstore.api import RefundReview
from refundguard.refund_answers import (
    Policy,
    apple_answer,
    apple_problems,
    google_answer,
    google_problems,
    policy_problems,
)
from refundguard.refunds import (
    APPLE_PRODUCT_TYPES,
    AUTO_RENEWABLE,
    DELIVERED,
    DELIVERY_STATUSES,
    Consumption,
)
from refundguard_dev.fake_appstore_api import consumption_errors

thresholds = st.one_of(
    st.sampled_from([0.0, 0.001, 10.0, 50.0, 99.999, 100.0]),
    st.floats(min_value=0, max_value=100, allow_nan=False),
)
policies = st.builds(
    lambda grant, decline: Policy(True, min(grant, decline), max(grant, decline)),
    thresholds,
    thresholds,
)
percentages = st.one_of(st.sampled_from([0, 1, 99_999, 100_000]), st.integers(0, 100_000))
deliveries = st.sampled_from(sorted(DELIVERY_STATUSES))
product_types = st.sampled_from(sorted(APPLE_PRODUCT_TYPES))


def report(percent: int, delivery: str = DELIVERED, sample: bool = False) -> Consumption:
    return Consumption("apple:1", True, delivery, sample, percent)


@settings(max_examples=400, deadline=None)
@given(policies, deliveries, product_types, percentages, st.booleans())
def test_every_apple_answer_is_one_apple_accepts(
    policy: Policy, delivery: str, product_type: str, percent: int, sample: bool
) -> None:
    answer = apple_answer(report(percent, delivery, sample), policy, product_type)
    if answer.body is None:  # only a policy with a known problem gives no answer
        assert policy_problems(policy), answer.problem
        assert answer.problem and answer.problem.startswith("invalid_answer")
        return
    body = dict(answer.body)
    assert consumption_errors(body, product_type) == []
    assert apple_problems(body, product_type) == []
    assert ("consumptionPercentage" in body) is (product_type != AUTO_RENEWABLE)
    if delivery != DELIVERED and product_type != AUTO_RENEWABLE:
        assert body["consumptionPercentage"] == 0


@settings(max_examples=200, deadline=None)
@given(policies, deliveries, percentages, st.booleans())
def test_every_google_answer_is_one_google_accepts(
    policy: Policy, delivery: str, percent: int, sample: bool
) -> None:
    answer = google_answer(report(percent, delivery, sample), policy)
    assert answer.body is not None and google_problems(answer.body) == []
    body = answer.body
    review = RefundReview(
        pending_refund_token="prt-1",
        refund_preference=body["refundPreference"],
        sample_content_provided=body["sampleContentProvided"],
        consumption_percentage_milliunits=body["consumptionPercentageMilliunits"],
    )
    assert review.to_json() == {"pendingRefundToken": "prt-1", **body}


@settings(max_examples=200, deadline=None)
@given(policies)
def test_a_policy_is_refused_exactly_when_some_report_gets_a_refused_answer(
    policy: Policy,
) -> None:
    refused = [
        (percent, delivery, product_type)
        for percent in (0, 1, 50_000, 99_999, 100_000)
        for delivery in DELIVERY_STATUSES
        for product_type in APPLE_PRODUCT_TYPES
        if apple_answer(report(percent, delivery), policy, product_type).body is None
    ]
    assert bool(refused) == bool(policy_problems(policy))


def test_the_documented_refusals() -> None:
    prorated = Policy(True, 0, 50)  # 0% consumed would be a prorated refund: Apple's 400
    assert policy_problems(prorated)
    assert apple_answer(report(0), prorated, "Consumable").problem.startswith("invalid_answer")
    assert policy_problems(Policy(True, 0.001, 50)) == []
    assert policy_problems(Policy(True, float("nan"), 50)) == [
        "the thresholds must be finite numbers"
    ]
    subscription = apple_answer(report(30_000), Policy(True, 10, 50), AUTO_RENEWABLE).body
    assert subscription == {
        "customerConsented": True,
        "deliveryStatus": DELIVERED,
        "sampleContentProvided": False,
        "refundPreference": "GRANT_PRORATED",  # Apple works out the percentage itself
    }
    unknown = apple_answer(report(30_000), Policy(True, 10, 50), None)
    assert unknown.body is None and unknown.problem.startswith("unknown_product_type")
    assert apple_answer(report(80_000), Policy(True, 10, 50), None).body == {
        **subscription,
        "refundPreference": "DECLINE",
    }
    undelivered = apple_answer(
        report(80_000, "UNDELIVERED_SERVER_OUTAGE"), Policy(True, 10, 50), "Consumable"
    ).body
    assert undelivered and undelivered["consumptionPercentage"] == 0
    assert undelivered["refundPreference"] == "GRANT_FULL"
    odd = Consumption("apple:1", True, ["DELIVERED"], False, 5)  # type: ignore[arg-type]
    assert apple_answer(odd, Policy(True), "Consumable").problem.startswith("bad_usage_data")


body_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 100_005),
    st.sampled_from([0, 1, 50_000, 99_999, 100_000, 100_001, 1.5]),
    st.sampled_from([*sorted(DELIVERY_STATUSES), "DECLINE", "GRANT_FULL", "GRANT_PRORATED", "x"]),
    st.lists(st.text(max_size=3), max_size=2),
)
bodies = st.dictionaries(
    st.sampled_from(
        [
            "customerConsented",
            "deliveryStatus",
            "sampleContentProvided",
            "consumptionPercentage",
            "refundPreference",
        ]
    ),
    body_values,
)


@settings(max_examples=500, deadline=None)
@given(bodies, product_types)
def test_the_stand_in_and_refundguard_read_apples_rules_alike(
    body: dict[str, Any], product_type: str
) -> None:
    assert (consumption_errors(body, product_type) == []) is (
        apple_problems(body, product_type) == []
    )
