"""Alerts (docs/alerts.md) through the events sweep function against the Firestore and Pub/Sub
emulators: each kind fires once for its condition, never twice, never for another tenant, not when
the condition does not hold (exactly at the threshold, just past the deadline, a spike at the
baseline's boundary); a failing check does not stop the others; every alert received validates
against docs/events.schema.json (``PlatformEvents.received`` checks each one).

The sweep is built by its production factory (``create_handler``) with a fixed clock, so the
boundaries are exact; one test goes through functions/main.py with the real clock."""

from __future__ import annotations

import dataclasses
import itertools
import json
import time
from collections.abc import Callable
from typing import Any

import flask
import pytest
from integration.conftest import PlatformEvents
from refundguard import alerts
from refundguard.alert_checks import record_access_check
from refundguard.model import LedgerEvent, Source, Status, StoreName
from refundguard.reconciliation.plan import RunRecord, SourceTally
from refundguard.refund_store import RefundStore
from refundguard.refunds import GOOGLE_WINDOW_MS, RefundRequest
from refundguard.serializer import to_firestore
from refundguard.store import EntitlementStore
from refundguard.sweep import function as sweep_function

HOUR = 3600_000
DAY = 24 * HOUR
NOW = 1_795_698_000_000 - 1_795_698_000_000 % DAY + 13 * HOUR  # 2026-11-26T13:00:00Z
NEAR = 4 * HOUR  # ALERT_DEADLINE_HOURS default
A, B = "creator-a", "creator-b"
_ids = itertools.count(1)


class Sweep:
    """The events sweep at a fixed time (``at``), as Cloud Scheduler calls it."""

    def __init__(self, env: dict[str, str]) -> None:
        self.now = NOW
        self.handler = sweep_function.create_handler(env, clock_ms=lambda: self.now)
        self.app = flask.Flask(__name__)

    def run(self, now: int | None = None) -> tuple[int, dict[str, Any]]:
        if now is not None:
            self.now = now
        with self.app.test_request_context("/", method="POST"):
            response = self.handler(flask.request)
        return response.status_code, json.loads(response.get_data())


@pytest.fixture
def make_sweep(
    emulator_env: dict[str, str], platform_events: PlatformEvents
) -> Callable[..., Sweep]:
    def build(**env: str) -> Sweep:
        return Sweep({**emulator_env, **platform_events.env, **env})

    return build


@pytest.fixture
def client(store: EntitlementStore) -> Any:
    return store.client


def alerts_of(events: PlatformEvents) -> list[dict[str, Any]]:
    """The alert events published since the last call (each checked against the schema)."""
    found = [m.event for m in events.received() if m.event["type"] == alerts.ALERT_TYPE]
    return sorted(found, key=lambda e: (e["data"]["kind"], e["subject"]))


def request(tenant: str, deadline_ms: int, state: str = "pending", **kw: Any) -> RefundRequest:
    n = next(_ids)
    return RefundRequest(
        id=f"google:req{n:06d}",
        kind="google_refund_review",
        store="google",
        environment="Production",
        entitlement_id=f"google:token-{n}",
        purchase_id=f"token-{n}",
        app="com.creator.app",
        received_ms=deadline_ms - GOOGLE_WINDOW_MS,
        deadline_ms=deadline_ms,
        state=state,
        order_id=f"GPA.{n}",
        tenant=tenant,
        **kw,
    )


# ------------------------------------------------------------------------ refund requests

# (time left before the deadline, state) -> the alert kind expected, or None
DEADLINE_CASES = [
    (NEAR, "pending", None),  # exactly at the threshold: not "less than"
    (NEAR - 1, "pending", alerts.DEADLINE_NEAR),
    (1, "pending", alerts.DEADLINE_NEAR),
    (NEAR - 1, "unanswerable", alerts.DEADLINE_NEAR),
    (NEAR - 1, "answered", None),
    (0, "pending", alerts.REQUEST_EXPIRED),  # at the deadline: no time left
    (-1, "pending", alerts.REQUEST_EXPIRED),  # just past it
    (-1, "unanswerable", alerts.REQUEST_EXPIRED),
    (-HOUR, "expired", alerts.REQUEST_EXPIRED),
    (-1, "answered", None),
    (2 * NEAR, "pending", None),
]


