"""The admin function's settings, read once at start-up."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..config import EventsSettings, FirestoreSettings, Settings
from ..oidc import Authenticator, read_authenticator


@dataclass(frozen=True)
class AdminSettings:
    firestore: FirestoreSettings
    auth: Authenticator
    #: Where changes of access are published; None: events off (a WARNING at start-up).
    events: EventsSettings | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> AdminSettings:
        settings = Settings(env)
        firestore = FirestoreSettings.read(settings)
        events = EventsSettings.read(settings)
        auth = read_authenticator(
            settings,
            emails="ADMIN_EMAILS",
            audiences="ADMIN_AUDIENCES",
            keys_url="ADMIN_CERTS_URL",
            who="the admin function",
            forbidden_code="not_an_admin",
        )
        if auth is None and not settings.csv("ADMIN_EMAILS"):
            settings.problem("ADMIN_EMAILS must list at least one email or *@domain")
        settings.done()
        assert auth is not None
        return cls(firestore, auth, events)
