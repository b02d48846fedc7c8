"""The figures' SQL against a Python oracle of docs/insight.md's definitions, over any set of
purchases (hypothesis): Google or Apple, bought any day of 2026, refunded any time later (or not,
or partially), reversed (Apple) or re-granted by an admin after a refund, asked about by the
store (answered, unanswerable, expired or pending), delivered twice; monthly figures of every
product of one tenant, on the local stand-in running the deployed SQL."""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from datetime import UTC, date, datetime
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from refundguard.insight import FigureQuery, Insight, LocalEngine
from refundguard.model import Status, StoreName
from refundguard_dev.insight_demo import Story
from refundguard_dev.insight_local import LocalWarehouse

START = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp() * 1000)
DAY = 86_400_000

purchase = st.fixed_dictionaries(
    {
        "apple": st.booleans(),
        "bought": st.integers(0, 300 * DAY),
        "refund_after": st.none() | st.integers(1, 60 * DAY),
        "delay": st.integers(0, 120_000),
        "partial": st.booleans(),
        "after_refund": st.sampled_from([None, "reversal", "regrant"]),
        "request": st.sampled_from([None, "answered", "unanswerable", "expired", "pending"]),
        "duplicate": st.booleans(),
    }
)


def month(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).date().replace(day=1).isoformat()


def build(n: int, p: dict[str, Any]) -> tuple[Story, dict[str, list[tuple[str, int, int]]]]:
    """The purchase's events, and the facts the definitions give (month -> [(fact, ms)])."""
    store = StoreName.APPLE if p["apple"] else StoreName.GOOGLE
    story = Story(f"{2000000000000000 + n}" if p["apple"] else f"tok-{n}", "acme", "course", store)
    facts: dict[str, list[tuple[str, int]]] = defaultdict(list)
    bought = START + p["bought"]
    story.store_event(
        "ONE_TIME_CHARGE" if p["apple"] else "ONE_TIME_PRODUCT_PURCHASED", Status.ACTIVE, bought
    )
    facts[month(bought)].append(("purchase", 0))
    if p["request"] is not None:
        asked, settled = bought + 1_000, bought + 2_000
        outcome = None if p["request"] == "pending" else p["request"]
        story.refund_request(asked, outcome, settled)
        facts[month(asked)].append(("request_received", 0))
        if outcome is not None:
            facts[month(settled)].append((f"request_{outcome}", 0))
        if p["refund_after"] is not None:
            facts[month(asked)].append(("request_refunded", 0))
    if p["partial"] and not p["apple"]:
        at = bought + 500
        story.store_event(
            "VOIDED_PURCHASE_PARTIAL_REFUND",
            None,
            at,
            details={"refundType": "quantity_based_partial"},
        )
        facts[month(at)].append(("partial_refund", 0))
    if p["refund_after"] is not None:
        at = bought + 3_000 + p["refund_after"]
        story.store_event(
            "REFUND" if p["apple"] else "VOIDED_PURCHASE", Status.REVOKED, at, delay_ms=p["delay"]
        )
        if p["duplicate"]:
            story.duplicate_last()
        facts[month(at)].append(("refund", p["delay"]))
        facts[month(bought)].append(("refund_of_purchase", 0))
        later = at + DAY
        if p["after_refund"] == "reversal" and p["apple"]:
            story.store_event("REFUND_REVERSED", Status.ACTIVE, later)
            facts[month(later)].append(("reversal", 0))
        elif p["after_refund"] == "regrant":
            story.store_event("ADMIN_REGRANT", Status.ACTIVE, later)
            facts[month(later + 1_000)].append(("admin_regrant", 0))  # dated when applied
    return story, facts


def interpolated(values: list[int], q: float) -> float:
    """PERCENTILE_CONT: linear interpolation between the closest ranks."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(purchases=st.lists(purchase, min_size=1, max_size=12))
def test_monthly_figures_follow_the_definitions(purchases: list[dict[str, Any]]) -> None:
    warehouse = LocalWarehouse()
    expected: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for n, p in enumerate(purchases):
        story, facts = build(n, p)
        warehouse.insert(story.rows)
        for key, found in facts.items():
            expected[key] += found
    rows = Insight(LocalEngine(warehouse), cache_s=0).figures(
        FigureQuery("acme", "month", date(2025, 12, 1), date(2027, 12, 31))
    )
    got = {r["period_start"]: r for r in rows if r["product_id"] == "*"}
    assert set(got) == set(expected)
    for key, facts in expected.items():
        counts = Counter(fact for fact, _ in facts)
        row = got[key]
        for fact, column in (
            ("purchase", "purchases"),
            ("refund", "refunds"),
            ("refund_of_purchase", "refunds_of_purchases"),
            ("partial_refund", "partial_refunds"),
            ("reversal", "reversals"),
            ("admin_regrant", "admin_regrants"),
            ("request_received", "requests_received"),
            ("request_answered", "requests_answered"),
            ("request_unanswerable", "requests_unanswerable"),
            ("request_expired", "requests_expired"),
            ("request_refunded", "requests_refunded"),
        ):
            assert row[column] == counts[fact], (key, column, row)
        delays = [ms for fact, ms in facts if fact == "refund"]
        if delays:
            assert abs(row["revoke_p50_ms"] - statistics.median(delays)) < 1e-6
            assert abs(row["revoke_p95_ms"] - interpolated(delays, 0.95)) < 1e-6
        else:
            assert row["revoke_p50_ms"] is None
        if counts["purchase"]:
            assert (
                abs(row["refund_rate"] - counts["refund_of_purchase"] / counts["purchase"]) < 1e-9
            )
