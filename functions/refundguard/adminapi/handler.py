"""The admin API, served by the ``admin`` function and the console: allow-listed admins look up
(by purchase or by store order id), re-grant and revoke entitlements, list and start
reconciliation runs, list refund requests and report consumption. Every call is authenticated
before anything else is looked at, and its one log line is the audit entry. Look-ups by order id
may ask the stores' APIs (``orders``)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING

from .. import logs
from ..errors import Kind, RefundGuardError, not_found
from ..events import unpublished_json
from ..http import Handler, Reply, parse_json_object, read_body
from ..model import Effect, check_purchase_id, parse_namespace
from ..serializer import to_json
from ..store import EntitlementStore, now_ms
from ..storeapi import CallPolicy
from ..wiring import Wiring
from . import apple_test, orders, reconciliation, routes, tenant_keys
from .actions import (
    ACTIONS,
    Action,
    Target,
    action_event,
    parse_body,
    parse_idempotency_key,
    parse_limit,
)

if TYPE_CHECKING:
    import flask

    from ..oidc import Caller
    from ..tenant_apis import TenantApis
    from .settings import AdminSettings

MAX_BODY_BYTES = 16 * 1024
IDEMPOTENT_REPLAYED = "Idempotent-Replayed"
#: Timeouts and retries of the store APIs' calls (look-up by order id).
API_POLICY = CallPolicy(deadline_s=15.0)
DEFAULT_UNPUBLISHED, MAX_UNPUBLISHED = 100, 500


def admin_handler(
    settings: AdminSettings,
    *,
    function: str,
    entitlements: EntitlementStore | None = None,
    clock_ms: Callable[[], int] = now_ms,
    new_event_id: Callable[[], str] = lambda: uuid.uuid4().hex,
) -> Handler:
    """The admin API behind ``settings.auth``: the admin function's, and the console's (which
    differs only in the token audience it accepts)."""
    wiring = Wiring.build(
        entitlements, settings.firestore, settings.events, function=function, clock_ms=clock_ms
    )
    entitlements = wiring.entitlements
    key_access = tenant_keys.access(settings, wiring, settings.tenant_apis(API_POLICY), clock_ms)
    finder = order_finder(settings, key_access.apis, wiring)

    def handle(request: flask.Request) -> Reply:
        logs.bind(audit=True)
        caller = settings.auth.authenticate(request.headers.get("Authorization"))
        logs.bind(actor=caller.email, actor_sub=caller.subject)
        route = routes.match(request.method, request.path)
        logs.bind(action=route.name)
        if route.name == "order":
            order_id = orders.parse_order_id(route.params["order_id"])
            logs.bind(order_id=order_id)
            answer = orders.lookup(
                order_id,
                entitlements=entitlements,
                finder=finder,
                actor=caller.email,
                now_ms=clock_ms(),
            )
            logs.bind(found_by=answer["found_by"], results=len(answer["results"]))
            return Reply(answer, "admin action")
        if route.name == "unpublished_events":
            return _unpublished(entitlements, request.args.get("limit"), clock_ms())
        if route.name in reconciliation.ROUTES | apple_test.ROUTES | tenant_keys.ROUTES:
            return _operations(request, route, caller)
        action = ACTIONS.get(route.name)
        path_target = None
        if not route.in_body:
            path_target = Target(route.params["store"], route.params["purchase_id"])
            _bind_target(path_target)
        if action is None and path_target is not None:  # GET: no body
            return _show(entitlements, path_target)
        body = parse_json_object(read_body(request, max_bytes=MAX_BODY_BYTES))
        target, reason = parse_body(body, target=path_target, reason=action is not None)
        _bind_target(target)
        if action is None:
            return _show(entitlements, target)
        assert reason is not None
        logs.bind(reason=reason)
        return _act(request, caller, action, target, reason)

    def _operations(request: flask.Request, route: routes.Route, caller: Caller) -> Reply:
        """The reconciler's and refund requests' routes, Apple's test notification, and a
        tenant's store access (its Apple key, check access: ``tenant_keys``)."""
        if route.name in tenant_keys.ROUTES:
            return tenant_keys.serve(request, route.name, route.params, key_access)
        body = None
        if request.method == "POST" and route.name != "run":
            raw = read_body(request, max_bytes=MAX_BODY_BYTES)
            # Apple's test: an empty body means the defaults
            body = parse_json_object(raw) if raw.strip() or route.name == "consumption" else {}
        if route.name in apple_test.ROUTES:
            return apple_test.dispatch(
                route.name,
                settings.apple,
                params=route.params,
                args=request.args,
                body=body,
                tenant_apple=lambda tid: key_access.apis.apple_access(
                    tenant_keys.load_tenant(wiring.registry, tid)
                ),
            )
        return reconciliation.dispatch(
            route.name,
            wiring,
            args=request.args,
            body=body,
            url=settings.reconcile_url,
            actor=caller.email,
        )

    def _act(
        request: flask.Request, caller: Caller, action: Action, target: Target, reason: str
    ) -> Reply:
        store_name, environment = parse_namespace(target.store)
        check_purchase_id(target.purchase_id)
        key = parse_idempotency_key(request.headers)
        event = action_event(
            caller=caller,
            action=action,
            store=store_name,
            environment=environment,
            purchase_id=target.purchase_id,
            reason=reason,
            key=key,
            now_ms=clock_ms(),
            new_event_id=new_event_id(),
        )
        result = entitlements.apply(event)
        entry, entitlement = result.history, result.entitlement
        assert entry is not None and entitlement is not None
        replayed = result.effect is Effect.DUPLICATE
        if replayed and (entry.type != event.type or entry.reason != reason):
            raise RefundGuardError(
                Kind.UNPROCESSABLE,
                "idempotency_key_reused",
                "this Idempotency-Key was already used for a different request "
                f"({entry.type} with another reason) on this purchase; use a new key",
            )
        logs.bind(
            effect=entry.effect.value,
            status=entitlement.status.value,
            replayed=replayed,
            event_id=event.event_id,
        )
        return Reply(
            {
                "effect": entry.effect.value,
                "status": entitlement.status.value,
                "created": entry.status_before is None,
                "entitlement": to_json(entitlement),
                "event": to_json(entry),
            },
            "admin action",
            headers={IDEMPOTENT_REPLAYED: "true"} if replayed else {},
        )

    return handle


