"""``apple_notifications``: POST ``{"signedPayload": "<JWS>"}`` (App Store Server Notifications
V2), verified to a pinned root, then handed to the ingestion path. A JWS that fails verification
is a 400 and writes nothing; a verified notification that cannot be mapped is quarantined
(422)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .. import logs
from ..appstore.errors import VerificationStatus
from ..appstore.notifications import UnmappableNotification
from ..appstore.verifier import check_app
from ..errors import RefundGuardError, method_not_allowed, rejected
from ..http import App, Reply, parse_json_object, read_body, serve
from ..ingest import apple_event
from ..model import StoreName
from .settings import AppleSettings

if TYPE_CHECKING:
    import flask

    from ..appstore.verifier import AppCheck, AppleVerifier
    from ..ingest import Ingestion
    from ..store import EntitlementStore

FUNCTION = "apple_notifications"


def create_handler(
    env: Mapping[str, str],
    *,
    settings: AppleSettings | None = None,
    entitlements: EntitlementStore | None = None,
    verifier: AppleVerifier | None = None,
) -> App:
    """Build the handler; raises ``ConfigError`` (the function does not start) on bad settings."""
    settings = settings or AppleSettings.from_env(env)
    from ..wiring import Wiring  # google-cloud-firestore: imported once, at start-up

    wiring = Wiring.build(
        entitlements,
        settings.firestore,
        settings.events,
        function=FUNCTION,
        default_tenant=settings.default_tenant(),
    )
    ingestion = wiring.ingestion
    verifier = verifier or settings.verifier(tenant_apps(ingestion))
    logs.info(
        "apple_notifications ready",
        function=FUNCTION,
        bundle_ids=list(settings.bundle_ids),
        environments=list(settings.environments),
        roots=len(settings.roots),
    )

    def handle(request: flask.Request) -> Reply:
        if request.method != "POST":
            raise method_not_allowed("POST", request.method)
        signed_payload = parse_json_object(read_body(request)).get("signedPayload")
        if not isinstance(signed_payload, str) or not signed_payload:
            raise rejected("missing_signed_payload", 'the body must be {"signedPayload": "<JWS>"}')
        verified = verifier.verify_notification(signed_payload)  # 400 when it fails
        payload = verified.payload
        logs.bind(
            notification_type=payload.get("notificationType"),
            subtype=payload.get("subtype"),
            notification_uuid=payload.get("notificationUUID"),
            environment=verified.environment,
        )
        mapped = apple_event(verified)  # UnmappableNotification: quarantined
        event = mapped.event
        if event is None:
            logs.bind(effect="acknowledged", reason=mapped.acknowledge_reason)
            logs.bind(**app_transaction_facts(verifier, payload))
            return Reply(
                {"effect": "acknowledged", "status": None, "reason": mapped.acknowledge_reason},
                "apple notification acknowledged",
            )
        logs.bind(
            entitlement=event.document_id,
            event_type=event.type,
            event_time_ms=event.event_time_ms,
        )
        applied = ingestion.apply(
            event, app=verified.bundle_id or "", key=("notification_uuid", event.event_id)
        )
        return Reply(
            {
                "effect": applied.result.effect.value,
                "status": applied.status,
                "entitlement": event.document_id,
            },
            "apple notification processed",
        )

    def key_of(err: RefundGuardError) -> str | None:
        uuid = err.details.get("notification_uuid")
        return f"apple:{uuid}" if isinstance(uuid, str) and uuid else None

    on_rejected = ingestion.quarantiner(
        "apple",
        key_of=key_of,
        applies=lambda err: isinstance(err, UnmappableNotification) or err.code == "unstorable",
        status=422,  # verified, kept for a person, and never acceptable as it is
    )
    return serve(FUNCTION, handle, on_rejected=on_rejected)


def app_transaction_facts(verifier: AppleVerifier, payload: Mapping[str, Any]) -> dict[str, Any]:
    """What a notification's ``appData`` (RESCIND_CONSENT) says, for its log line: the app
    transaction is a JWS of its own, verified like every other (a failure is a 400)."""
    app_data = payload.get("appData")
    signed = app_data.get("signedAppTransactionInfo") if isinstance(app_data, dict) else None
    if not isinstance(signed, str):
        return {}
    app_transaction = verifier.verify_jws(signed)
    names = ("appTransactionId", "originalPlatform", "originalPurchaseDate", "bundleId")
    return {
        f"app_transaction.{name}": app_transaction[name]
        for name in names
        if isinstance(app_transaction.get(name), (str, int))
    }


def tenant_apps(ingestion: Ingestion) -> AppCheck:
    """The verifier's app check over the tenants: the bundle id must be claimed (the
    environment's ``default`` tenant or a registered one), in one of that app's environments,
    and in Production name that app's Apple ID. The registry unreachable: TRANSIENT (503)."""

    def check(
        bundle_id: str, environment: str, app_apple_id: int | None
    ) -> tuple[VerificationStatus, str] | None:
        tenant = ingestion.tenant_of(StoreName.APPLE, bundle_id)
        app = tenant.apple_app(bundle_id) if tenant is not None else None
        if tenant is None or app is None:
            return (
                VerificationStatus.INVALID_APP_IDENTIFIER,
                "bundleId is not claimed by any tenant",
            )
        logs.bind(tenant=tenant.id)
        return check_app(
            environment, app_apple_id, environments=app.environments, expected=app.app_apple_id
        )

    return check
