"""The admin routes of tenants and their people: ``GET /me``, ``/tenants`` (list, create, show,
change, remove), a tenant's staff, the platform's staff (``/staff``), the backfill listing
``GET /tenants/{id}/entitlements`` and the upgrade's ``POST /migrations/tenant-field:run``.
Shapes: docs/admin.md."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from .. import logs
from ..access import Act, PlatformRole, TenantRole
from ..errors import Kind, RefundGuardError, not_found, rejected
from ..http import Reply
from ..model import DEFAULT_TENANT, Status
from ..serializer import ms_to_iso, to_json
from ..staff import StaffRecord, check_email
from ..tenants import Tenant, check_tenant_id, parse_tenant
from .actions import parse_limit

if TYPE_CHECKING:
    from .scope import Scope

ROUTES = frozenset(
    {
        "me",
        "tenants",
        "tenant_create",
        "tenant",
        "tenant_update",
        "tenant_delete",
        "tenant_staff",
        "tenant_staff_put",
        "tenant_staff_delete",
        "platform_staff",
        "platform_staff_put",
        "platform_staff_delete",
        "backfill",
        "migrate",
    }
)
DEFAULT_TENANTS, MAX_TENANTS = 100, 500
DEFAULT_BACKFILL, MAX_BACKFILL = 100, 1000
DEFAULT_MIGRATION, MAX_MIGRATION = 200, 500
#: What a tenant's admin may change on it (the rest: platform admins).
TENANT_ADMIN_FIELDS = frozenset({"policy", "support_can_act"})


def tenant_json(tenant: Tenant) -> dict[str, Any]:
    """A tenant as the API shows it: its keys by id only, never the sealed or clear key."""
    return {
        "id": tenant.id,
        "display_name": tenant.display_name,
        "status": tenant.status.value,
        "play_packages": list(tenant.play_packages),
        "apple_apps": [
            {
                "bundle_id": a.bundle_id,
                "app_apple_id": a.app_apple_id,
                "environments": list(a.environments),
            }
            for a in tenant.apple_apps
        ],
        "play_api": tenant.play_api,
        "apple_keys": [
            {"key_id": k.key_id, "issuer_id": k.issuer_id, "added_at": _iso(k.added_ms)}
            for k in tenant.apple_keys
        ],
        "policy": dict(tenant.policy),
        "support_can_act": tenant.support_can_act,
        "created_at": _iso(tenant.created_ms),
        "updated_at": _iso(tenant.updated_ms),
        "version": tenant.version,
    }


def _iso(ms: int) -> str | None:
    return ms_to_iso(ms) if ms else None


def dispatch(
    name: str,
    scope: Scope,
    *,
    params: Mapping[str, str],
    args: Mapping[str, str],
    body: Mapping[str, Any] | None,
    now_ms: int,
) -> Reply:
    """One of ``ROUTES`` for an authenticated principal (``body``: a write's JSON object)."""
    body = body or {}
    if "tenant" not in params:
        return _platform_wide(name, scope, params=params, args=args, body=body, now_ms=now_ms)
    tenant_id = params["tenant"]
    logs.bind(tenant=tenant_id[:60])
    if name == "backfill":
        return backfill(scope, tenant_id, args)
    if name in ("tenant", "tenant_update", "tenant_delete"):
        return one_tenant(scope, name, tenant_id, body, now_ms)
    return tenant_staff(scope, name, tenant_id, params.get("email"), body)


def _platform_wide(
    name: str,
    scope: Scope,
    *,
    params: Mapping[str, str],
    args: Mapping[str, str],
    body: Mapping[str, Any],
    now_ms: int,
) -> Reply:
    """The routes that name no tenant."""
    if name == "me":
        return me(scope)
    if name == "tenants":
        return list_tenants(scope, args)
    if name == "migrate":
        return migrate(scope, body)
    scope.platform_admin()
    if name == "tenant_create":
        return create_tenant(scope, body, now_ms)
    return platform_staff(scope, name, params.get("email"), body)


def _no_tenant(tenant_id: str) -> RefundGuardError:
    return not_found("no_such_tenant", f"no tenant {tenant_id[:60]}")


def _tenant(scope: Scope, tenant_id: str, act: Act) -> Tenant:
    """The tenant, after ``act`` on it is allowed (another tenant's: 404 as if absent)."""
    scope.require(act, tenant_id, lambda: _no_tenant(tenant_id))
    tenant = scope.wiring.tenants.tenant(tenant_id)
    if tenant is None and tenant_id == DEFAULT_TENANT:
        tenant = Tenant(DEFAULT_TENANT, "Apps set in the environment")
    if tenant is None:
        raise _no_tenant(tenant_id)
    return tenant


# ---------------------------------------------------------------------------- me, tenants


def me(scope: Scope) -> Reply:
    principal = scope.principal
    if principal.sees_every_tenant:
        tenants = _every_tenant(scope)
    else:
        tenants = []
        for tenant_id in sorted(principal.tenants):
            tenant = scope.wiring.tenants.tenant(tenant_id)
            if tenant is None and tenant_id == DEFAULT_TENANT:
                tenant = Tenant(DEFAULT_TENANT, "Apps set in the environment")
            if tenant is not None:
                tenants.append(tenant)
    return Reply(
        {
            "email": principal.email,
            "platform_role": principal.platform.value if principal.platform else None,
            "tenants": [
                {
                    "id": t.id,
                    "display_name": t.display_name,
                    "status": t.status.value,
                    "role": principal.role_name(t.id),
                }
                for t in tenants
            ],
        },
        "admin action",
    )


def _every_tenant(scope: Scope) -> list[Tenant]:
    found = list(scope.wiring.registry.all())
    default = scope.wiring.default_tenant or Tenant(DEFAULT_TENANT, "Apps set in the environment")
    return [default, *found]


def _page_token(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


def _read_page_token(token: str, kind: str) -> Any:
    try:
        padded = token + "=" * (-len(token) % 4)
        value = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if not (isinstance(value, list) and value and value[0] == kind):
            raise ValueError
        return value
    except (ValueError, TypeError, UnicodeDecodeError):
        raise rejected("bad_page_token", "page_token is not one this route gave") from None


def list_tenants(scope: Scope, args: Mapping[str, str]) -> Reply:
    limit = parse_limit(args.get("limit"), default=DEFAULT_TENANTS, high=MAX_TENANTS)
    if not scope.principal.sees_every_tenant:  # staff: theirs (a few), in one page
        mine = []
        for tenant_id in sorted(scope.principal.tenants):
            state = scope.state(tenant_id)
            if state is None:
                continue
            tenant = _tenant_or_default(scope, tenant_id)
            if tenant is not None:
                mine.append(tenant_json(tenant))
        return Reply({"tenants": mine, "next_page_token": None}, "admin action")
    after = None
    if args.get("page_token"):
        after = str(_read_page_token(args["page_token"], "t")[1])
    found = scope.wiring.registry.list(limit=limit + 1, after=after)
    page = found[:limit]
    token = _page_token(["t", page[-1].id]) if len(found) > limit else None
    logs.bind(tenants=len(page))
    return Reply(
        {"tenants": [tenant_json(t) for t in page], "next_page_token": token}, "admin action"
    )


def _tenant_or_default(scope: Scope, tenant_id: str) -> Tenant | None:
    tenant = scope.wiring.tenants.tenant(tenant_id)
    if tenant is None and tenant_id == DEFAULT_TENANT:
        return Tenant(DEFAULT_TENANT, "Apps set in the environment")
    return tenant


def create_tenant(scope: Scope, body: Mapping[str, Any], now_ms: int) -> Reply:
    tenant = parse_tenant(body)
    logs.bind(tenant=tenant.id)
    created = scope.wiring.registry.create(tenant, now_ms=now_ms)
    scope.wiring.tenants.forget(created)
    return Reply({"tenant": tenant_json(created)}, "admin action", 201)


def one_tenant(
    scope: Scope, name: str, tenant_id: str, body: Mapping[str, Any], now_ms: int
) -> Reply:
    if name == "tenant":
        return Reply({"tenant": tenant_json(_tenant(scope, tenant_id, Act.LOOKUP))}, "admin action")
    if name == "tenant_delete":
        _tenant(scope, tenant_id, Act.PLATFORM)  # another's: 404; their own: 403
        gone = scope.wiring.registry.delete(check_tenant_id(tenant_id))
        scope.wiring.tenants.forget(gone)
        return Reply({"deleted": gone.id}, "admin action")
    fields = dict(body)
    version = fields.pop("version", None)
    if isinstance(version, bool) or not isinstance(version, int):
        raise rejected("missing_version", '"version" (the tenant\'s, as read) is required')
    if not scope.principal.platform_admin:
        _tenant(scope, tenant_id, Act.SETTINGS)
        beyond = sorted(set(fields) - TENANT_ADMIN_FIELDS)
        if beyond:
            raise RefundGuardError(
                Kind.FORBIDDEN,
                "platform_admin_only",
                f"only platform admins change {', '.join(beyond)[:200]}",
            )
    if tenant_id == DEFAULT_TENANT:
        raise RefundGuardError(
            Kind.CONFLICT,
            "default_tenant_fixed",
            "the default tenant is set in the environment; change it there",
        )
    parse_tenant(fields, current=Tenant(tenant_id, "x"))  # every field checked before the read
    logs.bind(fields=sorted(fields))
    before: list[Tenant] = []

    def change(current: Tenant) -> Tenant:
        before.append(current)
        return parse_tenant(fields, current=current)

    updated = scope.wiring.registry.update(
        tenant_id, change, now_ms=now_ms, expected_version=version
    )
    for tenant in (*before[-1:], updated):  # the apps it lost, and those it has
        scope.wiring.tenants.forget(tenant)
    logs.bind(status=updated.status.value, version=updated.version)
    return Reply({"tenant": tenant_json(updated)}, "admin action")


# ---------------------------------------------------------------------------- staff


def _role(body: Mapping[str, Any], name: str, enum_type: Any, *, nullable: bool) -> Any:
    unknown = sorted(set(body) - {name})
    if unknown:
        raise rejected("unknown_field", f"unknown field(s): {', '.join(unknown)[:200]}")
    value = body.get(name)
    if value is None and nullable and name in body:
        return None
    try:
        return enum_type(value)
    except ValueError:
        choices = ", ".join(e.value for e in enum_type)
        raise rejected("bad_role", f'"{name}" must be one of {choices}') from None


def tenant_staff(
    scope: Scope, name: str, tenant_id: str, raw_email: str | None, body: Mapping[str, Any]
) -> Reply:
    tenant = _tenant(scope, tenant_id, Act.STAFF)
    staff = scope.wiring.staff
    if name == "tenant_staff":
        found = [
            {"email": r.email, "role": r.tenants[tenant.id].value}
            for r in staff.of_tenant(tenant.id)
        ]
        return Reply({"staff": found}, "admin action")
    email = check_email(raw_email)
    logs.bind(staff_email=email)
    if name == "tenant_staff_put":
        role = _role(body, "role", TenantRole, nullable=False)
        staff.change(email, lambda r: replace(r, tenants={**r.tenants, tenant.id: role}))
        logs.bind(role=role.value)
        return Reply({"email": email, "role": role.value}, "admin action")
    removed: list[bool] = []

    def without(record: StaffRecord) -> StaffRecord:
        removed.append(tenant.id in record.tenants)
        return replace(record, tenants={t: r for t, r in record.tenants.items() if t != tenant.id})

    staff.change(email, without)
    if not removed[-1]:
        raise not_found("no_such_staff", f"{email} is not staff of {tenant.id}")
    return Reply({"email": email, "removed": True}, "admin action")


def platform_staff(
    scope: Scope, name: str, raw_email: str | None, body: Mapping[str, Any]
) -> Reply:
    """``GET /staff``: platform roles; ``PUT /staff/{email}`` {"platform": "admin"|"service"|
    null}; ``DELETE /staff/{email}``: every role of that person. ``ADMIN_EMAILS`` are fixed."""
    staff = scope.wiring.staff
    if name == "platform_staff":
        found = [
            {"email": r.email, "platform_role": r.platform.value}
            for r in staff.platform()
            if r.platform
        ]
        return Reply({"staff": found}, "admin action")
    email = check_email(raw_email)
    logs.bind(staff_email=email)
    if scope.is_bootstrap(email):
        raise RefundGuardError(
            Kind.CONFLICT,
            "bootstrap_admin",
            f"{email} is in ADMIN_EMAILS (always a platform admin); change it there",
        )
    if name == "platform_staff_put":
        role = _role(body, "platform", PlatformRole, nullable=True)
        record = staff.change(email, lambda r: replace(r, platform=role))
        return Reply(
            {
                "email": email,
                "platform_role": role.value if role else None,
                "tenants": {t: r.value for t, r in record.tenants.items()},
            },
            "admin action",
        )
    if staff.read(email) is None:
        raise not_found("no_such_staff", f"{email} has no role")
    staff.change(email, lambda r: StaffRecord(r.email))
    return Reply({"email": email, "removed": True}, "admin action")


# ---------------------------------------------------------------------------- backfill


def backfill(scope: Scope, tenant_id: str, args: Mapping[str, str]) -> Reply:
    """A tenant's entitlements, ``updated_ms`` then id order, page by page (a stable cursor)."""
    check_tenant_id(tenant_id)
    scope.require(Act.BACKFILL, tenant_id, lambda: _no_tenant(tenant_id))
    limit = parse_limit(args.get("limit"), default=DEFAULT_BACKFILL, high=MAX_BACKFILL)
    status = args.get("status")
    if status is not None and status not in {s.value for s in Status}:
        raise rejected("bad_status", f"status must be one of {', '.join(s.value for s in Status)}")
    since = _since(args.get("updated_since"))
    query_id = hashlib.sha256(json.dumps([tenant_id, status, since]).encode()).hexdigest()[:12]
    after = None
    if args.get("page_token"):
        _, query, updated_ms, doc_id = _read_page_token(args["page_token"], "e")
        if query != query_id or not isinstance(updated_ms, int) or not isinstance(doc_id, str):
            raise rejected(
                "bad_page_token", "page_token belongs to another listing (tenant or filters)"
            )
        after = (updated_ms, doc_id)
    found = scope.wiring.entitlements.list_for_tenant(
        tenant_id, status=status, updated_since_ms=since, after=after, limit=limit
    )
    token = None
    if len(found) == limit:
        last = found[-1]
        token = _page_token(["e", query_id, last.updated_ms, last.document_id])
    logs.bind(entitlements=len(found))
    return Reply(
        {"entitlements": [to_json(e) for e in found], "next_page_token": token}, "admin action"
    )


def _since(raw: str | None) -> int | None:
    if raw is None:
        return None
    from datetime import datetime

    try:
        when = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise rejected("bad_updated_since", "updated_since must be an ISO 8601 time") from None
    if when.tzinfo is None:
        raise rejected("bad_updated_since", "updated_since must say its zone (e.g. Z)")
    return int(when.timestamp() * 1000)


# ---------------------------------------------------------------------------- migration


def migrate(scope: Scope, body: Mapping[str, Any]) -> Reply:
    """One page of the upgrade's migration (``refundguard.migration``): platform admins."""
    from ..migration import stamp_tenant

    scope.platform_admin()
    unknown = sorted(set(body) - {"page_token", "limit"})
    if unknown:
        raise rejected("unknown_field", f"unknown field(s): {', '.join(unknown)[:200]}")
    token = body.get("page_token")
    if token is not None and not isinstance(token, str):
        raise rejected("bad_page_token", "page_token must be a string")
    raw_limit = body.get("limit")
    limit = parse_limit(
        None if raw_limit is None else str(raw_limit), default=DEFAULT_MIGRATION, high=MAX_MIGRATION
    )
    progress = stamp_tenant(
        scope.wiring.client, timeout_s=scope.wiring.deadline_s, page_token=token, limit=limit
    )
    logs.bind(
        updated=progress.updated, scanned=progress.scanned, done=progress.next_page_token is None
    )
    return Reply(
        {
            "updated": progress.updated,
            "scanned": progress.scanned,
            "next_page_token": progress.next_page_token,
        },
        "admin action",
    )
