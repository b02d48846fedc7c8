"""``play_notifications``: a Pub/Sub push (or Eventarc CloudEvent) of a Google Play RTDN -> the
ingestion path. A message that can never be processed is quarantined and acknowledged (200); only
what a retry can fix answers 5xx. With ``PLAY_DEVELOPER_API=on`` the Play Developer API is asked
first (``playstore.judge``): a purchase it cannot verify yet answers 503 and writes nothing; a
revocation is applied whatever the API does."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from .. import logs
from ..errors import RefundGuardError, method_not_allowed
from ..http import App, Reply, read_body, serve
from ..model import StoreName
from ..playstore import envelope, rtdn
from ..storeapi import CallPolicy
from ..wiring import Wiring
from .settings import PlaySettings

if TYPE_CHECKING:
    import flask

    from ..ingest import Ingestion
    from ..playstore.api import PlayApiClient
    from ..store import EntitlementStore

FUNCTION = "play_notifications"
MAX_BODY_BYTES = 10 * 1024 * 1024
#: Timeouts and retries of the API calls (each call's deadline is ``playstore.judge``'s).
API_POLICY = CallPolicy()


def create_handler(
    env: Mapping[str, str],
    *,
    entitlements: EntitlementStore | None = None,
    play_api: PlayApiClient | None = None,
) -> App:
    settings = PlaySettings.from_env(env)
    if settings.push_auth is None:
        logs.warning(
            "PLAY_PUSH_SERVICE_ACCOUNTS is not set: only Cloud Run IAM stands between the internet "
            "and this function (fine locally, not in production)",
            function=FUNCTION,
        )
    wiring = Wiring.build(
        entitlements,
        settings.firestore,
        settings.events,
        function=FUNCTION,
        default_tenant=settings.default_tenant(),
    )
    ingestion = wiring.ingestion
    claimed = ClaimedPackages(ingestion)
    api = play_api
    if api is None and settings.api is not None:
        from ..playstore.api import PlayApiClient  # only when the API is on: a lighter cold start

        api = PlayApiClient(settings.api, policy=API_POLICY)

    def handle(request: flask.Request) -> Reply:
        if settings.push_auth is not None:  # before the body is read
            settings.push_auth.authenticate(request.headers.get("Authorization"))
        if request.method != "POST":
            raise method_not_allowed("POST", request.method)
        body = read_body(request, max_bytes=MAX_BODY_BYTES)
        message = envelope.parse(request.headers, body)
        logs.bind(message_id=message.message_id, delivery=message.delivery)
        notification = rtdn.parse(message, claimed)
        logs.bind(package=notification.package_name, notification=notification.type)
        applied = ingestion.play(notification, message.message_id, api)
        if applied is None:
            logs.bind(effect="test")
            return Reply(
                {"effect": "test", "status": None, "message_id": message.message_id},
                "test notification acknowledged",
            )
        return Reply(
            {
                "effect": applied.result.effect.value,
                "status": applied.status,
                "message_id": message.message_id,
            },
            "notification processed; the Play API refused us, see api_problem"
            if applied.alarm
            else "notification processed",
            severity="ERROR" if applied.alarm else "INFO",
        )

    def key_of(err: RefundGuardError) -> str | None:
        message_id = err.details.get("message_id")
        return f"play:{message_id}" if isinstance(message_id, str) and message_id else None

    return serve(FUNCTION, handle, on_rejected=ingestion.quarantiner("play", key_of=key_of))


class ClaimedPackages:
    """``package in claimed``: whether a tenant claims the package (the registry, cached)."""

    def __init__(self, ingestion: Ingestion) -> None:
        self._ingestion = ingestion

    def __contains__(self, package: object) -> bool:
        if not isinstance(package, str):
            return False
        return self._ingestion.tenant_of(StoreName.GOOGLE, package) is not None
