"""The reconciler's settings, read once at start-up: Firestore and events, the Play Developer API
and the packages whose voids to list, the App Store Server API and what verifying its signed
notifications needs (bundle ids, environments, the app's Apple ID, pinned roots), the cursor
overlap, the run's time budget, the refund-request policy (``REFUND_REQUESTS``...), registered
tenants' Apple keys (``TENANT_KEYS_KMS_KEY``: ``tenant_apis`` opens them with Cloud KMS), and the
work topic of a fanned-out run (``RECONCILE_WORK_TOPIC``). The worker reads the same."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..config import APPLE_API_ENV, EventsSettings, FirestoreSettings, Settings
from ..playstore.credentials import PlayApiSettings, read_play_api_settings
from ..refund_answers import Policy
from ..refund_policy import read_policy
from ..tenant_keys import read_tenant_keys
from ..tenants import AppleApp, Tenant, default_tenant
from .run import Scope

if TYPE_CHECKING:
    from ..appstore.credentials import AppleApiAccess
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
    #: Where a fanned-out run's work messages go (``RECONCILE_WORK_TOPIC``); None: the reconcile
    #: function walks the sources itself.
    work: EventsSettings | None = None

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
        tenant_keys = read_tenant_keys(settings)
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
            tenant_keys,
            work,
        )
