"""``play_notifications``: a Pub/Sub push (or Eventarc CloudEvent) of a Google Play RTDN -> the
ledger. A message that can never be processed is quarantined and acknowledged (200); only what a
retry can fix answers 5xx. With ``PLAY_DEVELOPER_API=on`` the Play Developer API is asked first
(``verify`` decides what its answer means): a purchase it cannot verify yet answers 503 and writes
nothing; a revocation is applied whatever the API does."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import flask

from .. import logs
from ..errors import Kind, RefundGuardError, method_not_allowed, rejected, transient
from ..http import App, Reply, read_body, serve
from ..model import LedgerEvent, StoreName
from ..quarantine import quarantiner
from ..refund_store import apply_notification
from ..store import EntitlementStore
from ..storeapi import CallPolicy, StoreApiError, StoreAuthError
from . import envelope, rtdn, verify
from .api import PlayApiClient
from .settings import PlaySettings

FUNCTION = "play_notifications"
MAX_BODY_BYTES = 10 * 1024 * 1024
#: A revocation never waits long for the API: it is applied, judged or not, within this time.
REVOCATION_API_DEADLINE_S = 5.0
#: A purchase may wait longer: without the API's word it is not granted (503, Pub/Sub retries).
GRANT_API_DEADLINE_S = 15.0
#: The API's "not found" answers, the same on every retry.
_UNKNOWN_TO_THE_API = (Kind.NOT_FOUND, Kind.REJECTED)
#: Timeouts and retries of the API calls (each call's deadline is one of the two above).
API_POLICY = CallPolicy()


@dataclass(frozen=True)
class Consulted:
    """The event to apply, and the API's permission problem to raise an alarm about, if any."""

    event: LedgerEvent
    alarm: str | None = None


def create_handler(
    env: Mapping[str, str],
    *,
    store: EntitlementStore | None = None,
    play_api: PlayApiClient | None = None,
) -> App:
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
    api = play_api
    if api is None and settings.api is not None:
        api = PlayApiClient(settings.api, policy=API_POLICY)

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
        if notification.unkeyed is not None:
            event = keyed(entitlements, api, notification, message.message_id)
        if event is None:
            logs.bind(effect="test")
            return Reply(
                {"effect": "test", "status": None, "message_id": message.message_id},
                "test notification acknowledged",
            )
        logs.bind(token_hash=logs.token_hash(event.purchase_id), event_time_ms=event.event_time_ms)
        consulted = Consulted(event)
        if api is not None:
            consulted = consult(api, notification.package_name, notification.kind, event)
            event = consulted.event
        result, status = apply_notification(
            entitlements,
            event,
            app=notification.package_name,
            key=("message_id", message.message_id),
            pending_refund_token=notification.pending_refund_token,
        )
        if consulted.alarm:
            logs.bind(api_problem=consulted.alarm)
        return Reply(
            {"effect": result.effect.value, "status": status, "message_id": message.message_id},
            "notification processed; the Play API refused us, see api_problem"
            if consulted.alarm
            else "notification processed",
            severity="ERROR" if consulted.alarm else "INFO",
        )

    def key_of(err: RefundGuardError) -> str | None:
        message_id = err.details.get("message_id")
        return f"play:{message_id}" if isinstance(message_id, str) and message_id else None

    return serve(FUNCTION, handle, on_rejected=quarantiner(entitlements, "play", key_of=key_of))


def keyed(
    entitlements: EntitlementStore,
    api: PlayApiClient | None,
    notification: rtdn.PlayNotification,
    message_id: str,
) -> LedgerEvent:
    """A refund review naming only an order: its purchase token from Firestore (an order seen
    before), else from the Play API's orders.get; quarantined when neither knows it."""
    unkeyed = notification.unkeyed
    assert unkeyed is not None
    known = [e for e in entitlements.find_by_order(unkeyed.order_id) if e.store is StoreName.GOOGLE]
    token = known[0].purchase_id if known else None
    if token is None and api is not None:
        try:
            token = api.get_order(notification.package_name, unkeyed.order_id).purchase_token
        except StoreAuthError as err:
            raise permission_error(err) from err
        except StoreApiError as err:
            if err.kind not in _UNKNOWN_TO_THE_API:
                raise
    if token is None:
        raise rejected(
            "unknown_order",
            "the refund review names an order that neither Firestore nor the Play API knows",
            message_id=message_id,
        )
    try:
        return rtdn.keyed(unkeyed, token)
    except RefundGuardError as err:
        raise rejected(err.code, err.message, message_id=message_id) from None


def permission_error(err: StoreAuthError) -> RefundGuardError:
    """The Play API refused our credentials: ours to fix, never the sender's; 503 keeps the
    notification coming back (nothing is lost) and the ERROR line names the fix."""
    return transient("play_api_permission", err.message, **err.details)


def consult(api: PlayApiClient, package: str, kind: str, event: LedgerEvent) -> Consulted:
    """Ask the Play API what ``event`` needs (``verify.check_for``) and combine its answer.

    A grant it cannot verify now raises TRANSIENT (503: nothing written, Pub/Sub retries); a
    purchase it does not know is recorded, not granted. A revocation is applied whatever happens:
    a failure leaves it unjudged or unenriched (and a permission failure raises the alarm)."""
    check = verify.check_for(kind, event)
    if check is verify.Check.NONE:
        return Consulted(event)
    logs.bind(api_check=check.value)
    deadline = GRANT_API_DEADLINE_S if check.grants else REVOCATION_API_DEADLINE_S
    try:
        if check.subscription:
            answer = api.get_subscription(package, event.purchase_id, deadline_s=deadline)
        else:
            answer = api.get_product_purchase(package, event.purchase_id, deadline_s=deadline)
    except StoreApiError as err:
        logs.bind(api_error=err.code)
        if check.grants:
            if isinstance(err, StoreAuthError):
                raise permission_error(err) from err
            if err.kind in _UNKNOWN_TO_THE_API:
                return Consulted(verify.not_verified(event, err))
            raise
        alarm = err.message if isinstance(err, StoreAuthError) else None
        unjudged = check is verify.Check.SUBSCRIPTION_VOID
        fallback = verify.unjudged_void if unjudged else verify.not_enriched
        return Consulted(fallback(event, err), alarm)
    return Consulted(_COMBINE[check](event, answer))


_COMBINE: dict[verify.Check, Callable[[LedgerEvent, Any], LedgerEvent]] = {
    verify.Check.PRODUCT_GRANT: verify.product_grant,
    verify.Check.SUBSCRIPTION_GRANT: verify.subscription_grant,
    verify.Check.SUBSCRIPTION_VOID: verify.subscription_void,
    verify.Check.PRODUCT_ENRICH: verify.enriched,
    verify.Check.SUBSCRIPTION_ENRICH: verify.enriched,
}
