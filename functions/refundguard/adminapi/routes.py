"""The admin API's routes, pure: method + path -> a named route and its path parameters.

Paths may carry one leading segment (a function name), so the same code answers on ``run.app``
and ``cloudfunctions.net`` URLs. A path that matches with another method is a 405 naming it."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import method_not_allowed, not_found

#: (name, method, path segments; ``{x}`` is a parameter)
TABLE: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("show", "GET", ("entitlements", "{store}", "{purchase_id}")),
    ("regrant", "POST", ("entitlements", "{store}", "{purchase_id}", "regrant")),
    ("revoke", "POST", ("entitlements", "{store}", "{purchase_id}", "revoke")),
    # The same with the purchase id in the body: keeps purchase tokens out of request logs.
    ("show", "POST", ("entitlements:lookup",)),
    ("regrant", "POST", ("entitlements:regrant",)),
    ("revoke", "POST", ("entitlements:revoke",)),
    # The entitlement(s) of a store order id (Google GPA.*, Apple's), from Firestore or the store.
    ("order", "GET", ("orders", "{order_id}")),
    # Access-change events committed but not yet published (docs/integrating.md).
    ("unpublished_events", "GET", ("events", "unpublished")),
    # The reconciler (docs/reconcile.md) and the stores' refund requests (docs/refunds.md).
    ("runs", "GET", ("reconciliation", "runs")),
    ("run", "POST", ("reconciliation:run",)),
    ("refund_requests", "GET", ("refund-requests",)),
    # What each pending request would get from a tenant's rules (or rules proposed), sent nowhere.
    ("refund_requests_dry_run", "POST", ("refund-requests:dry-run",)),
    ("consumption", "POST", ("entitlements:consumption",)),
    # Apple's test notification: does App Store Server Notifications reach us (docs/deploy.md)?
    ("apple_test_notification", "POST", ("apple", "notifications:test")),
    ("apple_test_notification_status", "GET", ("apple", "notifications", "test", "{token}")),
    # Tenants and their people (docs/admin.md, Roles), the backfill listing, the upgrade.
    ("me", "GET", ("me",)),
    ("tenants", "GET", ("tenants",)),
    ("tenant_create", "POST", ("tenants",)),
    ("tenant", "GET", ("tenants", "{tenant}")),
    ("tenant_update", "PATCH", ("tenants", "{tenant}")),
    ("tenant_delete", "DELETE", ("tenants", "{tenant}")),
    ("tenant_staff", "GET", ("tenants", "{tenant}", "staff")),
    ("tenant_staff_put", "PUT", ("tenants", "{tenant}", "staff", "{email}")),
    ("tenant_staff_delete", "DELETE", ("tenants", "{tenant}", "staff", "{email}")),
    ("backfill", "GET", ("tenants", "{tenant}", "entitlements")),
    ("platform_staff", "GET", ("staff",)),
    ("platform_staff_put", "PUT", ("staff", "{email}")),
    ("platform_staff_delete", "DELETE", ("staff", "{email}")),
    ("migrate", "POST", ("migrations", "tenant-field:run")),
    # A tenant's store access (adminapi/tenant_keys.py): its Apple key, check access, and the
    # service account a creator invites in their Play Console.
    ("tenant_apple_key_put", "PUT", ("tenants", "{tenant}", "apple-key")),
    ("tenant_apple_key_delete", "DELETE", ("tenants", "{tenant}", "apple-key", "{key_id}")),
    ("tenant_check_access", "POST", ("tenants", "{tenant}:check-access")),
    ("play_account", "GET", ("play", "service-account")),
    # Refund insight: figures per tenant, product and period (docs/insight.md).
    ("insight", "GET", ("insight",)),
)
HELP = (
    "POST /entitlements:lookup|:regrant|:revoke with a JSON body, "
    "GET /entitlements/{store}/{purchase_id} and POST .../regrant|revoke, "
    "GET /orders/{order_id}, GET /events/unpublished, GET /reconciliation/runs, "
    "POST /reconciliation:run, GET /refund-requests, POST /refund-requests:dry-run, "
    "POST /entitlements:consumption, "
    "POST /apple/notifications:test, GET /apple/notifications/test/{token}, GET /me, "
    "GET|POST /tenants, GET|PATCH|DELETE /tenants/{id}, GET /tenants/{id}/staff, "
    "PUT|DELETE /tenants/{id}/staff/{email}, GET /tenants/{id}/entitlements, "
    "GET /staff, PUT|DELETE /staff/{email}, POST /migrations/tenant-field:run, "
    "PUT /tenants/{id}/apple-key, DELETE /tenants/{id}/apple-key/{key_id}, "
    "POST /tenants/{id}:check-access, GET /play/service-account, GET /insight"
)


@dataclass(frozen=True)
class Route:
    name: str
    params: dict[str, str]

    @property
    def in_body(self) -> bool:
        """Whether the store and purchase id come in the body rather than the path."""
        return not {"purchase_id", "order_id", "token"} & set(self.params)


def _bind(pattern: tuple[str, ...], segments: list[str]) -> dict[str, str] | None:
    if len(pattern) != len(segments):
        return None
    params: dict[str, str] = {}
    for part, segment in zip(pattern, segments, strict=True):
        if part.startswith("{"):  # a parameter, maybe followed by a fixed suffix (":verb")
            name, _, suffix = part[1:].partition("}")
            if len(segment) <= len(suffix) or not segment.endswith(suffix):
                return None
            params[name] = segment[: len(segment) - len(suffix)]
        elif part != segment:
            return None
    return params


def match(method: str, path: str) -> Route:
    """The route for ``method`` and ``path``; NOT_FOUND or METHOD_NOT_ALLOWED otherwise."""
    segments = path.strip("/").split("/")
    allowed: set[str] = set()
    for offset in (0, 1):
        for name, route_method, pattern in TABLE:
            params = _bind(pattern, segments[offset:])
            if params is None:
                continue
            if route_method == method:
                return Route(name, params)
            allowed.add(route_method)
    if allowed:
        raise method_not_allowed(", ".join(sorted(allowed)), method)
    raise not_found("no_such_route", f"no such route; see {HELP}")
