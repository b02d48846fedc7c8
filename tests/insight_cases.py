"""The hand-computed case of the insight tests (tests/unit/test_insight_figures.py has its
figures): five purchases of tenant acme and one of tenant other, made by refundguard's own ledger
and event builders (``insight_demo.Story``), as rows of the BigQuery subscription."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from refundguard.model import Status, StoreName
from refundguard_dev.insight_demo import Story

COURSE, COINS = "course.premium", "coins.500"


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


def rows() -> list[dict[str, Any]]:
    p1 = Story("acme-p1", "acme", COURSE)
    p1.store_event("ONE_TIME_PRODUCT_PURCHASED", Status.ACTIVE, ms("2026-01-30T10:00:00"))
    p1.store_event("VOIDED_PURCHASE", Status.REVOKED, ms("2026-02-02T12:00:00"), delay_ms=2_000)
    p1.duplicate_last()  # at least once: the same event twice
    p2 = Story("acme-p2", "acme", COURSE)
    p2.store_event("ONE_TIME_PRODUCT_PURCHASED", Status.ACTIVE, ms("2026-01-05T08:00:00"))
    p2.refund_request(ms("2026-01-06T09:00:00"), "answered", ms("2026-01-06T10:00:00"))
    p3 = Story("acme-p3", "acme", COINS)
    p3.store_event("ONE_TIME_PRODUCT_PURCHASED", Status.ACTIVE, ms("2026-02-03T08:00:00"))
    p3.store_event(
        "VOIDED_PURCHASE_PARTIAL_REFUND",
        None,
        ms("2026-02-04T08:00:00"),
        details={"refundType": "quantity_based_partial"},
    )
    p4 = Story("2000000000000004", "acme", COURSE, store=StoreName.APPLE)
    p4.store_event("ONE_TIME_CHARGE", Status.ACTIVE, ms("2026-01-10T08:00:00"))
    p4.store_event("REFUND", Status.REVOKED, ms("2026-01-12T08:00:00"), delay_ms=4_000)
    p4.store_event("REFUND_REVERSED", Status.ACTIVE, ms("2026-01-15T08:00:00"))
    p5 = Story("acme-p5", "acme", COURSE)
    p5.store_event("ONE_TIME_PRODUCT_PURCHASED", Status.ACTIVE, ms("2026-02-10T08:00:00"))
    p5.refund_request(ms("2026-02-10T13:00:00"), "expired", ms("2026-02-11T14:00:00"))
    p5.store_event("VOIDED_PURCHASE", Status.REVOKED, ms("2026-02-11T08:00:00"), delay_ms=10_000)
    p5.store_event("ADMIN_REGRANT", Status.ACTIVE, ms("2026-02-12T08:00:00"))
    other = Story("other-p1", "other", COURSE)
    other.store_event("ONE_TIME_PRODUCT_PURCHASED", Status.ACTIVE, ms("2026-01-03T08:00:00"))
    other.store_event("VOIDED_PURCHASE", Status.REVOKED, ms("2026-01-04T08:00:00"))
    return [r for s in (p1, p2, p3, p4, p5, other) for r in s.rows]
