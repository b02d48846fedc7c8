"""The admin API, served by the ``admin`` function and the console: platform and tenant staff
(``scope``, ``access``) look up (by purchase or by store order id), re-grant and revoke
entitlements, list and start reconciliation runs, list refund requests, report consumption and
manage tenants (``tenancy``). Every call is authenticated before anything else is looked at, every
id is checked against the caller's tenants (another tenant's: 404 as if absent), and its one log
line is the audit entry. Look-ups by order id may ask the stores' APIs (``orders``)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING

from .. import logs
from ..access import Act
from ..errors import Kind, RefundGuardError, not_found
from ..events import unpublished_json
from ..http import Handler, Reply, parse_json_object, read_body
from ..model import DEFAULT_TENANT, Effect, Entitlement, check_purchase_id, parse_namespace
from ..serializer import to_json
from ..store import EntitlementStore, now_ms
from ..storeapi import CallPolicy
from ..tenants import check_tenant_id
from ..wiring import Wiring
from . import apple_test, orders, reconciliation, routes, tenancy, tenant_keys
from . import insight as insight_api
from .actions import (
    ACTIONS,
    Action,
    Target,
    action_event,
    parse_body,
    parse_idempotency_key,
    parse_limit,
)
from .scope import Scope, resolve

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
OPERATIONS = frozenset({"unpublished_events", *insight_api.ROUTES})


def _outbox_or_insight(
    name: str,
    *,
    settings: AdminSettings,
    entitlements: EntitlementStore,
    request: flask.Request,
    scope: Scope,
    now: int,
) -> Reply:
    if name in insight_api.ROUTES:
        return insight_api.dispatch(settings.insight, request.args, scope, now_ms=now)
    return _unpublished(entitlements, request.args.get("limit"), now)


def admin_handler(  # noqa: PLR0915 - the routes' closures share one wiring and its clients
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
        entitlements,
        settings.firestore,
        settings.events,
        function=function,
        clock_ms=clock_ms,
        default_tenant=settings.default_tenant,
    )
    entitlements = wiring.entitlements
    key_access = tenant_keys.access(settings, wiring, settings.tenant_apis(API_POLICY), clock_ms)
    finder = order_finder(settings, key_access.apis, wiring)

    def handle(request: flask.Request) -> Reply:
        logs.bind(audit=True)
        caller = settings.auth.identify(request.headers.get("Authorization"))
        logs.bind(actor=caller.email, actor_sub=caller.subject)
        scope = Scope(resolve(caller, settings.auth, wiring), wiring, settings.auth)
        route = routes.match(request.method, request.path)
        logs.bind(action=route.name)
        if route.name in tenancy.ROUTES | tenant_keys.ROUTES:
            return _tenancy(request, route, scope, clock_ms(), key_access)
        if route.name == "order":
            return _order(
                route, caller, scope, entitlements=entitlements, finder=finder, now_ms=clock_ms()
            )
        if route.name in reconciliation.ROUTES | apple_test.ROUTES | OPERATIONS:
            return _operations(request, route, caller, scope)
        action = ACTIONS.get(route.name)
        path_target = None
        if not route.in_body:
            path_target = Target(route.params["store"], route.params["purchase_id"])
            _bind_target(path_target)
        if action is None and path_target is not None:  # GET: no body
            return _show(entitlements, path_target, scope)
        body = parse_json_object(read_body(request, max_bytes=MAX_BODY_BYTES))
        target, reason = parse_body(body, target=path_target, reason=action is not None)
        _bind_target(target)
        if action is None:
            return _show(entitlements, target, scope)
        assert reason is not None
        logs.bind(reason=reason)
        return _act(
            request,
            caller=caller,
            action=action,
            target=target,
            reason=reason,
            scope=scope,
            named=None if body.get("tenant") is None else check_tenant_id(body["tenant"]),
        )

    def _operations(
        request: flask.Request, route: routes.Route, caller: Caller, scope: Scope
    ) -> Reply:
        """The reconciler's and refund requests' routes, the outbox, and Apple's test
        notification (platform admins only, like the outbox)."""
        if route.name in apple_test.ROUTES | {"unpublished_events"}:
            scope.platform_admin()
        if route.name in OPERATIONS:  # the outbox, refund insight (docs/insight.md)
            return _outbox_or_insight(
                route.name,
                settings=settings,
                entitlements=entitlements,
                request=request,
                scope=scope,
                now=clock_ms(),
            )
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
                    tenant_keys.load_tenant(key_access, tid)
                ),
            )
        return reconciliation.dispatch(
            route.name,
            wiring,
            args=request.args,
            body=body,
            url=settings.reconcile_url,
            actor=caller.email,
            scope=scope,
            policy=settings.policy,
        )

    def _act(
        request: flask.Request,
        *,
        caller: Caller,
        action: Action,
        target: Target,
        reason: str,
        scope: Scope,
        named: str | None,
    ) -> Reply:
        store_name, environment = parse_namespace(target.store)
        check_purchase_id(target.purchase_id)
        key = parse_idempotency_key(request.headers)
        tenant = _tenant_of_action(entitlements, target, scope, named)
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
            tenant=tenant,
        )
        result = entitlements.apply(event)
        entry, entitlement = result.history, result.entitlement
        assert entry is not None and entitlement is not None
        _still_theirs(scope, entitlement, tenant, target)
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


def _order(
    route: routes.Route,
    caller: Caller,
    scope: Scope,
    *,
    entitlements: EntitlementStore,
    finder: orders.OrderFinder,
    now_ms: int,
) -> Reply:
    """An order's entitlements the caller may see (``orders.lookup``)."""
    order_id = orders.parse_order_id(route.params["order_id"])
    logs.bind(order_id=order_id)

    def visible(tenant: str) -> bool:
        if scope.visible(Act.LOOKUP, tenant):
            return True
        logs.bind(denied="other_tenant")
        return False

    answer = orders.lookup(
        order_id,
        entitlements=entitlements,
        finder=finder,
        actor=caller.email,
        now_ms=now_ms,
        visible=visible,
        app_tenant=lambda found: _app_tenant(scope, found),
        asks=lambda tenant: scope.visible(Act.LOOKUP, tenant),  # whose stores may be asked
    )
    logs.bind(found_by=answer["found_by"], results=len(answer["results"]))
    return Reply(answer, "admin action")