@pytest.mark.parametrize(("left", "state", "kind"), DEADLINE_CASES)
def test_a_refund_request_alerts_once_near_its_deadline_and_once_expired(
    make_sweep: Callable[..., Sweep],
    client: Any,
    platform_events: PlatformEvents,
    left: int,
    state: str,
    kind: str | None,
) -> None:
    refunds = RefundStore(client, timeout_s=10)
    mine = request(A, NOW + left, state)
    refunds.record(mine)
    refunds.record(request(B, NOW + 3 * NEAR))  # another tenant's, far from its deadline
    sweep = make_sweep()
    status, body = sweep.run()
    assert status == 200
    found = alerts_of(platform_events)
    if kind is None:
        assert found == [] and body["alerts"] == {"sent": 0, "failed": [], "skipped": []}
        return
    assert [(e["data"]["kind"], e["data"]["tenant"]) for e in found] == [(kind, A)]
    assert found[0]["subject"] == f"refund_request:{mine.id}"
    assert found[0]["data"]["facts"]["request_id"] == mine.id
    # Never twice: the same instance, and a new one (a cold start).
    assert sweep.run()[0] == 200
    assert make_sweep().run()[0] == 200
    assert alerts_of(platform_events) == []


def test_a_request_near_its_deadline_then_expired_alerts_once_each(
    make_sweep: Callable[..., Sweep], client: Any, platform_events: PlatformEvents
) -> None:
    refunds = RefundStore(client, timeout_s=10)
    refunds.record(request(A, NOW + HOUR))
    sweep = make_sweep()
    sweep.run()
    assert [e["data"]["kind"] for e in alerts_of(platform_events)] == [alerts.DEADLINE_NEAR]
    sweep.run(NOW + HOUR - 1)
    assert alerts_of(platform_events) == []
    sweep.run(NOW + HOUR + 1)
    sweep.run(NOW + HOUR + 60_000)
    assert [e["data"]["kind"] for e in alerts_of(platform_events)] == [alerts.REQUEST_EXPIRED]


def test_the_deadline_threshold_is_a_setting(
    make_sweep: Callable[..., Sweep], client: Any, platform_events: PlatformEvents
) -> None:
    RefundStore(client, timeout_s=10).record(request(A, NOW + 2 * HOUR))
    make_sweep(ALERT_DEADLINE_HOURS="1").run()
    assert alerts_of(platform_events) == []
    make_sweep(ALERT_DEADLINE_HOURS="2.5").run()
    assert [e["data"]["kind"] for e in alerts_of(platform_events)] == [alerts.DEADLINE_NEAR]


# ------------------------------------------------------------------------ refund spikes


def refund(ledger: EntitlementStore, tenant: str, day_ms: int, product: str, **kw: Any) -> Any:
    n = next(_ids)
    event = LedgerEvent(
        store=StoreName.GOOGLE,
        purchase_id=f"spike-token-{n}",
        event_id=f"void:GPA.{n}",
        source=Source.GOOGLE,
        type="VOIDED_PURCHASE",
        event_time_ms=day_ms + 60_000 * (n % 600),
        effect=Status.REVOKED,
        product_id=product,
        order_id=f"GPA.{n}",
        tenant=tenant,
    )
    event = dataclasses.replace(event, **kw)
    ledger.apply(event)
    return event


