"""The reconciler's settings, read once at start-up: Firestore and events, the Play Developer API
and the packages whose voids to list, the App Store Server API and what verifying its signed
notifications needs (bundle ids, environments, the app's Apple ID, pinned roots), the cursor
overlap, the run's time budget, the refund-request policy (``REFUND_REQUESTS``...), and the
work topic of a fanned-out run (``RECONCILE_WORK_TOPIC``). The worker reads the same."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..config import APPLE_API_ENV, EventsSettings, FirestoreSettings, Settings
from ..playstore.credentials import PlayApiSettings, read_play_api_settings
from ..reconciliation.run import Scope
from ..refund_answers import Policy, policy_problems
from ..tenants import AppleApp, Tenant, default_tenant

if TYPE_CHECKING:
    from ..appstore.credentials import AppleApiAccess

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
    #: Where a fanned-out run's work messages go (``RECONCILE_WORK_TOPIC``); None: the reconcile
    #: function walks the sources itself.
    work: EventsSettings | None = None

    def scope(self) -> Scope:
        return Scope(self.packages, self.apple, self.overlap_ms, self.budget_s, self.policy)

    def default_tenant(self) -> Tenant | None:
        """The apps set in the environment, as the ``default`` tenant."""
        apple: tuple[AppleApp, ...] = ()
        if self.apple is not None:  # which apps and environments (the verifier checks the rest)
            apple = tuple(
                AppleApp(bundle, None, tuple(self.apple.environments))
                for bundle in self.apple.bundle_ids
            )
        return default_tenant(
            play_packages=self.packages, apple_apps=apple, play_api=self.play_api is not None
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ReconcileSettings:
        settings = Settings(env)
        read = cls.read(settings)
        settings.done()
        return read

    @classmethod
    def read(cls, settings: Settings) -> ReconcileSettings:
        """Problems recorded on ``settings`` (the caller's ``done`` raises them)."""
        firestore = FirestoreSettings.read(settings)
        events = EventsSettings.read(settings)
        play_api = read_play_api_settings(settings)
        # The default tenant's packages (registered tenants bring their own).
        packages = settings.csv("PLAY_PACKAGE_NAMES")
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
        work = EventsSettings.read(settings, name="RECONCILE_WORK_TOPIC")
        return cls(
            firestore,
            events,
            play_api,
            packages,
            apple,
            int(overlap * 60_000),
            budget,
            policy,
            work,
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
    return policy
