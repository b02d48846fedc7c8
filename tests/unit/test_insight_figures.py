"""The figures' SQL (infra/insight/*.sql, what Terraform deploys) on the local stand-in, against
hand-computed figures: purchases and refunds in different periods (day, week from Monday,
month), partial refunds, Apple reversals, admin re-grants, refund requests received / answered /
expired / followed by a refund, time-to-revoke median and 95th percentile, duplicates delivered
twice, another tenant's events; and that what DuckDB runs is exactly sqlglot's transpilation of
the deployed BigQuery SQL. Rows are made by refundguard's own ledger and event builders
(``insight_demo.Story``) in the BigQuery subscription's row format."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
import sqlglot
from insight_cases import COINS, COURSE, rows
from refundguard.insight import FigureQuery, Insight, LocalEngine, to_csv
from refundguard_dev import insight_local
from refundguard_dev.insight_local import LocalWarehouse


@pytest.fixture(scope="module")
def insight() -> Insight:
    warehouse = LocalWarehouse()
    warehouse.insert(rows())
    return Insight(LocalEngine(warehouse), cache_s=0)


def figures(insight: Insight, granularity: str, start: str, end: str, tenant: str = "acme"):
    found = insight.figures(
        FigureQuery(tenant, granularity, date.fromisoformat(start), date.fromisoformat(end))
    )
    return {(r["product_id"], r["period_start"]): r for r in found}


ZERO = {
    "purchases": 0,
    "refunds": 0,
    "refunds_of_purchases": 0,
    "refund_rate": None,
    "partial_refunds": 0,
    "reversals": 0,
    "admin_regrants": 0,
    "requests_received": 0,
    "requests_answered": 0,
    "requests_expired": 0,
    "requests_unanswerable": 0,
    "requests_refunded": 0,
    "revoke_p50_ms": None,
    "revoke_p95_ms": None,
}


def only(row: dict[str, Any]) -> dict[str, Any]:
    return {k: row[k] for k in ZERO}


def test_monthly_figures_for_every_product(insight: Insight) -> None:
    got = figures(insight, "month", "2026-01-01", "2026-02-28")
    assert set(got) == {
        ("*", "2026-01-01"),
        ("*", "2026-02-01"),
        (COURSE, "2026-01-01"),
        (COURSE, "2026-02-01"),
        (COINS, "2026-02-01"),
    }
    january = {
        **ZERO,
        "purchases": 3,  # p1, p2, p4
        "refunds": 1,  # p4 (p1's refund is dated February)
        "refunds_of_purchases": 2,  # p1 (refunded in February) and p4
        "refund_rate": pytest.approx(2 / 3),
        "reversals": 1,
        "requests_received": 1,
        "requests_answered": 1,
        "revoke_p50_ms": 4_000,
        "revoke_p95_ms": 4_000,
    }
    assert only(got[("*", "2026-01-01")]) == january
    assert only(got[(COURSE, "2026-01-01")]) == january
    february = {
        **ZERO,
        "purchases": 2,  # p3, p5
        "refunds": 2,  # p1 (counted here by its date, duplicate once) and p5
        "refunds_of_purchases": 1,  # p5
        "refund_rate": 0.5,
        "partial_refunds": 1,
        "admin_regrants": 1,
        "requests_received": 1,
        "requests_expired": 1,
        "requests_refunded": 1,  # p5's request, then its refund
        "revoke_p50_ms": 6_000,  # of 2 s and 10 s, linear interpolation
        "revoke_p95_ms": pytest.approx(9_600),
    }
    assert only(got[("*", "2026-02-01")]) == february
    coins = {**ZERO, "purchases": 1, "partial_refunds": 1, "refund_rate": 0.0}
    assert only(got[(COINS, "2026-02-01")]) == coins
    assert only(got[(COURSE, "2026-02-01")])["purchases"] == 1


def test_weeks_start_on_monday_and_days_are_utc(insight: Insight) -> None:
    weeks = figures(insight, "week", "2026-01-26", "2026-02-08")
    assert set(p for p, _ in weeks) == {"*", COURSE, COINS}
    # p1 bought Friday 2026-01-30: its week starts Monday 2026-01-26; refunded Monday 02-02.
    assert only(weeks[("*", "2026-01-26")])["purchases"] == 1
    assert only(weeks[("*", "2026-01-26")])["refunds_of_purchases"] == 1
    assert only(weeks[("*", "2026-01-26")])["refunds"] == 0
    second = only(weeks[("*", "2026-02-02")])
    assert (second["refunds"], second["purchases"], second["partial_refunds"]) == (1, 1, 1)
    days = figures(insight, "day", "2026-02-02", "2026-02-02")
    assert set(days) == {("*", "2026-02-02"), (COURSE, "2026-02-02")}
    assert only(days[("*", "2026-02-02")])["revoke_p50_ms"] == 2_000


def test_the_range_and_the_tenant_filter_the_rows(insight: Insight) -> None:
    assert figures(insight, "month", "2026-03-01", "2026-03-31") == {}
    other = figures(insight, "month", "2026-01-01", "2026-12-31", tenant="other")
    assert only(other[("*", "2026-01-01")])["refunds"] == 1
    assert all(r["tenant"] == "other" for r in other.values())
    everyone = insight.figures(FigureQuery(None, "month", date(2026, 1, 1), date(2026, 1, 31)))
    assert {r["tenant"] for r in everyone} == {"acme", "other"}
    assert figures(insight, "month", "2026-01-01", "2026-12-31", tenant="nobody") == {}


def test_csv_has_a_header_and_one_line_per_row(insight: Insight) -> None:
    found = insight.figures(FigureQuery("acme", "month", date(2026, 1, 1), date(2026, 2, 28)))
    text = to_csv(found)
    lines = text.split("\r\n")
    assert lines[0].startswith("tenant,product_id,granularity,period_start,purchases,refunds")
    assert len([line for line in lines if line]) == 1 + len(found) == 6
    assert "acme,*,month,2026-01-01,3,1,2,0.666" in text


def test_what_duckdb_runs_is_the_transpiled_deployed_sql() -> None:
    warehouse = LocalWarehouse()
    for name in insight_local.VIEWS:
        deployed = insight_local.view_sql(name, project="p", dataset="d")
        # Valid BigQuery (parsed strictly in its dialect), referencing only the dataset's names.
        (tree,) = sqlglot.parse(deployed, read="bigquery", error_level=sqlglot.ErrorLevel.RAISE)
        tables = {
            ".".join(p for p in (t.catalog, t.db) if p) for t in tree.find_all(sqlglot.exp.Table)
        }
        assert tables <= {"p.d", ""}, tables
        local = insight_local.view_sql(
            name, project=insight_local.CATALOG, dataset="refundguard_insight"
        )
        assert warehouse.views[name] == insight_local.transpile(local)
