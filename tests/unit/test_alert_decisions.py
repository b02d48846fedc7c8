"""The alert decisions (``refundguard.alerts``, pure) over classes of input: the deadline windows,
the spike baseline, the reconciliation window, the access-check episodes, and stable ids. Every
alert built here is checked against docs/events.schema.json."""

from __future__ import annotations

import copy
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from refundguard import alerts
from refundguard.alerts import DayCounts, RequestView, RunView
from support import check_event

NOW = 1_795_698_000_000
HOUR = alerts.HOUR_MS
NEAR = 4 * HOUR
TENANTS = st.sampled_from(["default", "creator-a", "creator-b"])
STATES = st.sampled_from(["pending", "unanswerable", "expired", "answered"])


def valid(alert: alerts.Alert) -> None:
    entry = alerts.outbox_entry(alert, source="//refundguard/projects/demo", now_ms=NOW)
    check_event(json.loads(entry.data), attributes=dict(entry.attributes), ordering_key="")


@settings(deadline=None)  # each example validates against the schema: CPU-bound, shared machine
@given(left=st.integers(-2 * alerts.DAY_MS, 2 * NEAR), state=STATES, tenant=TENANTS)
def test_a_request_alerts_by_the_time_left_and_only_without_an_answer(
    left: int, state: str, tenant: str
) -> None:
    view = RequestView("google:r1", tenant, "google", state, NOW + left, "waiting", "GPA.1", None)
    found = alerts.request_alerts([view], now_ms=NOW, near_ms=NEAR)
    if state == "answered" or (state != "expired" and left >= NEAR):
        expected = []
    elif left <= 0 or state == "expired":
        expected = [alerts.REQUEST_EXPIRED]
    else:
        expected = [alerts.DEADLINE_NEAR]
    assert [a.kind for a in found] == expected
    for alert in found:
        assert alert.tenant == tenant
        valid(alert)


@settings(deadline=None)  # each example validates against the schema: CPU-bound, shared machine
@given(history=st.lists(st.integers(0, 500), max_size=28), floor=st.integers(1, 100))
def test_the_baseline_is_at_least_the_floor_and_k_mean_plus_m_stddev(
    history: list[int], floor: int
) -> None:
    padded = history + [0] * (28 - len(history))
    base = alerts.baseline(padded, floor=floor)
    assert base.limit >= floor
    assert base.limit >= alerts.SPIKE_K * base.mean
    assert abs(base.mean - sum(padded) / 28) < 1e-9


@settings(deadline=None)  # each example validates against the schema: CPU-bound, shared machine
@given(
    daily=st.integers(0, 50),
    floor=st.integers(1, 60),
    today=st.integers(0, 200),
    tenant=TENANTS,
)
def test_a_spike_is_a_count_above_the_baseline_once_per_tenant_product_and_day(
    daily: int, floor: int, today: int, tenant: str
) -> None:
    """Constant days: stddev 0, the limit is max(floor, 2 x daily); exactly at it, no alert."""
    previous = [DayCounts(tenant, f"d{i}", daily, {"p1": daily}) for i in range(28)]
    day = DayCounts(tenant, "2026-11-26", today, {"p1": today})
    found = alerts.spike_alerts(day, previous, floor=floor)
    limit = max(floor, 2 * daily)
    assert len(found) == (2 if today > limit else 0)
    assert len({a.id for a in found}) == len(found)
    for alert in found:
        assert alert.tenant == tenant
        valid(alert)


def test_alert_ids_are_stable_and_differ_by_tenant_kind_and_key() -> None:
    ids = {
        alerts.alert_id(kind, tenant, key)
        for kind in alerts.KINDS
        for tenant in ("creator-a", "creator-b")
        for key in ("k1", "k2")
    }
    assert len(ids) == len(alerts.KINDS) * 4
    assert alerts.alert_id(alerts.REFUND_SPIKE, "a1b", "k") == alerts.alert_id(
        alerts.REFUND_SPIKE, "a1b", "k"
    )


