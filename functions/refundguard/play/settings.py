"""The Play function's settings, read once at start-up: Firestore, the ``default`` tenant's
packages (``PLAY_PACKAGE_NAMES``; registered tenants' come from the registry), the push identity's
token check, and the Play Developer API (``PLAY_DEVELOPER_API``, default off)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..config import EventsSettings, FirestoreSettings, Settings
from ..oidc import Authenticator, read_authenticator
from ..playstore.credentials import PlayApiSettings, read_play_api_settings
from ..tenants import Tenant, default_tenant


@dataclass(frozen=True)
class PlaySettings:
    firestore: FirestoreSettings
    package_names: tuple[str, ...]
    #: The Pub/Sub push identity's token check; None: off (local runs only, with a WARNING).
    push_auth: Authenticator | None
    #: The Play Developer API; None: off (notifications are applied as they come).
    api: PlayApiSettings | None = None
    #: Where changes of access are published; None: events off (a WARNING at start-up).
    events: EventsSettings | None = None

    def default_tenant(self) -> Tenant | None:
        return default_tenant(play_packages=self.package_names, play_api=self.api is not None)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> PlaySettings:
        settings = Settings(env)
        firestore = FirestoreSettings.read(settings)
        events = EventsSettings.read(settings)
        # The default tenant's apps (tenants registered at run time bring their own).
        packages = settings.csv("PLAY_PACKAGE_NAMES")
        push_auth = read_authenticator(
            settings,
            emails="PLAY_PUSH_SERVICE_ACCOUNTS",
            audiences="PLAY_PUSH_AUDIENCE",
            keys_url="PLAY_PUSH_CERTS_URL",
            who="play_notifications",
            forbidden_code="not_the_push_identity",
        )
        if push_auth is not None and push_auth.allow_list.domains:
            settings.problem("PLAY_PUSH_SERVICE_ACCOUNTS takes service account emails only")
        api = read_play_api_settings(settings)
        settings.done()
        return cls(firestore, packages, push_auth, api, events)
