"""The Apple function's settings, read once at start-up; every problem is named before it
refuses to start."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from .. import logs
from ..appstore.config import (
    SOURCE_ROOT,
    TRUSTED_PRODUCTION_FINGERPRINTS,
    read_app_apple_id,
    read_environments,
    read_roots,
)
from ..appstore.verifier import PRODUCTION, AppCheck, AppleVerifier
from ..config import EventsSettings, FirestoreSettings, Settings
from ..tenants import AppleApp, Tenant, default_tenant


@dataclass(frozen=True)
class AppleSettings:
    firestore: FirestoreSettings
    bundle_ids: tuple[str, ...]
    environments: tuple[str, ...]
    app_apple_id: int | None
    roots: tuple[x509.Certificate, ...]
    #: Where changes of access are published; None: events off (a WARNING at start-up).
    events: EventsSettings | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> AppleSettings:
        return load_settings(env)

    def verifier(self, apps: AppCheck | None = None) -> AppleVerifier:
        """The verifier of the configured apps, or of those ``apps`` accepts (the tenants')."""
        return AppleVerifier(
            self.roots,
            bundle_ids=self.bundle_ids,
            environments=self.environments or (PRODUCTION,),
            app_apple_id=self.app_apple_id,
            apps=apps,
        )

    def default_tenant(self) -> Tenant | None:
        """The ``default`` tenant: ``APPLE_BUNDLE_IDS`` in ``APPLE_ENVIRONMENTS``."""
        apps = tuple(AppleApp(b, self.app_apple_id, self.environments) for b in self.bundle_ids)
        return default_tenant(apple_apps=apps)


def load_settings(
    env: Mapping[str, str],
    *,
    base_dir: Path = SOURCE_ROOT,
    trusted_production_fingerprints: Collection[str] = TRUSTED_PRODUCTION_FINGERPRINTS,
) -> AppleSettings:
    """Read and validate the settings. ``trusted_production_fingerprints`` is for tests only."""
    settings = Settings(env)
    firestore = FirestoreSettings.read(settings)
    events = EventsSettings.read(settings)
    # The default tenant's apps (tenants registered at run time bring their own).
    bundle_ids = settings.csv("APPLE_BUNDLE_IDS")
    environments = read_environments(settings)
    production = PRODUCTION in environments
    app_apple_id = read_app_apple_id(settings, required=production and bool(bundle_ids))
    roots, others = read_roots(
        settings, production=production, base_dir=base_dir, trusted=trusted_production_fingerprints
    )
    settings.done()
    if production and others:
        logs.warning(
            "APPLE_ROOT_CERTS trusts roots other than Apple Root CA - G3",
            function="apple_notifications",
            fingerprints=others,
        )
    return AppleSettings(firestore, bundle_ids, environments, app_apple_id, roots, events)
