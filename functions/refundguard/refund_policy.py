"""A refund-request policy as settings give it: ``REFUND_REQUESTS``, the two thresholds and
``REFUND_RULES`` (the environment's, for the ``default`` tenant), checked so that a policy some
report would turn into an answer a store refuses never starts; and each tenant's (``policies``):
its own ``REFUND_*`` settings and ``refund_rules``. Contract: docs/refunds.md."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from . import logs
from .config import Settings
from .refund_answers import Policy, policy_problems
from .tenants import DEFAULT_TENANT

if TYPE_CHECKING:
    from .refund_rules import RefundRule
    from .tenants import Tenant


def read_policy(settings: Settings) -> Policy:
    """``REFUND_REQUESTS`` (``off`` | ``answer``, default off) and the consumption thresholds."""
    mode = settings.text("REFUND_REQUESTS", default="off").lower()
    if mode not in ("off", "answer"):
        settings.problem(f"REFUND_REQUESTS must be off or answer, not {mode[:20]!r}")
    grant = settings.number("REFUND_GRANT_BELOW_PERCENT", default=10, low=0, high=100)
    decline = settings.number("REFUND_DECLINE_FROM_PERCENT", default=50, low=0, high=100)
    if grant > decline:
        settings.problem("REFUND_GRANT_BELOW_PERCENT must not exceed REFUND_DECLINE_FROM_PERCENT")
    policy = Policy(mode == "answer", grant, decline)
    # A policy some report would turn into an answer the store refuses is refused now, not at
    # the first dispute (e.g. a prorated refund of a purchase 0% consumed: Apple's 400).
    for problem in policy_problems(policy)[:3]:
        hint = " (set REFUND_GRANT_BELOW_PERCENT above 0, e.g. 0.001)" if grant <= 0 else ""
        settings.problem(
            f"REFUND_GRANT_BELOW_PERCENT={grant:g} and REFUND_DECLINE_FROM_PERCENT={decline:g}: "
            f"{problem}{hint}"
        )
    return replace(policy, rules=read_rules(settings))


def read_rules(settings: Settings) -> tuple[RefundRule, ...]:
    """``REFUND_RULES``: the ordered rules (a JSON list, docs/refunds.md); unset: none."""
    raw = settings.raw("REFUND_RULES")
    if not raw:
        return ()
    import json

    from .errors import RefundGuardError
    from .refund_rules import parse_rules

    try:
        return parse_rules(json.loads(raw))
    except ValueError:
        settings.problem("REFUND_RULES must be a JSON list of rules (docs/refunds.md)")
    except RefundGuardError as err:
        settings.problem(f"REFUND_RULES: {err.message}")
    return ()


def policies(default: Policy) -> Callable[[Tenant], Policy]:
    """A tenant's refund-request policy: its own ``REFUND_*`` settings (one it leaves unset: the
    documented default); the deployment's when it has none, or when its own are not valid (a
    WARNING)."""

    def policy_for(tenant: Tenant) -> Policy:
        if tenant.id == DEFAULT_TENANT:
            return default  # the environment's, REFUND_RULES included
        if not tenant.policy:
            return replace(default, rules=tenant.refund_rules)
        settings = Settings(dict(tenant.policy))
        policy = read_policy(settings)
        if settings.problems:
            logs.warning(
                "the tenant's refund policy is not valid; the deployment's is used",
                tenant=tenant.id,
                problems=settings.problems[:3],
            )
            return replace(default, rules=tenant.refund_rules)
        return replace(policy, rules=tenant.refund_rules)

    return policy_for