@pytest.mark.parametrize(("today", "alerted"), [(4, False), (5, True)])
def test_a_refund_spike_alerts_above_the_baseline_once_per_day(
    make_sweep: Callable[..., Sweep],
    store: EntitlementStore,
    platform_events: PlatformEvents,
    today: int,
    alerted: bool,
) -> None:
    """Two refunds a day for 28 days: mean 2, stddev 0, baseline max(3, 2 x 2 + 3 x 0) = 4.
    Four today is at the boundary (no alert); five is above it, for the tenant and the product.
    Another tenant with three (the floor) has none."""
    start = NOW - NOW % DAY
    for day in range(1, 29):
        for _ in range(2):
            refund(store, A, start - day * DAY, "course.premium")
    todays = [refund(store, A, start, "course.premium") for _ in range(today)]
    for _ in range(3):
        refund(store, B, start, "course.premium")
    # Not counted: a redelivered refund, an admin revoke, a sandbox refund.
    store.apply(todays[-1])
    refund(store, A, start, "course.basic", source=Source.ADMIN, type="ADMIN_REVOKE",
           event_id="a" * 32, actor="admin@example.com", reason="test")  # fmt: skip
    refund(store, A, start, "course.basic", store=StoreName.APPLE, source=Source.APPLE,
           type="REFUND", event_id=f"apple-{next(_ids)}", environment="Sandbox")  # fmt: skip
    platform_events.received()  # the access events
    sweep = make_sweep(ALERT_SPIKE_MIN_REFUNDS="3")
    status, body = sweep.run()
    assert status == 200 and body["alerts"]["sent"] == (2 if alerted else 0)
    found = alerts_of(platform_events)
    if not alerted:
        assert found == []
        return
    assert [(e["data"]["tenant"], e["subject"]) for e in found] == [
        (A, "refunds:creator-a:2026-11-26"),
        (A, "refunds:creator-a:2026-11-26:course.premium"),
    ]
    tenant_wide = found[0]["data"]["facts"]
    assert tenant_wide["refunds"] == 5 and tenant_wide["baseline"] == 4
    assert found[1]["data"]["facts"]["refunds"] == 5
    # More refunds the same day: no second alert (from this instance or a new one).
    refund(store, A, start, "course.premium")
    platform_events.received()
    sweep.run(NOW + HOUR)
    make_sweep(ALERT_SPIKE_MIN_REFUNDS="3").run(NOW + HOUR)
    assert alerts_of(platform_events) == []


# ------------------------------------------------------------------------ reconciliation


def run_record(tenant: str | None, started: int, state: str, errors: int = 0) -> dict[str, Any]:
    tally = SourceTally("google", "com.creator.app", "Production",
                        errors=["store_refused"] * errors or None)  # fmt: skip
    record = RunRecord(f"run-{next(_ids)}", "scheduled", started, finished_ms=started + 1000,
                       state=state, sources=(tally,))  # fmt: skip
    data = to_firestore(record)
    if tenant is not None:  # a fanned-out run's record names its tenant
        data["tenant"] = tenant
    return data


def save_runs(client: Any, *records: dict[str, Any]) -> None:
    for data in records:
        client.collection("reconcile_runs").document(data["run_id"]).set(data)


@pytest.mark.parametrize(
    ("runs", "alerted"),
    [
        # minutes ago, state, source errors
        ([(59, "succeeded", 0), (89, "failed", 0)], False),  # a success within the hour
        ([(59, "partial", 0), (89, "failed", 0)], False),  # partial for lack of time only
        ([(30, "failed", 0), (59, "partial", 1), (61, "succeeded", 0)], True),
        ([(30, "failed", 0), (50, "abandoned", 0)], False),  # failing for less than an hour
        ([(61, "succeeded", 0)], True),  # not run for over an hour
        ([(60, "succeeded", 0)], True),  # exactly an hour: not "within" it
    ],
)
def test_reconciliation_failing_or_not_run_for_an_hour_alerts_once(
    make_sweep: Callable[..., Sweep],
    client: Any,
    platform_events: PlatformEvents,
    runs: list[tuple[int, str, int]],
    alerted: bool,
) -> None:
    save_runs(client, *(run_record(A, NOW - m * 60_000, s, e) for m, s, e in runs))
    save_runs(client, run_record(B, NOW - 10 * 60_000, "succeeded"))  # another tenant: healthy
    sweep = make_sweep()
    status, body = sweep.run()
    assert status == 200 and body["alerts"] == {"sent": int(alerted), "failed": [], "skipped": []}
    found = alerts_of(platform_events)
    if not alerted:
        assert found == []
        return
    assert [(e["data"]["kind"], e["data"]["tenant"], e["subject"]) for e in found] == [
        (alerts.RECONCILE_FAILING, A, "reconciliation:creator-a")
    ]
    sweep.run(NOW + 5 * 60_000)
    make_sweep().run(NOW + 10 * 60_000)
    assert alerts_of(platform_events) == []


