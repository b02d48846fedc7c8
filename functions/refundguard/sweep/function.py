"""``events_sweep``: called by Cloud Scheduler (every 5 minutes by default), publishes every outbox
entry older than the grace period, in version order per entitlement, and deletes what it published;
then runs the alert checks (``alert_checks``, docs/alerts.md; ``ALERTS=off``: none). Pub/Sub or
Firestore unreachable, or a check failing: 503 (an ERROR line) after everything else ran; the next
run picks up where this one stopped."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from .. import logs
from ..errors import RefundGuardError, method_not_allowed, transient
from ..http import App, Reply, serve
from ..store import EntitlementStore, now_ms
from ..wiring import Wiring
from .settings import SweepSettings

if TYPE_CHECKING:
    import flask

    from ..alert_checks import AlertChecks

FUNCTION = "events_sweep"


def create_handler(
    env: Mapping[str, str],
    *,
    entitlements: EntitlementStore | None = None,
    clock_ms: Callable[[], int] = now_ms,
) -> App:
    settings = SweepSettings.from_env(env)  # refuse to start if wrong
    entitlements = Wiring.build(
        entitlements, settings.firestore, settings.events, function=FUNCTION
    ).entitlements
    grace_ms = int(settings.grace_s * 1000)
    checks: AlertChecks | None = None
    if settings.alerts.on:
        from ..alert_checks import AlertChecks, AlertSender

        timeout_s = settings.firestore.deadline_s
        sender = AlertSender(entitlements.client, entitlements.outbox, timeout_s=timeout_s)
        checks = AlertChecks(entitlements.client, sender, settings.alerts, timeout_s=timeout_s)

    def handle(request: flask.Request) -> Reply:
        if request.method != "POST":
            raise method_not_allowed("POST", request.method)
        swept: RefundGuardError | None = None
        body: dict[str, object] = {}
        try:
            result = entitlements.outbox.sweep(
                now_ms=clock_ms(), grace_ms=grace_ms, budget_s=settings.firestore.deadline_s
            )
            body = {"published": result.published, "pages": result.pages, "more": result.more}
            logs.bind(effect="swept", **body)
        except RefundGuardError as err:  # the alert checks run anyway
            swept = err
        if checks is not None:
            report = checks.run(clock_ms())
            logs.bind(
                alerts_sent=report["sent"],
                alert_checks_failed=report["failed"] or None,
                alert_checks_skipped=report["skipped"] or None,
            )
            body["alerts"] = report
            if swept is None and report["failed"]:
                err = transient("alert_check_failed", "an alert check failed; it runs again")
                err.details.update(report)
                raise err
        if swept is not None:
            raise swept
        return Reply(body, "events sweep")

    return serve(FUNCTION, handle)
