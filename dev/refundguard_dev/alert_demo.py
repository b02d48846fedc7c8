"""``make run``'s alert demo: Firestore data for which the events sweep fires one alert of each
kind (docs/alerts.md) for the tenant ``demo-creator``, written through refundguard's own code
(the refund store, the entitlement store's refunds and their day counters, the check-access
document's shape) plus a failed reconciler run record. Never deployed."""

from __future__ import annotations

from typing import Any

from refundguard import alerts
from refundguard.model import LedgerEvent, Source, Status, StoreName
from refundguard.refund_store import RefundStore
from refundguard.refunds import GOOGLE_WINDOW_MS, RefundRequest
from refundguard.store import EntitlementStore

TENANT = "demo-creator"
HOUR_MS = 3600 * 1000
SPIKE_REFUNDS = 12  # above ALERT_SPIKE_MIN_REFUNDS' default (10), with no refunds before


def _request(n: int, deadline_ms: int) -> RefundRequest:
    return RefundRequest(
        id=f"google:alert-demo-{n}",
        kind="google_refund_review",
        store="google",
        environment="Production",
        entitlement_id=f"google:alert-demo-request-{n}",
        purchase_id=f"alert-demo-request-{n}",
        app="com.demo.creator",
        received_ms=deadline_ms - GOOGLE_WINDOW_MS,
        deadline_ms=deadline_ms,
        order_id=f"GPA.0000-0000-0000-{n:05d}",
        reason="waiting for the platform's consumption report",
        tenant=TENANT,
    )


def seed(client: Any, now_ms: int) -> None:
    """Idempotent: the same ids every time (a second run changes nothing new)."""
    refunds = RefundStore(client, timeout_s=20)
    refunds.record(_request(1, now_ms + HOUR_MS))  # an hour left, no answer
    refunds.record(_request(2, now_ms - 10 * 60_000))  # expired ten minutes ago
    store = EntitlementStore(client)  # events off: the refunds themselves send nothing
    for n in range(SPIKE_REFUNDS):
        store.apply(
            LedgerEvent(
                store=StoreName.GOOGLE,
                purchase_id=f"alert-demo-refund-{n}",
                event_id=f"void:GPA.0000-0000-0001-{n:05d}",
                source=Source.GOOGLE,
                type="VOIDED_PURCHASE",
                event_time_ms=now_ms - n * 60_000,
                effect=Status.REVOKED,
                product_id="demo.course",
                tenant=TENANT,
            )
        )
    started = now_ms - 2 * HOUR_MS
    client.collection("reconcile_runs").document("alert-demo-run").set(
        {
            "run_id": "alert-demo-run",
            "tenant": TENANT,
            "trigger": "scheduled",
            "started_ms": started,
            "finished_ms": started + 5000,
            "state": "failed",
            "sources": [],
            "refund_requests": {},
            "error": "demo: the store API refused the key",
        }
    )
    check = {"apple": {"state": "key_refused", "fix": "Upload a valid In-App Purchase key"}}
    client.collection(alerts.ACCESS_CHECKS).document(TENANT).set(
        alerts.access_check_document(check, previous=None, now_ms=now_ms)
    )