@settings(deadline=None)  # each example validates against the schema: CPU-bound, shared machine
@given(
    ok_minutes_ago=st.one_of(st.none(), st.integers(0, 200)),
    failing_since=st.integers(0, 200),
)
def test_reconciliation_alerts_after_an_hour_without_a_healthy_run(
    ok_minutes_ago: int | None, failing_since: int
) -> None:
    runs = [RunView("f", "creator-a", NOW - failing_since * 60_000, "failed")]
    if ok_minutes_ago is not None:
        runs.append(RunView("ok", "creator-a", NOW - ok_minutes_ago * 60_000, "succeeded"))
    found = alerts.reconcile_alerts(runs, now_ms=NOW, stale_ms=HOUR)
    recent_ok = ok_minutes_ago is not None and ok_minutes_ago < 60
    oldest = max(failing_since, ok_minutes_ago or 0)
    assert bool(found) == (not recent_ok and oldest >= 60)
    for alert in found:
        valid(alert)


def test_an_access_episode_keeps_its_start_while_the_state_lasts() -> None:
    first = alerts.access_check_document(
        {"google": {"state": "not_invited", "fix": "invite"}}, previous=None, now_ms=1
    )
    again = alerts.access_check_document(
        {"google": {"state": "not_invited"}}, previous=first, now_ms=2
    )
    other = alerts.access_check_document(
        {"google": {"state": "key_refused"}}, previous=again, now_ms=3
    )
    assert first["google"]["since_ms"] == again["google"]["since_ms"] == 1
    assert other["google"]["since_ms"] == 3
    [a1], [a2], [a3] = (alerts.access_alerts("creator-a", d) for d in (first, again, other))
    assert a1.id == a2.id != a3.id
    assert alerts.access_alerts("Not_A_Tenant", first) == []  # a stray document: no alert
    valid(a1)
    ok = alerts.access_check_document({"apple": {"state": "ok"}}, previous=other, now_ms=4)
    assert alerts.access_alerts("creator-a", ok) == [] and "google" not in ok


@given(
    states=st.lists(
        st.sampled_from(["ok", "api_off", "no_key", "unreachable", "key_refused"]), max_size=6
    )
)
def test_an_unconfigured_store_alerts_only_when_it_was_ok_just_before(states: list[str]) -> None:
    """api_off / no_key also mean "does not use this store": an alert only right after ok."""
    doc: dict[str, object] | None = None
    for i, state in enumerate(states):
        doc = alerts.access_check_document({"apple": {"state": state}}, previous=doc, now_ms=i)
        found = alerts.access_alerts("creator-a", doc)
        changes = [s for j, s in enumerate(states[: i + 1]) if j == 0 or s != states[j - 1]]
        before = changes[-2] if len(changes) > 1 else None
        expected = state == "key_refused" or (state in ("api_off", "no_key") and before == "ok")
        assert bool(found) == expected, (states[: i + 1], doc)


BREAKS = {
    "unknown kind": lambda e, a: e["data"].update(kind="refund_storm"),
    "a fact missing": lambda e, a: e["data"]["facts"].pop("request_id"),
    "a nested fact": lambda e, a: e["data"]["facts"].update(reason={"x": 1}),
    "a field not described": lambda e, a: e["data"].update(extra=1),
    "a subject of no tenant": lambda e, a: e.update(subject="reconciliation:Creator_A"),
    "an entitlement's subject": lambda e, a: e.update(subject="google:tok"),
    "attributes not the event's": lambda e, a: a.update(kind="refund_spike"),
    "an access attribute": lambda e, a: a.update(status="revoked"),
}


@pytest.mark.parametrize("case", sorted(BREAKS))
def test_the_schema_refuses_an_alert_that_breaks_the_contract(case: str) -> None:
    view = RequestView("google:r1", "creator-a", "google", "pending", NOW + HOUR, None, None, None)
    [alert] = alerts.request_alerts([view], now_ms=NOW, near_ms=NEAR)
    entry = alerts.outbox_entry(alert, source="//refundguard/projects/demo", now_ms=NOW)
    event, attributes = json.loads(entry.data), dict(entry.attributes)
    check_event(copy.deepcopy(event), attributes=dict(attributes))
    BREAKS[case](event, attributes)
    with pytest.raises(AssertionError):
        check_event(event, attributes=attributes)
