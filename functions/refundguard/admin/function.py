"""``admin``: the admin API (``adminapi``) behind Cloud Run IAM and the code's own check of each
caller's Google ID token; its one log line per call is the audit entry."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping

from ..adminapi.handler import admin_handler
from ..adminapi.settings import AdminSettings
from ..http import App, serve
from ..store import EntitlementStore, now_ms

FUNCTION = "admin"


def create_handler(
    env: Mapping[str, str],
    *,
    entitlements: EntitlementStore | None = None,
    clock_ms: Callable[[], int] = now_ms,
    new_event_id: Callable[[], str] = lambda: uuid.uuid4().hex,
) -> App:
    settings = AdminSettings.from_env(env)  # refuse to start if wrong
    handle = admin_handler(
        settings,
        function=FUNCTION,
        entitlements=entitlements,
        clock_ms=clock_ms,
        new_event_id=new_event_id,
    )
    return serve(FUNCTION, handle)
