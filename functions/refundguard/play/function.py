"""``play_notifications``: a Pub/Sub push (or Eventarc CloudEvent) of a Google Play RTDN -> the
ledger. A message that can never be processed is quarantined and acknowledged (200); only what a
retry can fix answers 5xx."""

from __future__ import annotations

from collections.abc import Mapping

import flask

from .. import logs
from ..errors import RefundGuardError, method_not_allowed
from ..http import App, Reply, read_body, serve
from ..quarantine import quarantiner
from ..store import EntitlementStore
from . import envelope, rtdn
from .settings import PlaySettings

FUNCTION = "play_notifications"
MAX_BODY_BYTES = 10 * 1024 * 1024


def create_handler(env: Mapping[str, str], *, store: EntitlementStore | None = None) -> App:
    settings = PlaySettings.from_env(env)
    if settings.push_auth is None:
        logs.warning(
            "PLAY_PUSH_SERVICE_ACCOUNTS is not set: only Cloud Run IAM stands between the internet "
            "and this function (fine locally, not in production)",
            function=FUNCTION,
        )
    entitlements = store or EntitlementStore.connect(
        settings.firestore, settings.events, function=FUNCTION
    )

    def handle(request: flask.Request) -> Reply:
        if settings.push_auth is not None:  # before the body is read
            settings.push_auth.authenticate(request.headers.get("Authorization"))
        if request.method != "POST":
            raise method_not_allowed("POST", request.method)
        body = read_body(request, max_bytes=MAX_BODY_BYTES)
        message = envelope.parse(request.headers, body)
        logs.bind(message_id=message.message_id, delivery=message.delivery)
        notification = rtdn.parse(message, settings.package_names)
        logs.bind(package=notification.package_name, notification=notification.type)
        event = notification.event
        if event is None:
            logs.bind(effect="test")
            return Reply(
                {"effect": "test", "status": None, "message_id": message.message_id},
                "test notification acknowledged",
            )
        logs.bind(token_hash=logs.token_hash(event.purchase_id), event_time_ms=event.event_time_ms)
        try:
            result = entitlements.apply(event)
        except RefundGuardError as err:  # unstorable: quarantined under this message's key
            err.details.setdefault("message_id", message.message_id)
            raise
        status = result.entitlement.status.value if result.entitlement else None
        logs.bind(effect=result.effect.value, status=status, attempts=result.attempts)
        return Reply(
            {"effect": result.effect.value, "status": status, "message_id": message.message_id},
            "notification processed",
        )

    def key_of(err: RefundGuardError) -> str | None:
        message_id = err.details.get("message_id")
        return f"play:{message_id}" if isinstance(message_id, str) and message_id else None

    return serve(FUNCTION, handle, on_rejected=quarantiner(entitlements, "play", key_of=key_of))