def test_runs_from_before_tenants_count_as_the_default_tenant_and_none_lately_is_not_run(
    make_sweep: Callable[..., Sweep], client: Any, platform_events: PlatformEvents
) -> None:
    save_runs(client, run_record(None, NOW - 5 * HOUR, "succeeded"))
    make_sweep().run()
    [found] = alerts_of(platform_events)
    assert found["data"]["tenant"] == "default"
    assert found["data"]["facts"]["not_run"] is True


# ------------------------------------------------------------------------ store access


def check_access(client: Any, tenant: str, now: int, **states: str) -> None:
    """What the check-access route records (``alert_checks.record_access_check``)."""
    results = {store: {"state": s, "fix": f"fix {s}", "details": {}} for store, s in states.items()}
    record_access_check(client, tenant, results, now_ms=now, timeout_s=10)


def test_broken_store_access_alerts_once_per_episode(
    make_sweep: Callable[..., Sweep], client: Any, platform_events: PlatformEvents
) -> None:
    sweep = make_sweep()
    check_access(client, A, NOW, google="ok", apple="ok")
    check_access(client, B, NOW, google="unreachable")  # the store not answering: transient
    check_access(client, B, NOW, google="unreachable", apple="api_off")  # never used Apple
    sweep.run()
    assert alerts_of(platform_events) == []
    check_access(client, A, NOW + 1, google="ok", apple="key_refused")
    sweep.run(NOW + 2)
    [found] = alerts_of(platform_events)
    assert (found["data"]["tenant"], found["subject"]) == (A, "store_access:creator-a:apple")
    assert found["data"]["facts"]["state"] == "key_refused"
    assert found["data"]["action"].startswith("fix key_refused; then")
    # Checked again, still broken: the same episode, no new alert.
    check_access(client, A, NOW + 3, google="ok", apple="key_refused")
    sweep.run(NOW + 4)
    make_sweep().run(NOW + 5)
    assert alerts_of(platform_events) == []
    # Fixed, then broken again: a new episode, a new alert.
    check_access(client, A, NOW + 6, google="ok", apple="ok")
    sweep.run(NOW + 7)
    check_access(client, A, NOW + 8, google="not_invited", apple="key_refused")
    sweep.run(NOW + 9)
    found = alerts_of(platform_events)
    assert [e["data"]["facts"]["state"] for e in found] == ["key_refused", "not_invited"]
    # A store API that worked and is now off (or its key gone): turned bad, an alert.
    check_access(client, A, NOW + 10, google="ok", apple="key_refused")
    check_access(client, A, NOW + 11, google="api_off", apple="key_refused")
    sweep.run(NOW + 12)
    [found] = alerts_of(platform_events)
    assert (found["subject"], found["data"]["facts"]["state"]) == (
        "store_access:creator-a:google",
        "api_off",
    )


# ------------------------------------------------------------------------ together


