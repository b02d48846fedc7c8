"""``admin_console``: the console's page and the admin API on one origin, for browsers.

A browser cannot pass Cloud Run's IAM check (a page load carries no Authorization header, and a
cross-origin call's preflight carries none either), so this function is public at the Cloud Run
layer and does the whole check itself, on every API request, with the admin function's own code:
the same ``ADMIN_EMAILS``, idempotency and audit line; it accepts only ID tokens issued to the
console's OAuth client id (Google Identity Services on the page). Page and files need no token:
they hold no data. See docs/console.md."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from .. import logs
from ..adminapi.handler import admin_handler
from ..http import App, Reply, serve
from ..store import EntitlementStore, now_ms
from .settings import ConsoleSettings
from .site import Site

if TYPE_CHECKING:
    import flask

FUNCTION = "admin_console"


def create_handler(
    env: Mapping[str, str],
    *,
    entitlements: EntitlementStore | None = None,
    clock_ms: Callable[[], int] = now_ms,
    new_event_id: Callable[[], str] = lambda: uuid.uuid4().hex,
) -> App:
    settings = ConsoleSettings.from_env(env)  # refuse to start if wrong
    site = Site.load(
        client_id=settings.client_id, sign_in_url=settings.sign_in_url, local=settings.local
    )
    api = admin_handler(
        settings.admin,
        function=FUNCTION,
        entitlements=entitlements,
        clock_ms=clock_ms,
        new_event_id=new_event_id,
    )

    def handle(request: flask.Request) -> Reply:
        page = site.find(request.method, request.path)
        if page is not None:
            return page
        logs.bind(via="console")
        return api(request)

    app = serve(FUNCTION, handle)

    def console(request: flask.Request) -> flask.Response:
        response = app(request)
        for name, value in site.api_headers.items():
            response.headers.setdefault(name, value)
        return response

    return console