def order_finder(
    settings: AdminSettings, apis: TenantApis | None = None, wiring: Wiring | None = None
) -> orders.OrderFinder:
    """The store APIs that look orders up, as configured (each may be off): the environment's
    apps, then registered tenants' with their own APIs (``apis``)."""
    play = apple = None
    if settings.play_api is not None:
        from ..playstore.api import PlayApiClient

        play = PlayApiClient(settings.play_api, policy=API_POLICY)
    if settings.apple is not None:
        from ..appstore.api import AppStoreApiClient

        apple = AppStoreApiClient(settings.apple.api, policy=API_POLICY)
    return orders.OrderFinder(
        play=play,
        packages=settings.play_packages,
        apple=apple,
        verifier=settings.apple.verifier if settings.apple else None,
        bundle_ids=settings.apple.bundle_ids if settings.apple else (),
        tenants=wiring.registry.all if wiring is not None else None,
        apis=apis,
    )


def _unpublished(entitlements: EntitlementStore, raw_limit: str | None, now: int) -> Reply:
    """What the outbox holds: events committed but not (yet) published, oldest first."""
    limit = parse_limit(raw_limit, default=DEFAULT_UNPUBLISHED, high=MAX_UNPUBLISHED)
    entries = entitlements.outbox.pending(limit=limit + 1)
    shown = entries[:limit]
    logs.bind(unpublished=len(shown), truncated=len(entries) > limit)
    return Reply(
        {
            "events_on": entitlements.events_on,
            "count": len(shown),
            "truncated": len(entries) > limit,
            "oldest_age_s": round((now - shown[0].created_ms) / 1000, 1) if shown else None,
            "events": [unpublished_json(entry, now) for entry in shown],
        },
        "admin action",
    )


def _bind_target(target: Target) -> None:
    logs.bind(store=target.store[:40], purchase_token_hash=logs.token_hash(target.purchase_id))


def _show(entitlements: EntitlementStore, target: Target) -> Reply:
    store_name, environment = parse_namespace(target.store)
    check_purchase_id(target.purchase_id)
    entitlement = entitlements.get(store_name, target.purchase_id, environment)
    if entitlement is None:
        raise not_found("not_found", f"no entitlement for this {target.store} purchase id")
    logs.bind(status=entitlement.status.value)
    return Reply(orders.entitlement_view(entitlements, entitlement), "admin action")
