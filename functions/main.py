"""Cloud Functions entry points: the Play and Apple notification handlers, the admin API and its
web console, the scheduled events sweep, the scheduled reconciler and its worker. Each loads only
its own function package (an adapter) and the libraries below it, once; the one that
``FUNCTION_TARGET``
names is built at import, so a misconfigured function refuses to start, naming every problem on
its own log line, instead of failing its first request."""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from typing import Any

_MODULES = {
    "play_notifications": "refundguard.play.function",
    "apple_notifications": "refundguard.apple.function",
    "admin": "refundguard.admin.function",
    "events_sweep": "refundguard.sweep.function",
    "reconcile": "refundguard.reconcile.function",
    "reconcile_worker": "refundguard.reconcile_worker.function",
    "admin_console": "refundguard.console.function",
}
_handlers: dict[str, Callable[[Any], Any]] = {}


def _handler(name: str) -> Callable[[Any], Any]:
    handler = _handlers.get(name)
    if handler is None:
        module = importlib.import_module(_MODULES[name])
        handler = _handlers[name] = module.create_handler(os.environ)
    return handler


def play_notifications(request: Any) -> Any:
    """Google Play Real-time Developer Notifications (Pub/Sub push or Eventarc CloudEvent)."""
    return _handler("play_notifications")(request)


def apple_notifications(request: Any) -> Any:
    """App Store Server Notifications V2 (``{"signedPayload": "<JWS>"}``)."""
    return _handler("apple_notifications")(request)


def admin(request: Any) -> Any:
    """Authenticated admin API: look up (by purchase or store order id), re-grant and revoke."""
    return _handler("admin")(request)


def events_sweep(request: Any) -> Any:
    """Scheduled: publishes the access-change events still in the outbox."""
    return _handler("events_sweep")(request)


def reconcile(request: Any) -> Any:
    """Scheduled (and admin-triggered): catches missed refunds, answers refund requests."""
    return _handler("reconcile")(request)


def reconcile_worker(request: Any) -> Any:
    """Pub/Sub push: one page of one tenant's source of a fanned-out reconciliation run."""
    return _handler("reconcile_worker")(request)


def admin_console(request: Any) -> Any:
    """The admin console: its page, and the admin API for the console OAuth client's tokens."""
    return _handler("admin_console")(request)


def _start(name: str) -> None:
    from refundguard import logs
    from refundguard.config import ConfigError

    try:
        _handler(name)
    except ConfigError as err:
        for problem in err.problems:
            logs.log("CRITICAL", f"configuration: {problem}", function=name)
        logs.log("CRITICAL", f"{name} did not start: fix the settings above", function=name)
        raise SystemExit(3) from None


if os.environ.get("FUNCTION_TARGET") in _MODULES:
    _start(os.environ["FUNCTION_TARGET"])
