"""``events_sweep``: called by Cloud Scheduler (every 5 minutes by default), publishes every outbox
entry older than the grace period, in version order per entitlement, and deletes what it published.
Pub/Sub or Firestore unreachable: 503 (an ERROR line; the next run picks up where this one
stopped)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from .. import logs
from ..errors import method_not_allowed
from ..http import App, Reply, serve
from ..store import EntitlementStore, now_ms
from ..wiring import Wiring
from .settings import SweepSettings

if TYPE_CHECKING:
    import flask

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

    def handle(request: flask.Request) -> Reply:
        if request.method != "POST":
            raise method_not_allowed("POST", request.method)
        result = entitlements.outbox.sweep(
            now_ms=clock_ms(), grace_ms=grace_ms, budget_s=settings.firestore.deadline_s
        )
        logs.bind(effect="swept", published=result.published, pages=result.pages, more=result.more)
        return Reply(
            {"published": result.published, "pages": result.pages, "more": result.more},
            "events sweep",
        )

    return serve(FUNCTION, handle)
