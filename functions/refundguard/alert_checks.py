"""The alert checks and their I/O (the decisions are ``alerts``'s): each check reads what it needs
from Firestore, and every alert it finds is sent once: ``alerts/{id}`` (created, never
overwritten) and the alert's ``outbox/{id}`` entry in one commit, then published like an access
event (``Outbox.deliver``; the sweep publishes what is left). An alert whose document exists was
sent before: nothing is written. A failing check is logged (ERROR) and never stops the others.
Run by the events sweep (``sweep.function``); docs/alerts.md."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from google.api_core import exceptions as gexc
from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter

from . import alerts, logs, refund_counts
from .alerts import Alert, AlertSettings, DayCounts, RequestView, RunView
from .firestore_calls import retry
from .refund_store import REFUND_REQUESTS
from .serializer import ms_to_datetime, to_firestore

if TYPE_CHECKING:
    from .outbox import Outbox

ALERTS = "alerts"
RUNS = "reconcile_runs"  # reconciliation.state.RUNS, read as plain documents (read_runs)
MAX_READ = 2000  # documents one check reads at most in one run
MAX_KNOWN = 10_000
#: The checks of one run start within this many seconds (after the sweep's own
#: FIRESTORE_DEADLINE_SECONDS), each Firestore call within CALL_TIMEOUT_S: a run stays under the
#: function's timeout (60 s by default) even when Firestore is slow.
BUDGET_S = 20.0
CALL_TIMEOUT_S = 8.0


class AlertSender:
    """Sends each alert once; remembers (in this instance) the ids known to be sent, so a
    condition that lasts costs no write, and the spike check no read, after its first alert."""

    def __init__(self, client: firestore.Client, outbox: Outbox, *, timeout_s: float) -> None:
        self._client = client
        self._outbox = outbox
        self._timeout_s = timeout_s
        self._known: set[str] = set()

    def known(self, alert_id: str) -> bool:
        return alert_id in self._known

    def send(self, alert: Alert, *, now_ms: int) -> bool:
        """Whether the alert was new (and is now committed, and published or left for the
        sweep). Firestore unreachable: raises (the check fails; the next run tries again)."""
        if alert.id in self._known:
            return False
        entry = alerts.outbox_entry(alert, source=self._outbox.source, now_ms=now_ms)
        record = {
            "kind": alert.kind,
            "tenant": alert.tenant,
            "key": alert.key,
            "subject": alert.subject,
            "severity": alert.severity,
            "summary": alert.summary,
            "created_ms": now_ms,
            "created_at": ms_to_datetime(now_ms),
        }
        batch = self._client.batch()
        batch.create(self._client.collection(ALERTS).document(alert.id), record)
        batch.create(self._outbox.ref(entry.event_id), to_firestore(entry))
        try:
            batch.commit(retry=retry(self._timeout_s), timeout=self._timeout_s)
        except gexc.AlreadyExists:
            self._remember(alert.id)
            return False
        self._remember(alert.id)
        logs.warning(
            f"alert: {alert.summary}",
            alert_kind=alert.kind,
            alert_id=alert.id,
            alert_severity=alert.severity,
            tenant=alert.tenant,
            subject=alert.subject,
            action=alert.action,
        )
        self._outbox.deliver(entry, delete_now=True)
        return True

    def _remember(self, alert_id: str) -> None:
        if len(self._known) >= MAX_KNOWN:
            self._known.clear()
        self._known.add(alert_id)


class AlertChecks:
    """The four checks (five kinds of alert), each over one Firestore client."""

    def __init__(
        self,
        client: firestore.Client,
        sender: AlertSender,
        settings: AlertSettings,
        *,
        timeout_s: float,
        checks: Mapping[str, Callable[[int], list[Alert]]] | None = None,
    ) -> None:
        self._client = client
        self._sender = sender
        self._settings = settings
        self._timeout_s = min(timeout_s, CALL_TIMEOUT_S)
        self._retry = retry(self._timeout_s)
        self._turn = 0
        self._checks = checks or {
            "refund_requests": self.refund_requests,
            "refund_spikes": self.refund_spikes,
            "reconciliation": self.reconciliation,
            "store_access": self.store_access,
        }

    def run(self, now_ms: int) -> dict[str, Any]:
        """Every check, whatever the others do, while ``BUDGET_S`` lasts (the checks left are
        ``skipped``, and the next run starts with them: the order turns each run):
        ``{"sent": n, "failed": [...], "skipped": [...]}`` (check names)."""
        sent, failed, skipped = 0, [], []
        names = list(self._checks)
        first = self._turn % len(names)
        self._turn += 1
        ends = time.monotonic() + BUDGET_S
        for name in names[first:] + names[:first]:
            check = self._checks[name]
            started = time.monotonic()
            if started >= ends:
                skipped.append(name)
                continue
            try:
                for alert in check(now_ms):
                    sent += self._sender.send(alert, now_ms=now_ms)
            except Exception as exc:  # any failure of one check: logged, the others still run
                failed.append(name)
                logs.error(
                    "alert check failed: it runs again with the next sweep",
                    check=name,
                    error=type(exc).__name__,
                    cause=logs.cause_text(exc) or str(exc)[:300],
                    elapsed_s=round(time.monotonic() - started, 3),
                )
        return {"sent": sent, "failed": failed, "skipped": skipped}

    def _stream(self, query: firestore.Query) -> Iterator[firestore.DocumentSnapshot]:
        return query.stream(retry=self._retry, timeout=self._timeout_s)

    # -------------------------------------------------------------------- the checks

    def refund_requests(self, now_ms: int) -> list[Alert]:
        """Requests without an answer whose deadline is within ``near_ms`` or passed in the last
        day: one query (index: state, deadline_ms)."""
        query = (
            self._client.collection(REFUND_REQUESTS)
            .where(filter=FieldFilter("state", "in", list(alerts.UNANSWERED)))
            .where(filter=FieldFilter("deadline_ms", ">=", now_ms - alerts.EXPIRED_LOOKBACK_MS))
            .where(filter=FieldFilter("deadline_ms", "<", now_ms + self._settings.near_ms))
            .order_by("deadline_ms")
            .limit(MAX_READ)
        )
        views = []
        for snap in self._stream(query):
            d = snap.to_dict() or {}
            views.append(
                RequestView(
                    id=str(d.get("id") or snap.id),
                    tenant=alerts.tenant_of(d.get("tenant")),
                    store=str(d.get("store")),
                    state=str(d.get("state")),
                    deadline_ms=int(d.get("deadline_ms") or 0),
                    reason=d.get("reason") if isinstance(d.get("reason"), str) else None,
                    order_id=d.get("order_id"),
                    transaction_id=d.get("transaction_id"),
                )
            )
        found = alerts.request_alerts(views, now_ms=now_ms, near_ms=self._settings.near_ms)
        return [a for a in found if not self._sender.known(a.id)]

    def refund_spikes(self, now_ms: int) -> list[Alert]:
        """Today's counts (one query on ``day``); for a tenant above the floor whose alert is not
        sent yet, its previous 28 days (one ``get_all``)."""
        today = alerts.day_of(now_ms)
        floor = self._settings.spike_floor
        counts = self._client.collection(refund_counts.REFUND_DAYS)
        query = counts.where(filter=FieldFilter("day", "==", today)).limit(MAX_READ)
        by_tenant = _sum_days(snap.to_dict() or {} for snap in self._stream(query))
        found: list[Alert] = []
        for tenant, days in sorted(by_tenant.items()):
            day = days.get(today) or DayCounts(tenant, today)
            keys = [f"{today}:*"] * (day.refunds > floor)
            keys += [f"{today}:{p}" for p, n in day.products.items() if n > floor]
            if all(
                self._sender.known(alerts.alert_id(alerts.REFUND_SPIKE, tenant, k)) for k in keys
            ):
                continue
            start = alerts.day_start_ms(now_ms)
            previous_days = [
                alerts.day_of(start - i * alerts.DAY_MS) for i in range(1, alerts.SPIKE_DAYS + 1)
            ]
            refs = [
                counts.document(refund_counts.doc_id(tenant, d, shard))
                for d in previous_days
                for shard in range(refund_counts.SHARDS)
            ]
            snaps = self._client.get_all(refs, retry=self._retry, timeout=self._timeout_s)
            past = _sum_days((s.to_dict() or {}) for s in snaps if s.exists).get(tenant, {})
            found += alerts.spike_alerts(day, list(past.values()), floor=floor)
        return found

    def reconciliation(self, now_ms: int) -> list[Alert]:
        stale = self._settings.reconcile_stale_ms
        timeout_s = self._timeout_s
        runs = read_runs(self._client, since_ms=now_ms - 2 * stale, timeout_s=timeout_s)
        if not runs:  # nothing lately: the newest runs, if any, say whom it concerns
            runs = read_runs(self._client, since_ms=None, timeout_s=timeout_s, limit=200)
        found = alerts.reconcile_alerts(runs, now_ms=now_ms, stale_ms=stale)
        return [a for a in found if not self._sender.known(a.id)]

    def store_access(self, now_ms: int) -> list[Alert]:
        query = self._client.collection(alerts.ACCESS_CHECKS).limit(MAX_READ)
        found: list[Alert] = []
        for snap in self._stream(query):
            found += alerts.access_alerts(snap.id, snap.to_dict() or {})
        return [a for a in found if not self._sender.known(a.id)]


def record_access_check(
    client: firestore.Client,
    tenant: str,
    results: Mapping[str, Mapping[str, Any]],
    *,
    now_ms: int,
    timeout_s: float,
) -> dict[str, Any]:
    """Write the latest check-access result of ``tenant`` (``{"google": {"state", "fix"...},
    "apple": {...}}``, each store's ``store_access.Check.to_json()``) as ``access_checks/{tenant}``
    (``alerts.access_check_document``, keeping each unchanged state's ``since_ms``), for the
    store-access alert; the check-access route calls it. Returns the document written."""
    ref = client.collection(alerts.ACCESS_CHECKS).document(tenant)
    snap = ref.get(retry=retry(timeout_s), timeout=timeout_s)
    previous = snap.to_dict() if snap.exists else None
    doc = alerts.access_check_document(results, previous=previous, now_ms=now_ms)
    ref.set(doc, retry=retry(timeout_s), timeout=timeout_s)
    return doc


def read_runs(
    client: firestore.Client, *, since_ms: int | None, timeout_s: float, limit: int = MAX_READ
) -> list[RunView]:
    """The reconciler's run records (``reconcile_runs``) started since ``since_ms``, newest first,
    as the check needs them: the one place that knows their fields (``tenant`` None or missing:
    a run from before tenants, counted as ``default``)."""
    query: Any = client.collection(RUNS)
    if since_ms is not None:
        query = query.where(filter=FieldFilter("started_ms", ">=", since_ms))
    query = query.order_by("started_ms", direction=firestore.Query.DESCENDING).limit(limit)
    views = []
    for snap in query.stream(retry=retry(timeout_s), timeout=timeout_s):
        d = snap.to_dict() or {}
        sources = d.get("sources") if isinstance(d.get("sources"), list) else []
        errors = sum(len(s.get("errors") or []) for s in sources if isinstance(s, dict))
        views.append(
            RunView(
                run_id=str(d.get("run_id") or snap.id),
                tenant=alerts.tenant_of(d.get("tenant")),
                started_ms=int(d.get("started_ms") or 0),
                state=str(d.get("state")),
                errors=errors,
                error=d.get("error") if isinstance(d.get("error"), str) else None,
            )
        )
    return views


def _sum_days(docs: Iterator[dict[str, Any]] | Any) -> dict[str, dict[str, DayCounts]]:
    """Shard documents summed per tenant and day."""
    totals: dict[str, dict[str, dict[str, Any]]] = {}
    for d in docs:
        tenant, day = d.get("tenant"), d.get("day")
        if not isinstance(tenant, str) or not isinstance(day, str):
            continue
        slot = totals.setdefault(tenant, {}).setdefault(day, {"refunds": 0, "products": {}})
        slot["refunds"] += int(d.get("refunds") or 0)
        products = d.get("products") if isinstance(d.get("products"), dict) else {}
        for product, n in products.items():
            slot["products"][product] = slot["products"].get(product, 0) + int(n or 0)
    return {
        tenant: {
            day: DayCounts(tenant, day, v["refunds"], v["products"]) for day, v in days.items()
        }
        for tenant, days in totals.items()
    }
