"""The ``play_notifications`` HTTP function: Pub/Sub push (or Eventarc) -> ledger.

Responses (Pub/Sub acknowledges any 2xx and retries anything else):

- 200 ``applied`` / ``recorded`` / ``stale`` / ``duplicate`` / ``test``: done, acknowledge;
- 200 ``quarantined``: the message can never be processed (bad base64 or JSON, unknown package,
  no purchase token, a value Firestore cannot store...): it is stored whole in the ``quarantine``
  collection with the reason, then acknowledged, so nothing is silently dropped and nothing loops
  until the dead-letter topic;
- 503: Firestore unreachable or too slow: Pub/Sub retries with backoff (then dead-letters);
- 401 / 403: the request does not carry an ID token of the push identity (see below).

Who may call: Cloud Run lets only the push subscription's identity invoke the function (IAM, set up
by ``infra/``). The function does not rely on that alone: with ``PLAY_PUSH_SERVICE_ACCOUNTS`` set
(Terraform sets it to the push identity), every request must carry a Google-signed OIDC token of one
of those service accounts (``Authorization: Bearer``; Pub/Sub adds it to every push), checked before
the body is read. A forged "purchased" notification could otherwise grant access if the IAM wall
were ever opened by mistake. The token's audience is not checked here (Cloud Run checks it; the
push identity is dedicated to this one subscription). Unset, the check is off and a WARNING says so
at start-up: for local runs only.

One structured log line per message: message id, package, token hash (never the token), decision.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import flask

from .. import config, logs, oidc
from ..errors import Kind, RefundGuardError
from ..http import Handler, cause_text, error_response, guarded, json_response, read_body
from ..store import EntitlementStore
from . import envelope, rtdn

FUNCTION = "play_notifications"


@dataclass(frozen=True)
class PlaySettings:
    package_names: tuple[str, ...]
    push_service_accounts: tuple[str, ...]
    push_certs_url: str

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> PlaySettings:
        return cls(
            package_names=config.csv_list(env, "PLAY_PACKAGE_NAMES", required=True),
            push_service_accounts=config.csv_list(env, "PLAY_PUSH_SERVICE_ACCOUNTS"),
            push_certs_url=oidc.check_certs_url(
                config.text(env, "PLAY_PUSH_CERTS_URL", default=oidc.GOOGLE_CERTS_URL),
                setting="PLAY_PUSH_CERTS_URL",
            ),
        )

    def push_authenticator(self) -> oidc.Authenticator | None:
        if not self.push_service_accounts:
            return None
        allowed = oidc.AllowList(self.push_service_accounts, setting="PLAY_PUSH_SERVICE_ACCOUNTS")
        if allowed.domains:
            raise config.ConfigError("PLAY_PUSH_SERVICE_ACCOUNTS takes service account emails only")
        verifier = oidc.IdTokenVerifier(None, oidc.CertCache(self.push_certs_url))
        return oidc.Authenticator(
            verifier, allowed, function=FUNCTION, forbidden_code="not_the_push_identity"
        )


def create_handler(env: Mapping[str, str], *, store: EntitlementStore | None = None) -> Handler:
    settings = PlaySettings.from_env(env)
    push_auth = settings.push_authenticator()
    if push_auth is None:
        logs.warning(
            "PLAY_PUSH_SERVICE_ACCOUNTS is not set: only Cloud Run IAM stands between the internet "
            "and this function (fine locally, not in production)",
            function=FUNCTION,
        )
    entitlements = store or EntitlementStore.from_env(env)

    def handle(request: flask.Request) -> flask.Response:
        if push_auth is not None:
            push_auth.authenticate(request.headers.get("Authorization"))
        if request.method != "POST":
            raise RefundGuardError(Kind.METHOD_NOT_ALLOWED, "method_not_allowed", "use POST")
        body = read_body(request, max_bytes=10 * 1024 * 1024)
        try:
            message = envelope.parse(request.headers, body)
            notification = rtdn.parse(message, settings.package_names)
        except RefundGuardError as err:
            if err.kind is not Kind.REJECTED:
                raise
            return _quarantine(entitlements, err, body)

        fields = {
            "function": FUNCTION,
            "message_id": message.message_id,
            "package": notification.package_name,
            "notification": notification.type,
            "delivery": message.delivery,
        }
        event = notification.event
        if event is None:
            logs.info("test notification acknowledged", decision="test", **fields)
            return json_response(200, {"status": "test", "message_id": message.message_id})

        fields.update(
            token_hash=logs.token_hash(event.purchase_id), event_time_ms=event.event_time_ms
        )
        try:
            result = entitlements.apply(event)
        except RefundGuardError as err:
            if err.kind is Kind.REJECTED:  # e.g. a value Firestore cannot store: never retried
                return _quarantine(entitlements, err, body, message_id=message.message_id)
            logs.error(
                "notification not applied; Pub/Sub will retry",
                decision="retry",
                code=err.code,
                cause=cause_text(err),
                **fields,
            )
            return error_response(err)
        status = result.entitlement.status.value if result.entitlement else None
        logs.info(
            "notification processed",
            decision=result.effect.value,
            status=status,
            attempts=result.attempts,
            **fields,
        )
        return json_response(
            200,
            {
                "status": result.effect.value,
                "message_id": message.message_id,
                "entitlement_status": status,
            },
        )

    return guarded(FUNCTION, handle)


def _quarantine(
    store: EntitlementStore, err: RefundGuardError, body: bytes, *, message_id: str | None = None
) -> flask.Response:
    message_id = err.details.get("message_id") or message_id
    key = f"play:{message_id}" if message_id else None
    try:
        doc_id = store.quarantine(
            source="play",
            code=err.code,
            reason=err.message,
            body=body,
            key=key,
            details=err.details,
        )
    except RefundGuardError as store_err:
        logs.error(
            "poison message could not be quarantined; Pub/Sub will retry",
            function=FUNCTION,
            decision="retry",
            code=err.code,
            message_id=message_id,
            cause=cause_text(store_err),
        )
        return error_response(store_err)
    logs.warning(
        "message quarantined and acknowledged",
        function=FUNCTION,
        decision="quarantined",
        code=err.code,
        reason=err.message,
        message_id=message_id,
        quarantine_id=doc_id,
        package=err.details.get("package"),
    )
    return json_response(
        200,
        {"status": "quarantined", "code": err.code, "reason": err.message, "quarantine_id": doc_id},
    )
