"""``reconcile``: called by Cloud Scheduler (every 30 minutes by default) or by the admin function
(``POST /reconciliation:run``). With ``RECONCILE_WORK_TOPIC`` (deployed): a fanned-out run
(``reconciliation.fanout``): one work message per tenant x source published for
``reconcile_worker``, what was published answered. Without it (one process, e.g. tests): one
``reconciliation.run`` walking the environment's apps (an overlapping call answers 409
``reconcile_running``), its record answered. Its summary is on the one log line."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from .. import logs
from ..errors import method_not_allowed, rejected, transient
from ..http import App, Reply, parse_json_object, read_body, serve
from ..reconciliation.run import Reconciler
from ..reconciliation.settings import ReconcileSettings
from ..store import EntitlementStore, now_ms
from ..storeapi import CallPolicy
from ..wiring import Wiring

if TYPE_CHECKING:
    import flask

    from ..appstore.api import AppStoreApiClient
    from ..playstore.api import PlayApiClient

FUNCTION = "reconcile"
API_POLICY = CallPolicy(deadline_s=20.0)
#: What may ask for a run (and what the admin function sends).
_TRIGGERS = frozenset({"schedule", "admin"})
_ACTOR = re.compile(r"[A-Za-z0-9._:@+-]{1,254}")
_REQUEST_ID = re.compile(r"[0-9a-f]{32}")


def create_handler(
    env: Mapping[str, str],
    *,
    entitlements: EntitlementStore | None = None,
    play_api: PlayApiClient | None = None,
    apple_api: AppStoreApiClient | None = None,
    clock_ms: Callable[[], int] = now_ms,
    sleep: Callable[[float], None] = time.sleep,
) -> App:
    settings = ReconcileSettings.from_env(env)  # refuse to start if wrong
    wiring = Wiring.build(
        entitlements,
        settings.firestore,
        settings.events,
        function=FUNCTION,
        clock_ms=clock_ms,
        default_tenant=settings.default_tenant(),
    )
    if settings.work is not None:
        return serve(FUNCTION, fan_out_handler(settings, wiring))
    play = play_api
    if play is None and settings.play_api is not None:
        from ..playstore.api import PlayApiClient  # each client imported when its API is on

        play = PlayApiClient(settings.play_api, policy=API_POLICY)
    apple = apple_api
    if apple is None and settings.apple is not None:
        from ..appstore.api import AppStoreApiClient

        apple = AppStoreApiClient(settings.apple.api, policy=API_POLICY)
    if play is None and apple is None:
        logs.warning(
            "neither the Play Developer API nor the App Store Server API is configured: the "
            "reconciler catches nothing and answers no refund request",
            function=FUNCTION,
        )
    reconciler = Reconciler(settings.scope(), wiring, play, apple, sleep=sleep)

    def handle(request: flask.Request) -> Reply:
        if request.method != "POST":
            raise method_not_allowed("POST", request.method)
        run = reconciler.run(**asked(read_body(request, max_bytes=4096)))
        failed = any(source["errors"] for source in run["sources"])
        return Reply(run, "reconciliation run", severity="ERROR" if failed else "INFO")

    return serve(FUNCTION, handle)


def fan_out_handler(
    settings: ReconcileSettings, wiring: Wiring
) -> Callable[[flask.Request], Reply]:
    """A run as work messages on ``RECONCILE_WORK_TOPIC`` (nothing walked here)."""
    from ..publisher import Publisher, PublishError
    from ..reconciliation.fanout import FanOut

    assert settings.work is not None
    publisher = Publisher(settings.work)
    apis = settings.tenant_apis(API_POLICY)

    def publish(messages: list[dict[str, object]]) -> None:
        try:
            publisher.publish_messages(messages, per_request=len(messages) or 1)
        except PublishError as err:
            raise transient("work_not_published", str(err)) from err

    fan_out = FanOut(wiring, apis, publish)

    def handle(request: flask.Request) -> Reply:
        if request.method != "POST":
            raise method_not_allowed("POST", request.method)
        dispatched = fan_out.run(**asked(read_body(request, max_bytes=4096)))
        return Reply(dispatched, "reconciliation run dispatched")

    return handle


def asked(body: bytes) -> dict[str, str]:
    """The optional body the admin function sends: ``trigger``, ``actor`` and ``request_id`` (its
    nonce, to find the run by). A run id is never taken: the reconciler makes its own."""
    if not body.strip():
        return {}
    fields = parse_json_object(body)
    unknown = sorted(set(fields) - {"trigger", "actor", "request_id"})
    if unknown:
        raise rejected(
            "unknown_field",
            f"unknown field(s): {', '.join(unknown)[:200]} (run ids are made by the reconciler)",
        )
    checks = {"trigger": _TRIGGERS.__contains__, "actor": _ACTOR.fullmatch}
    checks["request_id"] = _REQUEST_ID.fullmatch
    out: dict[str, str] = {}
    for name, check in checks.items():
        value = fields.get(name)
        if value is None:
            continue
        if not isinstance(value, str) or not check(value):
            raise rejected("bad_field", f"{name} is not valid")
        out[name] = value
    return out