def test_a_failing_check_does_not_stop_the_others(
    make_sweep: Callable[..., Sweep], client: Any, platform_events: PlatformEvents
) -> None:
    """A count document the spike check cannot read fails that check (503, an ERROR line): the
    refund-request, reconciliation and store-access alerts are still sent."""
    client.collection("refund_days").document(f"{A}:2026-11-26:0").set(
        {"tenant": A, "day": "2026-11-26", "refunds": "many"}
    )
    RefundStore(client, timeout_s=10).record(request(A, NOW + HOUR))
    save_runs(client, run_record(A, NOW - 2 * HOUR, "failed"))
    check_access(client, A, NOW, google="wrong_bundle")
    status, body = make_sweep().run()
    assert status == 503 and body["error"] == "alert_check_failed"
    assert body["details"] == {"sent": 3, "failed": ["refund_spikes"], "skipped": []}
    kinds = {e["data"]["kind"] for e in alerts_of(platform_events)}
    assert kinds == {alerts.DEADLINE_NEAR, alerts.RECONCILE_FAILING, alerts.ACCESS_BROKEN}


def test_alerts_off_sends_none(
    make_sweep: Callable[..., Sweep], client: Any, platform_events: PlatformEvents
) -> None:
    RefundStore(client, timeout_s=10).record(request(A, NOW + HOUR))
    assert make_sweep(ALERTS="off").run()[0] == 200
    assert alerts_of(platform_events) == []
    assert client.collection("alerts").get() == []


def test_an_alert_is_kept_for_the_sweep_when_pubsub_is_away(
    make_sweep: Callable[..., Sweep],
    client: Any,
    platform_events: PlatformEvents,
    emulator_env: dict[str, str],
) -> None:
    """Committed with its outbox entry: Pub/Sub away, the next sweep publishes it, once."""
    RefundStore(client, timeout_s=10).record(request(A, NOW + HOUR))
    away = {**platform_events.env, "PUBSUB_EMULATOR_HOST": "127.0.0.1:9"}
    status, _ = Sweep({**emulator_env, **away}).run()
    assert status == 200  # the alert is committed; publishing it is the sweep's
    assert len(client.collection("alerts").get()) == 1
    assert alerts_of(platform_events) == []
    make_sweep(EVENTS_SWEEP_GRACE_SECONDS="1").run(NOW + 2000)
    [found] = alerts_of(platform_events)
    assert found["data"]["kind"] == alerts.DEADLINE_NEAR
    make_sweep(EVENTS_SWEEP_GRACE_SECONDS="1").run(NOW + 4000)
    assert alerts_of(platform_events) == []


def test_the_sweep_function_sends_alerts_and_refuses_bad_settings(
    make_client: Callable[..., Any],
    refused_start: Callable[..., list[str]],
    client: Any,
    platform_events: PlatformEvents,
) -> None:
    """Through functions/main.py, with the real clock."""
    now = time.time_ns() // 1_000_000
    RefundStore(client, timeout_s=10).record(request(A, now + HOUR))
    sweep = make_client("events_sweep")
    assert sweep.post("/").get_json()["alerts"] == {"sent": 1, "failed": [], "skipped": []}
    assert sweep.post("/").get_json()["alerts"] == {"sent": 0, "failed": [], "skipped": []}
    [found] = alerts_of(platform_events)
    assert found["data"]["tenant"] == A
    assert refused_start("events_sweep", ALERTS="maybe", ALERT_DEADLINE_HOURS="0") == [
        "ALERTS must be on or off, not 'maybe'",
        "ALERT_DEADLINE_HOURS must be between 0.25 and 23, not 0",
    ]


def test_the_make_run_demo_fires_one_alert_of_each_kind(
    make_sweep: Callable[..., Sweep], client: Any, platform_events: PlatformEvents
) -> None:
    from refundguard_dev import alert_demo

    alert_demo.seed(client, NOW)
    alert_demo.seed(client, NOW)  # make run started twice on the same data
    sweep = make_sweep()
    assert sweep.run()[0] == 200
    found = alerts_of(platform_events)
    assert sorted(e["data"]["kind"] for e in found) == sorted(
        [*alerts.KINDS, alerts.REFUND_SPIKE]  # the tenant's spike and its product's
    )
    assert {e["data"]["tenant"] for e in found} == {alert_demo.TENANT}
    sweep.run(NOW + 60_000)
    assert alerts_of(platform_events) == []
