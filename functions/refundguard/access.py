"""Who may do what on which tenant, pure (no I/O): the roles (platform admin, platform service,
tenant admin, tenant support), a ``Principal`` (one caller's roles) and ``decide``, the one
verdict the admin API acts on: allowed, hidden (another tenant's: answered 404 as if it did not
exist), suspended (the tenant's staff cannot act) or forbidden (the role never may)."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

from .errors import Kind, RefundGuardError


class PlatformRole(enum.StrEnum):
    ADMIN = "admin"  # every tenant, everything; manages tenants and roles
    SERVICE = "service"  # consumption reports, backfill listing, look-up; never acts


class TenantRole(enum.StrEnum):
    ADMIN = "admin"
    SUPPORT = "support"


class Act(enum.StrEnum):
    """What a route does, as far as access goes."""

    LOOKUP = "lookup"  # an entitlement, an order, a tenant's own record
    ACT = "act"  # re-grant, revoke
    REFUNDS = "refunds"  # the stores' refund requests
    RUNS = "runs"  # list reconciliation runs
    RUN = "run"  # start one
    CONSUMPTION = "consumption"  # report consumption
    BACKFILL = "backfill"  # page through a tenant's entitlements
    STAFF = "staff"  # see and change a tenant's staff
    SETTINGS = "settings"  # a tenant's Apple key, policy, support_can_act, check access
    PLATFORM = "platform"  # tenants' apps, create/delete tenants, platform roles, outbox, ...


_SERVICE_ACTS = frozenset({Act.LOOKUP, Act.CONSUMPTION, Act.BACKFILL})
_TENANT_ADMIN_ACTS = frozenset(
    {
        Act.LOOKUP,
        Act.ACT,
        Act.REFUNDS,
        Act.RUNS,
        Act.RUN,
        Act.CONSUMPTION,
        Act.STAFF,
        Act.SETTINGS,
    }
)


class Verdict(enum.Enum):
    ALLOWED = "allowed"
    HIDDEN = "hidden"  # another tenant's: 404 as if absent, audited
    SUSPENDED = "suspended"  # 403 tenant_suspended
    FORBIDDEN = "forbidden"  # 403 not_allowed


@dataclass(frozen=True)
class TenantState:
    """What access needs to know of a tenant."""

    id: str
    active: bool = True
    support_can_act: bool = False


@dataclass(frozen=True)
class Principal:
    """One authenticated caller and their roles. ``bootstrap``: listed in ``ADMIN_EMAILS`` (always
    platform admin, never removable through the API)."""

    email: str
    platform: PlatformRole | None = None
    tenants: Mapping[str, TenantRole] = field(default_factory=dict)
    bootstrap: bool = False

    @property
    def platform_admin(self) -> bool:
        return self.platform is PlatformRole.ADMIN

    @property
    def sees_every_tenant(self) -> bool:
        return self.platform is not None

    def role_name(self, tenant_id: str) -> str | None:
        """As ``GET /me`` shows it: ``platform_admin``, ``platform_service``, ``admin``,
        ``support``, or None."""
        if self.platform is not None:
            return f"platform_{self.platform.value}"
        role = self.tenants.get(tenant_id)
        return role.value if role else None

    def may_ever(self, act: Act) -> bool:
        """Whether any tenant could allow ``act`` (else: 403 before any id is looked at, which
        says nothing about any id)."""
        if self.platform_admin:
            return True
        if self.platform is PlatformRole.SERVICE and act in _SERVICE_ACTS:
            return True
        return any(_role_allows(role, act, None) for role in self.tenants.values())


def _role_allows(role: TenantRole, act: Act, tenant: TenantState | None) -> bool:
    if role is TenantRole.ADMIN:
        return act in _TENANT_ADMIN_ACTS
    if act is Act.LOOKUP:
        return True
    # support: re-grant and revoke only when their tenant allows (unknown tenant: maybe)
    return act is Act.ACT and (tenant is None or tenant.support_can_act)


def decide(principal: Principal, act: Act, tenant: TenantState | None, tenant_id: str) -> Verdict:
    """May ``principal`` do ``act`` on what belongs to ``tenant_id`` (``tenant``: its state, None
    when no such tenant exists)?"""
    if principal.platform_admin:
        return Verdict.ALLOWED
    if principal.platform is PlatformRole.SERVICE:
        return Verdict.ALLOWED if act in _SERVICE_ACTS else Verdict.FORBIDDEN
    role = principal.tenants.get(tenant_id)
    if role is None or tenant is None:
        return Verdict.HIDDEN
    if not tenant.active:
        return Verdict.SUSPENDED
    return Verdict.ALLOWED if _role_allows(role, act, tenant) else Verdict.FORBIDDEN


def forbidden(principal: Principal, act: Act) -> RefundGuardError:
    return RefundGuardError(
        Kind.FORBIDDEN, "not_allowed", f"{principal.email} may not do this ({act.value})"
    )


def suspended(tenant_id: str) -> RefundGuardError:
    return RefundGuardError(
        Kind.FORBIDDEN,
        "tenant_suspended",
        f"tenant {tenant_id} is suspended: its staff cannot act (its refunds are still applied)",
    )


def platform_only(principal: Principal) -> RefundGuardError:
    return RefundGuardError(
        Kind.FORBIDDEN, "platform_admin_only", f"{principal.email} is not a platform admin"
    )
