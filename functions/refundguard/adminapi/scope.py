"""Who the admin API's caller is and what they may see: ``resolve`` turns a verified caller into a
``Principal`` (``ADMIN_EMAILS``: platform admin; else their ``staff/{email}`` document; else 403
``not_an_admin``), and ``Scope`` applies ``access.decide`` to the tenant of what a request names,
turning "another tenant's" into the very 404 an absent id gets, with the log line saying
``denied="other_tenant"``."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from .. import logs
from ..access import (
    Act,
    PlatformRole,
    Principal,
    TenantState,
    Verdict,
    decide,
    platform_only,
    suspended,
)
from ..access import forbidden as forbidden_error
from ..errors import RefundGuardError
from ..model import DEFAULT_TENANT

if TYPE_CHECKING:
    from ..oidc import Authenticator, Caller
    from ..wiring import Wiring


def resolve(caller: Caller, auth: Authenticator, wiring: Wiring) -> Principal:
    """The caller's roles; 403 ``not_an_admin`` (as before tenants) when they have none."""
    if auth.listed(caller):
        return Principal(caller.email, PlatformRole.ADMIN, bootstrap=True)
    record = wiring.staff.get(caller.email)
    if record is None:
        raise auth.not_allowed(caller)
    return Principal(caller.email, record.platform, dict(record.tenants))


class Scope:
    """One request's principal over the tenants as this instance knows them."""

    def __init__(self, principal: Principal, wiring: Wiring, auth: Authenticator) -> None:
        self.principal = principal
        self.wiring = wiring
        self._auth = auth
        logs.bind(
            actor_role=f"platform_{principal.platform.value}" if principal.platform else "staff"
        )

    def is_bootstrap(self, email: str) -> bool:
        """Whether ``email`` is in ``ADMIN_EMAILS`` (by address or by domain)."""
        allow = self._auth.allow_list
        return email in allow.emails or email.rpartition("@")[2] in allow.domains

    def state(self, tenant_id: str) -> TenantState | None:
        """The tenant as access needs it; ``default`` always exists (the environment's apps,
        and everything written before tenants)."""
        tenant = self.wiring.tenants.tenant(tenant_id)
        if tenant is None:
            return TenantState(DEFAULT_TENANT) if tenant_id == DEFAULT_TENANT else None
        return TenantState(tenant.id, tenant.active, tenant.support_can_act)

    def verdict(self, act: Act, tenant_id: str) -> Verdict:
        if self.principal.sees_every_tenant:  # no tenant read for the platform's roles
            return decide(self.principal, act, TenantState(tenant_id), tenant_id)
        if tenant_id not in self.principal.tenants:
            return Verdict.HIDDEN
        return decide(self.principal, act, self.state(tenant_id), tenant_id)

    def ever(self, act: Act) -> None:
        """403 when no tenant could allow ``act`` to this caller (says nothing about any id)."""
        if not self.principal.may_ever(act):
            raise forbidden_error(self.principal, act)

    def platform_admin(self) -> None:
        if not self.principal.platform_admin:
            raise platform_only(self.principal)

    def require(self, act: Act, tenant_id: str, absent: Callable[[], RefundGuardError]) -> None:
        """Allowed, or the error: ``absent()`` (the 404 of an id that does not exist) for
        another tenant's, audited; 403 for a suspended tenant's staff or a role that may not."""
        verdict = self.verdict(act, tenant_id)
        if verdict is Verdict.ALLOWED:
            return
        if verdict is Verdict.HIDDEN:
            logs.bind(audit=True, denied="other_tenant")
            raise absent()
        if verdict is Verdict.SUSPENDED:
            raise suspended(tenant_id)
        raise forbidden_error(self.principal, act)

    def tenants_for(self, act: Act) -> list[str] | None:
        """The tenants whose things ``act`` may touch (None: every tenant); 403 when none may
        (``tenant_suspended`` when only suspension stands in the way)."""
        if self.principal.sees_every_tenant:
            self.ever(act)
            return None
        verdicts = {t: self.verdict(act, t) for t in sorted(self.principal.tenants)}
        allowed = [t for t, v in verdicts.items() if v is Verdict.ALLOWED]
        if not allowed:
            stopped = [t for t, v in verdicts.items() if v is Verdict.SUSPENDED]
            if stopped:
                raise suspended(stopped[0])
            raise forbidden_error(self.principal, act)
        return allowed

    def visible(self, act: Act, tenant_id: str) -> bool:
        return self.verdict(act, tenant_id) is Verdict.ALLOWED

    def choose_tenant(self, named: str | None) -> str:
        """Whose a new entitlement becomes (a re-grant of a purchase never seen): the one the
        body names, else the caller's only tenant (platform admins: ``default``)."""
        from ..errors import rejected

        if named is not None:
            return named
        if self.principal.sees_every_tenant:
            return DEFAULT_TENANT
        mine = [t for t in sorted(self.principal.tenants) if self.visible(Act.ACT, t)]
        if len(mine) == 1:
            return mine[0]
        if not mine:
            return sorted(self.principal.tenants)[0]  # decided (403) by the caller's require
        raise rejected(
            "tenant_required",
            f'you are staff of several tenants: name one with "tenant" ({", ".join(mine)})',
        )
