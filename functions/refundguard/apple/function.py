"""``apple_notifications``: App Store Server Notifications V2 -> the entitlement ledger.

POST ``{"signedPayload": "<JWS>"}``. Answers (Apple retries a production notification five times,
over three days, on anything but 2xx; 4xx may not be retried):

- 200 ``{"result": "applied" | "recorded" | "stale" | "duplicate"}``: processed;
- 200 ``{"result": "acknowledged"}``: TEST, or a notification without a transaction to key by;
- 200 ``{"result": "quarantined"}``: verified, but missing a field a ledger event needs, or holding
  a value Firestore cannot store; kept whole in ``quarantine/apple:<notificationUUID>`` for a person
  to look at (a retry would not help);
- 400 ``{"error": "apple_<status>" | "bad_json" | "missing_signed_payload", "message": ...}``:
  not JSON, no ``signedPayload``, a JWS that fails verification, an app or environment that is not
  configured. Nothing is written; one WARNING log line says why (never the token itself);
- 503: the entitlement store is unreachable (Apple retries).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import flask

from .. import logs
from ..errors import Kind, RefundGuardError, rejected
from ..http import Handler, guarded, json_response, parse_json_object, read_body
from .notifications import UnmappableNotification, map_notification
from .settings import AppleSettings, load_settings
from .verifier import AppleVerifier

if TYPE_CHECKING:
    from ..store import EntitlementStore

FUNCTION = "apple_notifications"


def create_handler(
    env: Mapping[str, str],
    *,
    settings: AppleSettings | None = None,
    store: EntitlementStore | None = None,
    verifier: AppleVerifier | None = None,
) -> Handler:
    """Build the handler; raises ``ConfigError`` (the function does not start) on bad settings."""
    settings = settings or load_settings(env)
    verifier = verifier or settings.verifier()
    if store is None:
        from ..store import EntitlementStore  # google-cloud-firestore: imported once, at start-up

        store = EntitlementStore.from_env(env)
    logs.info(
        "apple_notifications ready",
        function=FUNCTION,
        bundle_ids=list(settings.bundle_ids),
        environments=list(settings.environments),
        roots=len(settings.roots),
    )
    return guarded(FUNCTION, _Handler(verifier, store))


class _Handler:
    def __init__(self, verifier: AppleVerifier, store: EntitlementStore) -> None:
        self._verifier = verifier
        self._store = store

    def __call__(self, request: flask.Request) -> flask.Response:
        if request.method != "POST":
            raise RefundGuardError(Kind.METHOD_NOT_ALLOWED, "method_not_allowed", "use POST")
        body = read_body(request)
        signed_payload = parse_json_object(body).get("signedPayload")
        if not isinstance(signed_payload, str) or not signed_payload:
            raise rejected("missing_signed_payload", 'the body must be {"signedPayload": "<JWS>"}')
        verified = self._verifier.verify_notification(signed_payload)  # 400 when it fails
        fields: dict[str, Any] = {
            "function": FUNCTION,
            "notification_type": verified.payload.get("notificationType"),
            "subtype": verified.payload.get("subtype"),
            "notification_uuid": verified.payload.get("notificationUUID"),
            "environment": verified.environment,
        }
        try:
            mapped = map_notification(verified)
        except UnmappableNotification as exc:
            return self._quarantine(exc, body, fields)
        if mapped.event is None:
            logs.info(
                "apple notification acknowledged",
                decision="acknowledged",
                reason=mapped.acknowledge_reason,
                **fields,
            )
            return json_response(
                200, {"result": "acknowledged", "reason": mapped.acknowledge_reason}
            )
        event = mapped.event
        try:
            result = self._store.apply(event)
        except RefundGuardError as err:
            if err.kind is not Kind.REJECTED:
                raise
            return self._quarantine(err, body, fields)  # e.g. a value Firestore cannot store
        status = result.entitlement.status.value if result.entitlement else None
        logs.info(
            "apple notification",
            decision=result.effect.value,
            status=status,
            entitlement=event.document_id,
            event_type=event.type,
            event_time_ms=event.event_time_ms,
            **fields,
        )
        return json_response(
            200, {"result": result.effect.value, "status": status, "entitlement": event.document_id}
        )

    def _quarantine(
        self, err: RefundGuardError, body: bytes, fields: dict[str, Any]
    ) -> flask.Response:
        """Verified, but never processable: kept whole, acknowledged (a retry would not help)."""
        uuid = fields.get("notification_uuid")
        key = f"apple:{uuid}" if isinstance(uuid, str) and uuid else None
        doc = self._store.quarantine(
            source="apple",
            code=err.code,
            reason=err.message,
            body=body,
            key=key,
            details={"verified": True},
        )
        logs.warning(
            "apple notification quarantined",
            decision="quarantined",
            code=err.code,
            reason=err.message,
            quarantine=doc,
            **fields,
        )
        return json_response(200, {"result": "quarantined", "reason": err.message})
