"""The events sweep's settings, read once at start-up: it publishes, so EVENTS_TOPIC is required;
it also runs the alert checks (``ALERTS``, docs/alerts.md)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ..alerts import AlertSettings
from ..config import EventsSettings, FirestoreSettings, Settings

#: Entries younger than this are left to the request that committed them (it publishes right
#: after its commit); keep it above a request's publish timeout.
DEFAULT_GRACE_SECONDS = 60.0


@dataclass(frozen=True)
class SweepSettings:
    firestore: FirestoreSettings
    events: EventsSettings
    grace_s: float
    alerts: AlertSettings = field(default_factory=AlertSettings)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> SweepSettings:
        settings = Settings(env)
        firestore = FirestoreSettings.read(settings)
        events = EventsSettings.read(settings, required=True)
        grace_s = settings.number(
            "EVENTS_SWEEP_GRACE_SECONDS", default=DEFAULT_GRACE_SECONDS, low=1, high=3600
        )
        alerts = AlertSettings.read(settings)
        settings.done()
        assert events is not None
        return cls(firestore, events, grace_s, alerts)
