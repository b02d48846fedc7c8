"""``access.decide``, the pure rule behind every admin route, over every role, act and tenant
state: what holds for all of them (the role matrix through HTTP is
tests/integration/test_admin_tenants.py)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from refundguard.access import (
    Act,
    PlatformRole,
    Principal,
    TenantRole,
    TenantState,
    Verdict,
    decide,
)

TENANTS = ["acme", "globex", "default"]
states = st.builds(
    TenantState, id=st.sampled_from(TENANTS), active=st.booleans(), support_can_act=st.booleans()
)
principals = st.builds(
    Principal,
    email=st.just("x@example.com"),
    platform=st.none() | st.sampled_from(PlatformRole),
    tenants=st.dictionaries(st.sampled_from(TENANTS), st.sampled_from(TenantRole), max_size=2),
)


@given(principal=principals, act=st.sampled_from(Act), state=states | st.none())
def test_decide(principal: Principal, act: Act, state: TenantState | None) -> None:
    tenant_id = state.id if state else "acme"
    verdict = decide(principal, act, state, tenant_id)
    role = principal.tenants.get(tenant_id)
    if principal.platform is PlatformRole.ADMIN:
        assert verdict is Verdict.ALLOWED  # every tenant, everything
    elif principal.platform is PlatformRole.SERVICE:
        allowed = act in {Act.LOOKUP, Act.CONSUMPTION, Act.BACKFILL}
        assert verdict is (Verdict.ALLOWED if allowed else Verdict.FORBIDDEN)
    elif role is None or state is None:
        assert verdict is Verdict.HIDDEN  # another tenant's, or no such tenant: 404
    elif not state.active:
        assert verdict is Verdict.SUSPENDED  # whatever the act
    elif act in {Act.BACKFILL, Act.PLATFORM}:
        assert verdict is Verdict.FORBIDDEN  # never tenant staff's
    elif role is TenantRole.SUPPORT and act is Act.ACT:
        assert verdict is (Verdict.ALLOWED if state.support_can_act else Verdict.FORBIDDEN)
    elif role is TenantRole.SUPPORT:
        assert verdict is (Verdict.ALLOWED if act is Act.LOOKUP else Verdict.FORBIDDEN)
    else:
        assert verdict is Verdict.ALLOWED  # a tenant admin, on their tenant
    if verdict is Verdict.ALLOWED and principal.platform is None:
        assert principal.may_ever(act)