def _app_tenant(scope: Scope, found: orders.Found) -> str:
    """The tenant whose app the store named for an order (``default``: the environment's, or
    nobody's)."""
    app = found.details.get("package") or found.details.get("bundleId")
    tenant = scope.wiring.tenants.for_app(found.store, str(app)) if app else None
    return tenant.id if tenant is not None else DEFAULT_TENANT


def _tenancy(
    request: flask.Request,
    route: routes.Route,
    scope: Scope,
    now_ms: int,
    key_access: tenant_keys.KeyAccess,
) -> Reply:
    """Tenants, staff, backfill and migration (``tenancy``); an empty POST body is ``{}``. A
    tenant's Apple key, check access and the Play account: ``tenant_keys``."""
    if route.name in tenant_keys.ROUTES:
        return tenant_keys.serve(request, route.name, route.params, key_access, scope)
    body = None
    if request.method in ("POST", "PUT", "PATCH"):
        raw = read_body(request, max_bytes=MAX_BODY_BYTES)
        body = parse_json_object(raw) if raw.strip() or request.method != "POST" else {}
    return tenancy.dispatch(
        route.name, scope, params=route.params, args=request.args, body=body, now_ms=now_ms
    )


def _bind_target(target: Target) -> None:
    logs.bind(store=target.store[:40], purchase_token_hash=logs.token_hash(target.purchase_id))


def _absent(target: Target) -> RefundGuardError:
    return not_found("not_found", f"no entitlement for this {target.store} purchase id")


def _show(entitlements: EntitlementStore, target: Target, scope: Scope) -> Reply:
    store_name, environment = parse_namespace(target.store)
    check_purchase_id(target.purchase_id)
    entitlement = entitlements.get(store_name, target.purchase_id, environment)
    if entitlement is None:
        raise _absent(target)
    scope.require(Act.LOOKUP, entitlement.tenant, lambda: _absent(target))
    logs.bind(status=entitlement.status.value, tenant=entitlement.tenant)
    return Reply(orders.entitlement_view(entitlements, entitlement), "admin action")


def _still_theirs(scope: Scope, entitlement: Entitlement, tenant: str, target: Target) -> None:
    """A store event that made the purchase another tenant's between our read and the apply: the
    caller, who may not see that tenant, hears the 404 of an absent purchase."""
    if entitlement.tenant != tenant:
        scope.require(Act.ACT, entitlement.tenant, lambda: _absent(target))


def _tenant_of_action(
    entitlements: EntitlementStore, target: Target, scope: Scope, named: str | None
) -> str:
    """Whose entitlement the re-grant or revoke touches, after the caller may act on it: an
    existing one's tenant (another tenant's: 404 as if absent), else the one the body names or
    the caller's only one (platform admins: ``default``)."""
    store_name, environment = parse_namespace(target.store)
    current = entitlements.get(store_name, target.purchase_id, environment)
    if current is not None:
        scope.require(Act.ACT, current.tenant, lambda: _absent(target))
        if named is not None and named != current.tenant:
            raise RefundGuardError(
                Kind.CONFLICT,
                "tenant_mismatch",
                f"this purchase belongs to tenant {current.tenant}, not {named}",
            )
        logs.bind(tenant=current.tenant)
        return current.tenant
    tenant = scope.choose_tenant(named)
    logs.bind(tenant=tenant)

    def no_tenant() -> RefundGuardError:
        return not_found("no_such_tenant", f"no tenant {tenant}")

    scope.require(Act.ACT, tenant, no_tenant)
    if scope.state(tenant) is None:
        raise no_tenant()
    return tenant
