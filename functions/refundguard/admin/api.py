"""The admin API: three routes, JSON in and out, every call authenticated first and audited.

- ``GET  .../entitlements/{store}/{purchase_id}``          the entitlement and its history
- ``POST .../entitlements/{store}/{purchase_id}/regrant``  ``{"reason": "..."}``: active again
- ``POST .../entitlements/{store}/{purchase_id}/revoke``   ``{"reason": "..."}``: revoked

``{store}`` is ``google``, ``apple`` (Production) or ``apple-sandbox``. Paths are matched on their
``/entitlements/...`` part, with or without one leading segment (a function name), so the same code
answers on ``*.run.app`` and ``*.cloudfunctions.net``.

Authentication comes before anything else: a caller without a valid admin token learns nothing, not
even whether a route or store exists. A re-grant or revoke is a ``LedgerEvent`` from
``Source.ADMIN`` at the moment it is made, applied by ``EntitlementStore.apply`` like any store
event, so the ledger's rules hold (older store events are stale; a newer store refund revokes
again).

Idempotency: with an ``Idempotency-Key`` header, the event id is a digest of (admin, store, purchase
id, key), so a retried POST is a ledger duplicate (nothing written) and answers the first event with
``Idempotent-Replayed: true``. The same key with a different action or reason for the same purchase
answers 422. Keys are scoped to one admin and one purchase: the same key on another purchase is
another request. Without the header every POST is a new event.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import flask

from .. import logs
from ..errors import Kind, RefundGuardError, rejected
from ..http import cause_text, error_response, json_response, parse_json_object, read_body
from ..ledger import (
    Effect,
    LedgerEvent,
    Source,
    Status,
    StoreName,
    check_purchase_id,
    namespace,
    parse_namespace,
)
from ..oidc import Authenticator, Caller
from ..serializer import to_json
from ..store import EntitlementStore, now_ms

MAX_BODY_BYTES = 16 * 1024
MAX_REASON_CHARS = 500
MAX_IDEMPOTENCY_KEY_CHARS = 255
HISTORY_LIMIT = 500
IDEMPOTENT_REPLAYED = "Idempotent-Replayed"

_IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,%d}" % MAX_IDEMPOTENCY_KEY_CHARS)  # noqa: UP031


@dataclass(frozen=True)
class Action:
    name: str
    event_type: str
    status: Status


ACTIONS: dict[str, Action] = {
    "regrant": Action("regrant", "ADMIN_REGRANT", Status.ACTIVE),
    "revoke": Action("revoke", "ADMIN_REVOKE", Status.REVOKED),
}


@dataclass(frozen=True)
class Route:
    store: str  # the path segment, e.g. "apple-sandbox"
    purchase_id: str
    action: Action | None  # None: look up

    @property
    def method(self) -> str:
        return "GET" if self.action is None else "POST"

    @property
    def name(self) -> str:
        return "show" if self.action is None else self.action.name


def match_route(path: str) -> Route | None:
    """``[/<prefix>]/entitlements/<store>/<purchase id>[/<action>]``, or None."""
    segments = path.strip("/").split("/")
    for offset in (0, 1):
        rest = segments[offset:]
        if len(rest) not in (3, 4) or rest[0] != "entitlements" or not rest[1] or not rest[2]:
            continue
        if len(rest) == 3:
            return Route(rest[1], rest[2], None)
        if rest[3] in ACTIONS:
            return Route(rest[1], rest[2], ACTIONS[rest[3]])
    return None


# ---------------------------------------------------------------------------------------- input


def parse_reason(body: Mapping[str, Any]) -> str:
    unknown = sorted(set(body) - {"reason"})
    if unknown:
        raise rejected(
            "unknown_field", f"unknown field(s) in the request body: {', '.join(unknown)}"
        )
    reason = body.get("reason")
    if reason is None:
        raise rejected(
            "missing_reason", 'a "reason" is required, e.g. {"reason": "refunded by mistake"}'
        )
    if not isinstance(reason, str):
        raise rejected("bad_reason", '"reason" must be a string')
    reason = reason.strip()
    if not reason:
        raise rejected("missing_reason", '"reason" must not be blank')
    if len(reason) > MAX_REASON_CHARS:
        raise rejected("reason_too_long", f'"reason" must be at most {MAX_REASON_CHARS} characters')
    return reason


def parse_idempotency_key(headers: Mapping[str, str]) -> str | None:
    raw = headers.get("Idempotency-Key")
    if raw is None:
        return None
    key = raw.strip().strip('"')  # the IETF draft sends it as a quoted string
    if not _IDEMPOTENCY_KEY.fullmatch(key):
        raise rejected(
            "bad_idempotency_key",
            f"Idempotency-Key must be 1-{MAX_IDEMPOTENCY_KEY_CHARS} visible ASCII characters",
        )
    return key


def idempotent_event_id(actor: str, store_namespace: str, purchase_id: str, key: str) -> str:
    """The same (admin, store, purchase, key) is the same event: a retry is a ledger duplicate."""
    material = json.dumps(["refundguard-admin-v1", actor, store_namespace, purchase_id, key])
    return "idem-" + hashlib.sha256(material.encode()).hexdigest()


# ---------------------------------------------------------------------------------------- API


class AdminApi:
    def __init__(
        self,
        store: EntitlementStore,
        authenticator: Authenticator,
        *,
        clock_ms: Callable[[], int] = now_ms,
        new_event_id: Callable[[], str] = lambda: uuid.uuid4().hex,
    ) -> None:
        self.store = store
        self.authenticator = authenticator
        self._clock_ms = clock_ms
        self._new_event_id = new_event_id

    def handle(self, request: flask.Request) -> flask.Response:
        # 1. Who: before anything about the request is looked at.
        admin = self.authenticator.authenticate(request.headers.get("Authorization"))

        # 2. Which route.
        route = match_route(request.path)
        if route is None:
            self._audit(admin, None, None, outcome="no_such_route", level="WARNING")
            return error_response(
                RefundGuardError(
                    Kind.NOT_FOUND,
                    "no_such_route",
                    "no such route; see GET/POST /entitlements/{store}/{purchase_id}"
                    "[/regrant|/revoke]",
                )
            )
        if request.method != route.method:
            self._audit(admin, route, None, outcome="method_not_allowed", level="WARNING")
            return json_response(
                405,
                {
                    "error": "method_not_allowed",
                    "message": f"{route.name} takes {route.method}, not {request.method}",
                },
                {"Allow": route.method},
            )

        # 3. What.
        reason: str | None = None
        try:
            store, environment = parse_namespace(route.store)
            check_purchase_id(route.purchase_id)
            if route.action is None:
                return self._show(admin, route, store, environment)
            reason = parse_reason(parse_json_object(read_body(request, max_bytes=MAX_BODY_BYTES)))
            key = parse_idempotency_key(request.headers)
            return self._act(
                admin=admin,
                route=route,
                action=route.action,
                store=store,
                environment=environment,
                reason=reason,
                key=key,
            )
        except RefundGuardError as err:
            # The audit line is this request's one log line: answer here rather than re-raise.
            self._audit(
                admin,
                route,
                reason,
                outcome=err.code,
                level="ERROR" if err.retryable else "WARNING",
                cause=cause_text(err),
            )
            return error_response(err)

    def _show(
        self, admin: Caller, route: Route, store: StoreName, environment: str
    ) -> flask.Response:
        entitlement = self.store.get(store, route.purchase_id, environment)
        if entitlement is None:
            raise RefundGuardError(
                Kind.NOT_FOUND,
                "not_found",
                f"no entitlement for {route.store} purchase id {route.purchase_id}",
            )
        history = self.store.history(store, route.purchase_id, environment, limit=HISTORY_LIMIT)
        self._audit(admin, route, None, outcome="ok", status=entitlement.status.value)
        return json_response(
            200,
            {
                "entitlement": to_json(entitlement),
                "history": [to_json(entry) for entry in history],
                "history_truncated": entitlement.history_count > len(history),
            },
        )

    def _act(
        self,
        *,
        admin: Caller,
        route: Route,
        action: Action,
        store: StoreName,
        environment: str,
        reason: str,
        key: str | None,
    ) -> flask.Response:
        if key is None:
            event_id = self._new_event_id()
        else:
            event_id = idempotent_event_id(
                admin.email, namespace(store, environment), route.purchase_id, key
            )
        event = LedgerEvent(
            store=store,
            purchase_id=route.purchase_id,
            event_id=event_id,
            source=Source.ADMIN,
            type=action.event_type,
            event_time_ms=self._clock_ms(),
            effect=action.status,
            environment=environment,
            actor=admin.email,
            reason=reason,
            details={"idempotency_key": key} if key is not None else {},
        )
        result = self.store.apply(event)
        replayed = result.effect is Effect.DUPLICATE
        entry = result.history  # for a duplicate: the first request's entry, as stored
        assert entry is not None
        if replayed and (entry.type != action.event_type or entry.reason != reason):
            self._audit(
                admin,
                route,
                reason,
                outcome="idempotency_key_reused",
                level="WARNING",
                replayed=True,
            )
            return json_response(
                422,
                {
                    "error": "idempotency_key_reused",
                    "message": "this Idempotency-Key was already used for a different request "
                    f"({entry.type} with another reason) on this purchase; "
                    "use a new key",
                },
            )
        entitlement = result.entitlement
        assert entitlement is not None
        self._audit(
            admin,
            route,
            reason,
            outcome="ok",
            effect=entry.effect.value,
            status=entitlement.status.value,
            replayed=replayed,
            event_id=event_id,
        )
        headers = {IDEMPOTENT_REPLAYED: "true"} if replayed else None
        return json_response(
            200,
            {
                "entitlement": to_json(entitlement),
                "event": to_json(entry),
                "effect": entry.effect.value,
            },
            headers,
        )

    @staticmethod
    def _audit(
        admin: Caller,
        route: Route | None,
        reason: str | None,
        *,
        outcome: str,
        level: str = "INFO",
        **fields: Any,
    ) -> None:
        """One structured line per admin call: who, what, on which purchase (hashed), and how."""
        logs.log(
            level,
            "admin action",
            audit=True,
            actor=admin.email,
            actor_sub=admin.subject,
            action=route.name if route else None,
            store=route.store if route else None,
            purchase_token_hash=logs.token_hash(route.purchase_id) if route else None,
            reason=reason,
            outcome=outcome,
            **fields,
        )
