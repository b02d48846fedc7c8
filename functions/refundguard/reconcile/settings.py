"""The reconciler's settings, read once at start-up: Firestore and events, the Play Developer API
and the packages whose voids to list, the App Store Server API and what verifying its signed
notifications needs (bundle ids, environments, the app's Apple ID, pinned roots), the cursor
overlap, the run's time budget, the refund-request policy (``REFUND_REQUESTS``...), and registered
tenants' Apple keys (``TENANT_KEYS_KMS_KEY``: ``tenant_apis`` opens them with Cloud KMS)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from ..config import APPLE_API_ENV, EventsSettings, FirestoreSettings, Settings
from ..playstore.credentials import PlayApiSettings, read_play_api_settings
from ..reconciliation.run import Scope
from ..refund_answers import Policy, policy_problems
from ..tenant_keys import read_tenant_keys

if TYPE_CHECKING:
    from ..appstore.credentials import AppleApiAccess
    from ..refund_rules import RefundRule
    from ..storeapi import CallPolicy
    from ..tenant_apis import TenantApis
    from ..tenant_keys import TenantKeysSettings

DEFAULT_OVERLAP_MINUTES = 360.0
DEFAULT_BUDGET_SECONDS = 45.0


@dataclass(frozen=True)
class ReconcileSettings:
    firestore: FirestoreSettings
    events: EventsSettings | None
    play_api: PlayApiSettings | None  # None: Google's voids are not listed
    packages: tuple[str, ...]
    apple: AppleApiAccess | None  # Get Notification History; None: Apple's history is not asked
    overlap_ms: int
    budget_s: float
    policy: Policy
    #: Registered tenants' Apple keys (Cloud KMS); None: only the environment's key is used.
    tenant_keys: TenantKeysSettings | None = None

    def tenant_apis(self, policy: CallPolicy) -> TenantApis:
        """The store APIs per tenant (each tenant's own Apple key, opened with KMS)."""
        from ..tenant_apis import TenantApis

        if self.tenant_keys is not None:
            return self.tenant_keys.tenant_apis(
                policy=policy, play=self.play_api, default_apple=self.apple
            )
        return TenantApis(policy=policy, play=self.play_api, default_apple=self.apple)

    def scope(self) -> Scope:
        return Scope(self.packages, self.apple, self.overlap_ms, self.budget_s, self.policy)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ReconcileSettings:
        settings = Settings(env)
        firestore = FirestoreSettings.read(settings)
        events = EventsSettings.read(settings)
        play_api = read_play_api_settings(settings)
        packages = settings.csv("PLAY_PACKAGE_NAMES")
        if play_api is not None and not packages:
            settings.problem("PLAY_PACKAGE_NAMES must list the apps whose voided purchases to list")
        apple = None
        if any(settings.raw(name) for name in APPLE_API_ENV):  # the App Store API is configured
            from ..appstore.config import read_environments  # cryptography's x509 too
            from ..appstore.credentials import read_apple_api_access

            apple = read_apple_api_access(
                settings, read_environments(settings), asked_for="notification history"
            )
        overlap = settings.number(
            "RECONCILE_OVERLAP_MINUTES", default=DEFAULT_OVERLAP_MINUTES, low=0, high=7 * 24 * 60
        )
        budget = settings.number(
            "RECONCILE_BUDGET_SECONDS", default=DEFAULT_BUDGET_SECONDS, low=5, high=3500
        )
        policy = read_policy(settings)
        tenant_keys = read_tenant_keys(settings)
        settings.done()
        return cls(
            firestore,
            events,
            play_api,
            packages,
            apple,
            int(overlap * 60_000),
            budget,
            policy,
            tenant_keys,
        )


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

    from ..errors import RefundGuardError
    from ..refund_rules import parse_rules

    try:
        return parse_rules(json.loads(raw))
    except ValueError:
        settings.problem("REFUND_RULES must be a JSON list of rules (docs/refunds.md)")
    except RefundGuardError as err:
        settings.problem(f"REFUND_RULES: {err.message}")
    return ()
