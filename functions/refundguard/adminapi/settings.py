"""The admin function's settings, read once at start-up: Firestore, who may call it, and the two
store APIs that look orders up (each optional): the Play Developer API (``PLAY_DEVELOPER_API``,
``PLAY_PACKAGE_NAMES`` for ``orders.get``) and the App Store Server API (key settings, plus what
verifying its signed answers needs: bundle ids, the app's Apple ID, the pinned roots). Registered
tenants' apps come from the registry, their Apple keys sealed with Cloud KMS
(``TENANT_KEYS_KMS_KEY``, ``tenant_keys.read_tenant_keys``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..config import APPLE_API_ENV, EventsSettings, FirestoreSettings, Settings
from ..model import PRODUCTION
from ..oidc import Authenticator, read_authenticator
from ..playstore.credentials import PlayApiSettings, read_play_api_settings
from ..refund_answers import Policy
from ..refund_policy import read_policy
from ..storeapi import check_base_url
from ..tenant_keys import read_tenant_keys

if TYPE_CHECKING:
    from ..appstore.credentials import AppleApiAccess
    from ..insight import InsightSettings
    from ..storeapi import CallPolicy
    from ..tenant_apis import TenantApis
    from ..tenant_keys import TenantKeysSettings
    from ..tenants import Tenant


@dataclass(frozen=True)
class AdminSettings:
    firestore: FirestoreSettings
    auth: Authenticator
    play_api: PlayApiSettings | None = None  # None: orders.get off
    play_packages: tuple[str, ...] = ()
    #: Look Up Order ID (Production only); None: off.
    apple: AppleApiAccess | None = None
    #: Where changes of access are published; None: events off (a WARNING at start-up).
    events: EventsSettings | None = None
    #: The reconciler's URL (``POST /reconciliation:run``); None: runs cannot be started here.
    reconcile_url: str | None = None
    #: Tenants' Apple keys (Cloud KMS); None: off (only the environment's key is used).
    tenant_keys: TenantKeysSettings | None = None
    #: The apps set in the environment (``PLAY_PACKAGE_NAMES``, ``APPLE_BUNDLE_IDS``): the
    #: ``default`` tenant, whose apps no registered tenant may claim.
    default_tenant: Tenant | None = None
    #: The default tenant's refund-request policy (``REFUND_*``), for the dry run of rules.
    policy: Policy = field(default_factory=Policy)
    #: Refund insight's warehouse (``GET /insight``, docs/insight.md); None: off.
    insight: InsightSettings | None = None

    def tenant_apis(self, policy: CallPolicy) -> TenantApis:
        """The store APIs per tenant: the Play API (every tenant's packages), the environment's
        Apple key for ``default``, each registered tenant's own through KMS."""
        from ..tenant_apis import TenantApis

        if self.tenant_keys is not None:
            return self.tenant_keys.tenant_apis(
                policy=policy, play=self.play_api, default_apple=self.apple
            )
        return TenantApis(policy=policy, play=self.play_api, default_apple=self.apple)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> AdminSettings:
        settings = Settings(env)
        auth = read_authenticator(
            settings,
            emails="ADMIN_EMAILS",
            audiences="ADMIN_AUDIENCES",
            keys_url="ADMIN_CERTS_URL",
            who="the admin function",
            forbidden_code="not_an_admin",
        )
        return cls.read(settings, auth)

    @classmethod
    def read(cls, settings: Settings, auth: Authenticator | None) -> AdminSettings:
        """Everything but the token audiences, which the caller read into ``auth`` (the admin
        function: ``ADMIN_AUDIENCES``; the console: its OAuth client id). Raises ConfigError
        naming every problem recorded on ``settings``."""
        firestore = FirestoreSettings.read(settings)
        events = EventsSettings.read(settings)
        if auth is None and not settings.csv("ADMIN_EMAILS"):
            settings.problem("ADMIN_EMAILS must list at least one email or *@domain")
        play_api = read_play_api_settings(settings)
        # The default tenant's (registered tenants bring their own).
        packages = settings.csv("PLAY_PACKAGE_NAMES")
        apple = None
        if any(settings.raw(name) for name in APPLE_API_ENV):  # the App Store API is configured
            from ..appstore.credentials import read_apple_api_access  # cryptography's x509 too

            apple = read_apple_api_access(settings, (PRODUCTION,), asked_for="orders")
        reconcile_url = None
        if settings.raw("RECONCILE_URL"):
            reconcile_url = settings.check(
                lambda: check_base_url(settings.raw("RECONCILE_URL"), setting="RECONCILE_URL")
            )
        tenant_keys = read_tenant_keys(settings)
        default = _default_tenant(settings, packages, play_api is not None)
        from ..insight import InsightSettings

        insight = InsightSettings.read(settings)
        policy = read_policy(settings)
        settings.done()
        assert auth is not None
        return cls(
            firestore,
            auth,
            play_api,
            packages if play_api is not None else (),
            apple,
            events,
            reconcile_url,
            tenant_keys,
            default_tenant=default,
            policy=policy,
            insight=insight,
        )


def _default_tenant(settings: Settings, packages: tuple[str, ...], play_api: bool) -> Tenant | None:
    """The environment's apps as the ``default`` tenant (its Apple apps in the environments
    ``APPLE_ENVIRONMENTS`` names, Production when unset, as the Apple function reads them)."""
    from ..appstore.config import read_environments
    from ..tenants import AppleApp, default_tenant

    bundles = settings.csv("APPLE_BUNDLE_IDS")
    raw_id = settings.raw("APPLE_APP_APPLE_ID")
    app_apple_id = int(raw_id) if raw_id.isascii() and raw_id.isdigit() else None
    environments = read_environments(settings)
    apps = tuple(AppleApp(bundle, app_apple_id, environments) for bundle in bundles)
    return default_tenant(play_packages=packages, apple_apps=apps, play_api=play_api)
