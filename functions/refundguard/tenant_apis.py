"""The store APIs as a tenant's work calls them. Google: one Play Developer API client for every
tenant (the deployment's service account, which each creator invites in their own Play Console),
used for a tenant whose ``play_api`` is on. Apple: the tenant's own App Store Server API key (its
Apple team), opened by a ``KeyOpener`` (Cloud KMS, ``tenant_keys``) and cached per key; the
``default`` tenant's is the environment's (``APPLE_API_*``)."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from .tenants import DEFAULT_TENANT, Tenant

if TYPE_CHECKING:
    from cryptography import x509

    from .appstore.api import AppStoreApiClient
    from .appstore.credentials import AppleApiAccess
    from .appstore.errors import VerificationStatus
    from .appstore.verifier import AppCheck
    from .playstore.api import PlayApiClient
    from .playstore.credentials import PlayApiSettings
    from .storeapi import CallPolicy
    from .tenants import AppleKey


class KeyOpener(Protocol):
    """Turns a tenant's sealed App Store Server API key back into the ``.p8`` text, in memory
    only (``tenant_keys.TenantKeys``)."""

    def open(self, tenant_id: str, key: AppleKey) -> str: ...


@dataclass(frozen=True)
class AppleBase:
    """What every tenant's App Store Server API access shares: where the API is, and the pinned
    roots its signed answers must chain to."""

    base_url: str
    sandbox_base_url: str
    roots: tuple[x509.Certificate, ...]


class TenantApis:
    """Store API clients per tenant, built on first use and kept (thread-safe)."""

    def __init__(
        self,
        *,
        policy: CallPolicy,
        play: PlayApiSettings | None = None,
        play_client: PlayApiClient | None = None,
        default_apple: AppleApiAccess | None = None,
        apple_base: AppleBase | None = None,
        keys: KeyOpener | None = None,
    ) -> None:
        self._policy = policy
        self._play_settings = play
        self._play = play_client
        self._default_apple = default_apple
        self._apple_base = apple_base
        self._keys = keys
        self._lock = threading.Lock()
        self._access: dict[tuple[str, int, str], AppleApiAccess] = {}
        self._clients: dict[str, tuple[AppleApiAccess, AppStoreApiClient]] = {}

    @property
    def keys(self) -> KeyOpener | None:
        """What opens registered tenants' keys (None: only the environment's key is used)."""
        return self._keys

    @property
    def apple_on(self) -> bool:
        """Whether any tenant's App Store Server API can be asked here."""
        return self._default_apple is not None or (
            self._apple_base is not None and self._keys is not None
        )

    # ------------------------------------------------------------------ Google

    @property
    def play_on(self) -> bool:
        return self._play is not None or self._play_settings is not None

    def play(self, tenant: Tenant) -> PlayApiClient | None:
        """The Play Developer API for ``tenant``'s packages, or None (off for the deployment or
        the tenant)."""
        if not tenant.play_api:
            return None
        with self._lock:
            if self._play is None and self._play_settings is not None:
                from .playstore.api import PlayApiClient

                self._play = PlayApiClient(self._play_settings, policy=self._policy)
            return self._play

    # ------------------------------------------------------------------ Apple

    def apple_access(self, tenant: Tenant) -> AppleApiAccess | None:
        """``tenant``'s App Store Server API key, apps and verifier, or None (no key).
        Opening a sealed key may raise TRANSIENT (KMS unreachable) or FORBIDDEN-like errors of
        the opener; a key that is not a .p8 is ``ValueError``."""
        if tenant.id == DEFAULT_TENANT:
            return self._default_apple
        key = tenant.apple_key
        if key is None or self._apple_base is None or self._keys is None or not tenant.apple_apps:
            return None
        cache_key = (tenant.id, tenant.version, key.key_id)
        with self._lock:
            found = self._access.get(cache_key)
        if found is not None:
            return found
        access = self._open(tenant, key, self._apple_base, self._keys)
        with self._lock:
            self._access = {k: v for k, v in self._access.items() if k[0] != tenant.id}
            self._access[cache_key] = access
        return access

    @staticmethod
    def _open(tenant: Tenant, key: AppleKey, base: AppleBase, keys: KeyOpener) -> AppleApiAccess:
        from .appstore.credentials import AppleApiAccess, AppleApiSettings, load_private_key
        from .appstore.verifier import AppleVerifier

        private = load_private_key(keys.open(tenant.id, key))
        api = AppleApiSettings(
            key.key_id, key.issuer_id, private, base.base_url, base.sandbox_base_url
        )
        environments = tuple(
            dict.fromkeys(env for app in tenant.apple_apps for env in app.environments)
        )
        verifier = AppleVerifier(
            base.roots,
            bundle_ids=(),
            environments=environments,
            apps=_tenant_app_check(tenant),
        )
        bundle_ids = tuple(app.bundle_id for app in tenant.apple_apps)
        return AppleApiAccess(api, bundle_ids, environments, verifier)

    def apple(self, tenant: Tenant) -> AppStoreApiClient | None:
        """The App Store Server API client of ``tenant``'s key, or None."""
        access = self.apple_access(tenant)
        if access is None:
            return None
        with self._lock:
            found = self._clients.get(tenant.id)
            if found is not None and found[0] is access:
                return found[1]
            from .appstore.api import AppStoreApiClient

            client = AppStoreApiClient(access.api, policy=self._policy)
            self._clients[tenant.id] = (access, client)
            return client


def _tenant_app_check(tenant: Tenant) -> AppCheck:
    """The verifier's app check for one tenant's signed answers: its own apps only."""
    from .appstore.verifier import check_app

    def check(
        bundle_id: str, environment: str, app_apple_id: int | None
    ) -> tuple[VerificationStatus, str] | None:
        from .appstore.errors import VerificationStatus

        app = tenant.apple_app(bundle_id)
        if app is None:
            return VerificationStatus.INVALID_APP_IDENTIFIER, "not one of the tenant's apps"
        return check_app(
            environment, app_apple_id, environments=app.environments, expected=app.app_apple_id
        )

    return check
