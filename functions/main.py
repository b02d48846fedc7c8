"""Cloud Functions entry points: ``play_notifications``, ``apple_notifications``, ``admin``.

Each entry point is an HTTP function. Its handler (and everything it imports) is loaded once, on
first use, so a deployment of one function never imports the other two. When ``FUNCTION_TARGET``
names one of them (Cloud Functions sets it; ``make run`` does too), that handler is built at import
time, so a misconfigured function refuses to start instead of failing its first request.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from typing import Any

_MODULES = {
    "play_notifications": "refundguard.play.function",
    "apple_notifications": "refundguard.apple.function",
    "admin": "refundguard.admin.function",
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
    """Authenticated admin API: look up, re-grant and revoke entitlements."""
    return _handler("admin")(request)


if os.environ.get("FUNCTION_TARGET") in _MODULES:
    _handler(os.environ["FUNCTION_TARGET"])
