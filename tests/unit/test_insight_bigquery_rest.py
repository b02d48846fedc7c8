"""insight.BigQueryEngine against a local HTTP stand-in of BigQuery's REST API
(refundguard_dev.fake_bigquery: jobs.query and jobs.getQueryResults as documented, running the
same SQL on the DuckDB stand-in): named parameters (the tenant never in the query's text), pages,
a job still running (polled), every failure a TRANSIENT ``insight_unavailable`` (503, retry) and
never a hang; the in-process cache. What real BigQuery alone can show is listed in
docs/insight.md ("What is not tested against BigQuery")."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from insight_cases import rows
from refundguard.errors import Kind, RefundGuardError
from refundguard.insight import (
    BigQueryEngine,
    FigureQuery,
    Insight,
    InsightSettings,
    LocalEngine,
    figures_sql,
)
from refundguard_dev.fake_bigquery import FakeBigQuery
from refundguard_dev.fake_http import Fault
from refundguard_dev.insight_local import LocalWarehouse

PROJECT = "demo-proj"
QUERY = FigureQuery("acme", "month", date(2026, 1, 1), date(2026, 2, 28))


@pytest.fixture(scope="module")
def warehouse() -> LocalWarehouse:
    found = LocalWarehouse()
    found.insert(rows())
    return found


@pytest.fixture
def bigquery(warehouse: LocalWarehouse) -> Iterator[FakeBigQuery]:
    with FakeBigQuery(warehouse, project=PROJECT) as server:
        yield server


def engine(server: FakeBigQuery, **kw: float) -> BigQueryEngine:
    settings = InsightSettings(
        "bigquery", PROJECT, "refundguard_insight", location="EU", api_base_url=server.url
    )
    return BigQueryEngine(settings, **kw)  # type: ignore[arg-type]


def test_the_figures_through_jobs_query_equal_the_local_engines(
    bigquery: FakeBigQuery, warehouse: LocalWarehouse
) -> None:
    remote = Insight(engine(bigquery), cache_s=0).figures(QUERY)
    local = Insight(LocalEngine(warehouse), cache_s=0).figures(QUERY)
    assert remote == local and len(remote) == 5
    (request,) = bigquery.requests
    body = request.json()
    assert request.path == f"/bigquery/v2/projects/{PROJECT}/queries"
    assert (body["useLegacySql"], body["parameterMode"], body["location"]) == (False, "NAMED", "EU")
    params = {
        p["name"]: (p["parameterType"]["type"], p["parameterValue"]["value"])
        for p in body["queryParameters"]
    }
    assert params == {
        "tenant": ("STRING", "acme"),
        "granularity": ("STRING", "month"),
        "from_date": ("DATE", "2026-01-01"),
        "to_date": ("DATE", "2026-02-28"),
    }
    assert "acme" not in body["query"] and "tenant = @tenant" in body["query"]
    assert f"`{PROJECT}.refundguard_insight.figures`" in body["query"]


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(tenant=st.text(min_size=1, max_size=40))
def test_any_tenant_text_is_a_parameter_never_sql(bigquery: FakeBigQuery, tenant: str) -> None:
    """Quotes, backticks, comments, unicode: a value, matching no rows but its own."""
    found = Insight(engine(bigquery), cache_s=0).figures(
        FigureQuery(tenant, "month", date(2026, 1, 1), date(2026, 2, 28))
    )
    assert found == [] or tenant in ("acme", "other")
    sent = bigquery.requests[-1].json()
    assert sent["query"] == figures_sql(PROJECT, "refundguard_insight", one_tenant=True)
    assert sent["queryParameters"][0]["parameterValue"] == {"value": tenant}


def test_pages_are_followed(bigquery: FakeBigQuery) -> None:
    bigquery.page_size = 2
    found = Insight(engine(bigquery), cache_s=0).figures(QUERY)
    assert len(found) == 5
    pages = [r for r in bigquery.requests if r.method == "GET"]
    assert [r.arg("pageToken") for r in pages] == ["2", "4"]


def test_a_running_job_is_polled_until_complete(bigquery: FakeBigQuery) -> None:
    bigquery.pending_polls = 3
    found = Insight(engine(bigquery), cache_s=0).figures(QUERY)
    assert len(found) == 5
    assert [r.method for r in bigquery.requests] == ["POST", "GET", "GET", "GET"]
    assert all(r.arg("location") == "EU" and r.arg("timeoutMs") for r in bigquery.requests[1:])


def test_a_job_that_never_completes_is_503_within_the_deadline(bigquery: FakeBigQuery) -> None:
    bigquery.pending_polls = 10**6
    with pytest.raises(RefundGuardError) as info:
        Insight(engine(bigquery, deadline_s=0.5), cache_s=0).figures(QUERY)
    assert (info.value.kind, info.value.code) == (Kind.TRANSIENT, "insight_unavailable")


@pytest.mark.parametrize(
    "fault",
    [
        Fault(status=400),  # invalidQuery: ours to fix, never the caller's
        Fault(status=403),  # the function's account lacks a role
        Fault(status=404),  # the dataset is missing
        Fault(status=429, retry_after="1"),
        Fault(status=500),
        Fault(status=503),
        Fault(body=b"{not json"),
        Fault(body=b"[]"),
        Fault(body=b'{"jobComplete": true, "rows": [{"f": []}]}'),  # no schema
        Fault(drop=True),
        Fault(delay_s=2.0),  # slower than the read timeout
    ],
    ids=lambda f: f"status={f.status},body={f.body!r},drop={f.drop},delay={f.delay_s}",
)
def test_every_failure_is_a_transient_insight_unavailable(
    bigquery: FakeBigQuery, fault: Fault
) -> None:
    bigquery.fail_next(fault)
    with pytest.raises(RefundGuardError) as info:
        Insight(engine(bigquery, timeout_s=(1.0, 1.0)), cache_s=0).figures(QUERY)  # type: ignore[arg-type]
    assert (info.value.kind, info.value.code) == (Kind.TRANSIENT, "insight_unavailable")
    assert "demo-proj" not in info.value.message and "SELECT" not in info.value.message


def test_answers_are_cached_for_cache_seconds(bigquery: FakeBigQuery) -> None:
    now = [0.0]
    insight = Insight(engine(bigquery), cache_s=60, clock=lambda: now[0])
    first = insight.figures(QUERY)
    assert insight.figures(QUERY) == first and bigquery.count() == 1
    insight.figures(FigureQuery("other", "month", date(2026, 1, 1), date(2026, 2, 28)))
    assert bigquery.count() == 2  # another tenant: another query
    now[0] = 61.0
    insight.figures(QUERY)
    assert bigquery.count() == 3
