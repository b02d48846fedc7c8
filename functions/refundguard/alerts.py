"""Alerts, pure (no I/O, no clock): what each check decides from what it read, the alert's stable
id, the CloudEvent (``com.refundguard.alert.v1``) and its outbox entry, the refund-spike baseline,
and the shape of the ``access_checks/{tenant}`` document the check-access route writes. The I/O
is in ``alert_checks``; the contract is docs/alerts.md and docs/integrating.md."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .events import CONTENT_TYPE, SPEC_VERSION, OutboxEntry
from .model import DEFAULT_TENANT
from .refund_counts import day_of

if TYPE_CHECKING:
    from .config import Settings
from .serializer import ms_to_iso
from .tenants import is_tenant_id

ALERT_TYPE = "com.refundguard.alert.v1"
#: The outbox entry's ``status`` of an alert (an access event's is the entitlement's status).
ALERT_STATUS = "alert"

# The kinds, each documented in docs/alerts.md (what it means, what to do).
DEADLINE_NEAR = "refund_request_deadline_near"
REQUEST_EXPIRED = "refund_request_expired"
REFUND_SPIKE = "refund_spike"
RECONCILE_FAILING = "reconciliation_failing"
ACCESS_BROKEN = "store_access_broken"
KINDS = (DEADLINE_NEAR, REQUEST_EXPIRED, REFUND_SPIKE, RECONCILE_FAILING, ACCESS_BROKEN)
WARNING, CRITICAL = "warning", "critical"

HOUR_MS = 3600 * 1000
DAY_MS = 24 * HOUR_MS
#: Refund requests whose deadline passed longer ago than this are not looked at any more (an
#: expired request alerts at the first check after its deadline; this only bounds the query).
EXPIRED_LOOKBACK_MS = DAY_MS
#: The refund-spike baseline: max(floor, K x mean + M x stddev of the 28 previous UTC days).
SPIKE_DAYS = 28
SPIKE_K = 2.0
SPIKE_M = 3.0

# Refund-request states (``refunds``): these have no answer.
UNANSWERED = ("pending", "unanswerable", "expired")


@dataclass(frozen=True)
class Alert:
    """One alert: ``key`` names the thing it is about (and, where it may come back, the episode);
    the same key is the same alert, sent once (``alert_id``)."""

    kind: str
    tenant: str
    key: str
    subject: str
    severity: str
    summary: str
    action: str
    facts: Mapping[str, str | int | float | bool | None] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return alert_id(self.kind, self.tenant, self.key)


def alert_id(kind: str, tenant: str, key: str) -> str:
    """Stable: 32 hex digits of the SHA-256 of the type, kind, tenant and key."""
    return hashlib.sha256(f"{ALERT_TYPE}\n{kind}\n{tenant}\n{key}".encode()).hexdigest()[:32]


def day_start_ms(ms: int) -> int:
    return ms - ms % DAY_MS


# ----------------------------------------------------------------------------- the event


def cloudevent(alert: Alert, *, source: str, now_ms: int) -> dict[str, Any]:
    return {
        "specversion": SPEC_VERSION,
        "id": alert.id,
        "source": source,
        "type": ALERT_TYPE,
        "subject": alert.subject,
        "time": ms_to_iso(now_ms),
        "datacontenttype": CONTENT_TYPE,
        "data": {
            "tenant": alert.tenant,
            "kind": alert.kind,
            "severity": alert.severity,
            "summary": alert.summary,
            "action": alert.action,
            "first_seen": ms_to_iso(now_ms),
            "facts": dict(alert.facts),
        },
    }


def outbox_entry(alert: Alert, *, source: str, now_ms: int) -> OutboxEntry:
    """The alert as an outbox entry (published like an access event, by ``Outbox.deliver`` and
    the sweep): its own group (``entitlement`` = ``alert:<id>``), no ordering key."""
    event = cloudevent(alert, source=source, now_ms=now_ms)
    return OutboxEntry(
        event_id=alert.id,
        entitlement=f"alert:{alert.id}",
        version=1,
        status=ALERT_STATUS,
        ordering_key="",
        data=json.dumps(event, ensure_ascii=False, separators=(",", ":")),
        created_ms=now_ms,
        attributes={
            "type": ALERT_TYPE,
            "tenant": alert.tenant,
            "kind": alert.kind,
            "severity": alert.severity,
        },
    )


# ----------------------------------------------------------------------------- refund requests


@dataclass(frozen=True)
class RequestView:
    """What the deadline checks read of a ``refund_requests`` document."""

    id: str
    tenant: str
    store: str
    state: str
    deadline_ms: int
    reason: str | None = None
    order_id: str | None = None
    transaction_id: str | None = None


def request_alerts(requests: Iterable[RequestView], *, now_ms: int, near_ms: int) -> list[Alert]:
    """A request without an answer (pending, unanswerable, expired) alerts once when less than
    ``near_ms`` is left before its deadline (0 < left < near_ms), and once when the deadline has
    passed (left <= 0). Answered requests never alert."""
    found: list[Alert] = []
    for r in requests:
        if r.state not in UNANSWERED:
            continue
        left = r.deadline_ms - now_ms
        facts: dict[str, Any] = {
            "request_id": r.id,
            "store": r.store,
            "state": r.state,
            "reason": (r.reason or "")[:300] or None,
            "deadline": ms_to_iso(r.deadline_ms),
            "order_id": r.order_id,
            "transaction_id": r.transaction_id,
        }
        subject = f"refund_request:{r.id}"
        if left <= 0 or r.state == "expired":
            found.append(
                Alert(
                    REQUEST_EXPIRED,
                    r.tenant,
                    r.id,
                    subject,
                    CRITICAL,
                    f"The {r.store} refund request {r.id} expired without an answer ({r.state}).",
                    "Nothing can be sent any more: the store decides alone. Find why it was not "
                    "answered (reason) so the next one is: report consumption through "
                    "POST /entitlements:consumption, check the store API access and the "
                    "reconciler's runs (docs/alerts.md).",
                    facts,
                )
            )
        elif left < near_ms:
            hours = round(left / HOUR_MS, 2)
            span = f"{hours:.1f} h" if left >= HOUR_MS else f"{max(1, left // 60000)} min"
            found.append(
                Alert(
                    DEADLINE_NEAR,
                    r.tenant,
                    r.id,
                    subject,
                    WARNING,
                    f"The {r.store} refund request {r.id} has {span} left and no answer "
                    f"({r.state}: {(r.reason or 'waiting')[:120]}).",
                    "Report the purchase's consumption (POST /entitlements:consumption) or answer "
                    "it in the store's console before the deadline; if it is unanswerable, read "
                    "its reason (docs/alerts.md).",
                    {**facts, "hours_left": hours},
                )
            )
    return found


# ----------------------------------------------------------------------------- refund spikes


@dataclass(frozen=True)
class Baseline:
    mean: float
    stddev: float
    floor: int
    limit: float  # today's refunds above this are a spike


def baseline(history: Sequence[int], *, floor: int) -> Baseline:
    """``limit = max(floor, K x mean + M x stddev)`` of the daily counts of the previous days
    (a day without refunds counts 0; population standard deviation)."""
    n = len(history) or 1
    mean = sum(history) / n
    stddev = math.sqrt(sum((c - mean) ** 2 for c in history) / n)
    return Baseline(mean, stddev, floor, max(float(floor), SPIKE_K * mean + SPIKE_M * stddev))


@dataclass(frozen=True)
class DayCounts:
    """One ``refund_days/{tenant}:{day}`` document: refunds that day, in all and per product."""

    tenant: str
    day: str
    refunds: int = 0
    products: Mapping[str, int] = field(default_factory=dict)


def spike_alerts(today: DayCounts, previous: Sequence[DayCounts], *, floor: int) -> list[Alert]:
    """The tenant's refunds today, and each product's, against their baselines over
    ``previous`` (the days present; the missing ones of ``SPIKE_DAYS`` count 0). Once per
    tenant (or tenant and product) and UTC day."""

    def series(product: str | None) -> list[int]:
        counts = [
            (d.refunds if product is None else int(d.products.get(product, 0))) for d in previous
        ]
        return counts + [0] * max(0, SPIKE_DAYS - len(counts))

    found: list[Alert] = []
    targets: list[tuple[str | None, int]] = [(None, today.refunds)]
    targets += sorted(today.products.items())
    for product, count in targets:
        if count <= floor:
            continue
        base = baseline(series(product), floor=floor)
        if count <= base.limit:
            continue
        what = f"product {product}" if product else "all products"
        key = f"{today.day}:{product}" if product else f"{today.day}:*"
        subject = f"refunds:{today.tenant}:{today.day}" + (f":{product}" if product else "")
        found.append(
            Alert(
                REFUND_SPIKE,
                today.tenant,
                key,
                subject,
                WARNING,
                f"{count} refunds today ({today.day} UTC) for {what}, above the baseline of "
                f"{base.limit:.1f} (mean {base.mean:.2f}/day, stddev {base.stddev:.2f} over "
                f"{SPIKE_DAYS} days).",
                "Look at what changed today: a release, a price, a fraud wave, a store outage; "
                "the refunded orders are in the access events and the admin API "
                "(docs/alerts.md).",
                {
                    "day": today.day,
                    "product_id": product,
                    "refunds": count,
                    "baseline": round(base.limit, 2),
                    "mean": round(base.mean, 3),
                    "stddev": round(base.stddev, 3),
                },
            )
        )
    return found


# ----------------------------------------------------------------------------- reconciliation


@dataclass(frozen=True)
class RunView:
    """What the reconciliation check reads of a run record (``reconcile_runs``)."""

    run_id: str
    tenant: str
    started_ms: int
    state: str
    errors: int = 0  # source errors in the run
    error: str | None = None


def healthy(run: RunView) -> bool:
    """A run that did its work: succeeded, or partial only for lack of time (no source error)."""
    return run.state == "succeeded" or (run.state == "partial" and run.errors == 0)


def reconcile_alerts(runs: Iterable[RunView], *, now_ms: int, stale_ms: int) -> list[Alert]:
    """Per tenant of the runs read (started within ``2 x stale_ms``): an alert when no healthy run
    started within ``stale_ms`` and the reconciler has been failing or silent at least that long
    (its oldest run read started ``stale_ms`` ago or more, or its newest did). Once per tenant
    and UTC day while it lasts."""
    by_tenant: dict[str, list[RunView]] = {}
    for run in runs:
        by_tenant.setdefault(run.tenant, []).append(run)
    found: list[Alert] = []
    for tenant, tenant_runs in sorted(by_tenant.items()):
        recent_ok = [r for r in tenant_runs if healthy(r) and now_ms - r.started_ms < stale_ms]
        if recent_ok:
            continue
        oldest = min(r.started_ms for r in tenant_runs)
        if now_ms - oldest < stale_ms:
            continue  # failing, but not for long enough yet
        newest = max(tenant_runs, key=lambda r: r.started_ms)
        minutes = round(stale_ms / 60000)
        not_run = now_ms - newest.started_ms >= stale_ms
        summary = (
            f"The reconciler has not run for {tenant} for over {minutes} minutes."
            if not_run
            else f"The reconciler's runs for {tenant} have failed for over {minutes} minutes "
            f"(last: {newest.state}{': ' + newest.error[:200] if newest.error else ''})."
        )
        found.append(
            Alert(
                RECONCILE_FAILING,
                tenant,
                day_of(now_ms),
                f"reconciliation:{tenant}",
                CRITICAL,
                summary,
                "Missed refunds are not caught and refund requests not answered meanwhile. Read "
                "the runs (GET /reconciliation/runs) and the reconciler's ERROR lines; check its "
                "Cloud Scheduler job and the store access (docs/alerts.md).",
                {
                    "last_run_id": newest.run_id,
                    "last_state": newest.state,
                    "last_started": ms_to_iso(newest.started_ms),
                    "not_run": not_run,
                },
            )
        )
    return found


# ----------------------------------------------------------------------------- store access

ACCESS_CHECKS = "access_checks"
#: Check states (the states of POST /tenants/{id}:check-access) in which the store refuses
#: refundguard something configured: always an alert.
REFUSED_ACCESS = frozenset({"not_invited", "key_refused", "wrong_bundle"})
#: States that also describe a tenant that does not use the store API (no apps, the API off for
#: the deployment, no key uploaded): an alert only when the store's previous state was ``ok``
#: (access turned bad). ``unreachable`` (the store did not answer) is transient: never.
UNCONFIGURED_ACCESS = frozenset({"api_off", "no_key"})
STORES = ("google", "apple")


def access_check_document(
    results: Mapping[str, Mapping[str, Any]],
    *,
    previous: Mapping[str, Any] | None,
    now_ms: int,
) -> dict[str, Any]:
    """The ``access_checks/{tenant}`` document the check-access route writes (its one shape):
    ``{"google": {"state", "fix", "since_ms", "before"}, "apple": {...}, "checked_ms"}``, a store
    present only when checked. ``since_ms``: when the store's state became what it is (kept from
    ``previous`` while the state is unchanged), so a broken access alerts once per episode;
    ``before``: the state it had until then (None: none known)."""
    doc: dict[str, Any] = {"checked_ms": now_ms}
    for store in STORES:
        result = results.get(store)
        if not result:
            continue
        state = str(result.get("state"))
        before = (previous or {}).get(store) or {}
        same = before.get("state") == state
        since = before.get("since_ms") if same else None
        doc[store] = {
            "state": state,
            "fix": str(result.get("fix") or "")[:500] or None,
            "since_ms": since if isinstance(since, int) else now_ms,
            # the state before this one began (None: the first check)
            "before": before.get("before") if same else before.get("state"),
        }
    return doc


def access_alerts(tenant: str, doc: Mapping[str, Any]) -> list[Alert]:
    """One alert per store whose latest check is broken (refused, or unconfigured after ``ok``),
    once per state and episode (``since_ms``); none for a document whose id is not a tenant
    id."""
    found: list[Alert] = []
    if not is_tenant_id(tenant):
        return found
    checked = doc.get("checked_ms")
    for store in STORES:
        check = doc.get(store)
        if not isinstance(check, Mapping):
            continue
        refused = check.get("state") in REFUSED_ACCESS
        turned_bad = check.get("state") in UNCONFIGURED_ACCESS and check.get("before") == "ok"
        if not (refused or turned_bad):
            continue
        state = str(check["state"])
        since = check.get("since_ms") if isinstance(check.get("since_ms"), int) else 0
        fix = check.get("fix") if isinstance(check.get("fix"), str) else None
        found.append(
            Alert(
                ACCESS_BROKEN,
                tenant,
                f"{store}:{state}:{since}",
                f"store_access:{tenant}:{store}",
                CRITICAL,
                f"refundguard cannot read {tenant}'s {store} account: {state}.",
                (
                    fix or "fix the access as docs/tenants.md (check access) says for this state"
                ).rstrip(". ")
                + "; then run check access again (POST /tenants/{id}:check-access).",
                {
                    "store": store,
                    "state": state,
                    "since": ms_to_iso(since) if since else None,
                    "checked": ms_to_iso(checked) if isinstance(checked, int) else None,
                },
            )
        )
    return found


def tenant_of(value: Any) -> str:
    """A record's tenant (None, missing or not a tenant id: written before tenants,
    ``default``)."""
    return value if is_tenant_id(value) else DEFAULT_TENANT


# ------------------------------------------------------------------------------ settings

DEFAULT_DEADLINE_HOURS = 4.0
DEFAULT_SPIKE_MIN_REFUNDS = 10
DEFAULT_RECONCILE_MINUTES = 60.0


@dataclass(frozen=True)
class AlertSettings:
    """``ALERTS`` (on/off), and each alert's threshold (docs/alerts.md)."""

    on: bool = True
    near_ms: int = int(DEFAULT_DEADLINE_HOURS * 3600_000)
    spike_floor: int = DEFAULT_SPIKE_MIN_REFUNDS
    reconcile_stale_ms: int = int(DEFAULT_RECONCILE_MINUTES * 60_000)

    @classmethod
    def read(cls, settings: Settings) -> AlertSettings:
        switch = settings.text("ALERTS", default="on").lower()
        if switch not in ("on", "off"):
            settings.problem(f"ALERTS must be on or off, not {switch[:20]!r}")
        hours = settings.number(
            "ALERT_DEADLINE_HOURS", default=DEFAULT_DEADLINE_HOURS, low=0.25, high=23
        )
        floor = settings.number(
            "ALERT_SPIKE_MIN_REFUNDS", default=DEFAULT_SPIKE_MIN_REFUNDS, low=1, high=1_000_000
        )
        minutes = settings.number(
            "ALERT_RECONCILE_MINUTES", default=DEFAULT_RECONCILE_MINUTES, low=15, high=10_080
        )
        return cls(switch != "off", int(hours * 3600_000), int(floor), int(minutes * 60_000))
