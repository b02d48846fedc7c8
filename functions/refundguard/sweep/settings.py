"""The events sweep's settings, read once at start-up: it publishes, so EVENTS_TOPIC is required;
it also runs the alert checks (``ALERTS``, docs/alerts.md)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..config import EventsSettings, FirestoreSettings, Settings

#: Entries younger than this are left to the request that committed them (it publishes right
#: after its commit); keep it above a request's publish timeout.
DEFAULT_GRACE_SECONDS = 60.0
DEFAULT_DEADLINE_HOURS = 4.0
DEFAULT_SPIKE_MIN_REFUNDS = 10
DEFAULT_RECONCILE_MINUTES = 60.0


@dataclass(frozen=True)
class AlertSettings:
    """``ALERTS`` (on/off), and each alert's threshold (docs/alerts.md)."""

    on: bool = True
    near_ms: int = int(DEFAULT_DEADLINE_HOURS * 3600_000)
    spike_floor: int = DEFAULT_SPIKE_MIN_REFUNDS
    reconcile_stale_ms: int = int(DEFAULT_RECONCILE_MINUTES * 60_000)

    @classmethod
    def read(cls, settings: Settings) -> AlertSettings:
        switch = settings.text("ALERTS", default="on").lower()
        if switch not in ("on", "off"):
            settings.problem(f"ALERTS must be on or off, not {switch[:20]!r}")
        hours = settings.number(
            "ALERT_DEADLINE_HOURS", default=DEFAULT_DEADLINE_HOURS, low=0.25, high=23
        )
        floor = settings.number(
            "ALERT_SPIKE_MIN_REFUNDS", default=DEFAULT_SPIKE_MIN_REFUNDS, low=1, high=1_000_000
        )
        minutes = settings.number(
            "ALERT_RECONCILE_MINUTES", default=DEFAULT_RECONCILE_MINUTES, low=15, high=10_080
        )
        return cls(switch != "off", int(hours * 3600_000), int(floor), int(minutes * 60_000))


@dataclass(frozen=True)
class SweepSettings:
    firestore: FirestoreSettings
    events: EventsSettings
    grace_s: float
    alerts: AlertSettings = AlertSettings()

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
