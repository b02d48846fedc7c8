"""The reconciler's settings, read once at start-up: Firestore and events, the Play Developer API
and the packages whose voids to list, the App Store Server API and what verifying its signed
notifications needs (bundle ids, environments, the app's Apple ID, pinned roots), the cursor
overlap, the run's time budget, and the refund-request policy (``REFUND_REQUESTS``...)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..apple.api_credentials import AppleApiSettings, read_apple_api_settings
from ..apple.settings import read_app_apple_id, read_roots
from ..apple.verifier import ENVIRONMENTS, PRODUCTION, AppleVerifier
from ..config import EventsSettings, FirestoreSettings, Settings, is_local_url
from ..play.api import PlayApiSettings, read_play_api_settings
from ..play.credentials import read_play_credentials
from ..refunds import Policy

DEFAULT_OVERLAP_MINUTES = 360.0
DEFAULT_BUDGET_SECONDS = 45.0


@dataclass(frozen=True)
class AppleHistory:
    """Get Notification History per bundle id and environment, verified like the endpoint."""

    api: AppleApiSettings
    bundle_ids: tuple[str, ...]
    environments: tuple[str, ...]
    verifier: AppleVerifier


@dataclass(frozen=True)
class ReconcileSettings:
    firestore: FirestoreSettings
    events: EventsSettings | None
    play_api: PlayApiSettings | None  # None: Google's voids are not listed
    play_credentials: Any
    packages: tuple[str, ...]
    apple: AppleHistory | None  # None: Apple's history is not asked
    overlap_ms: int
    budget_s: float
    policy: Policy

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ReconcileSettings:
        settings = Settings(env)
        firestore = FirestoreSettings.read(settings)
        events = EventsSettings.read(settings)
        play_api = read_play_api_settings(settings)
        credentials = read_play_credentials(settings, play_api) if play_api else None
        packages = settings.csv("PLAY_PACKAGE_NAMES")
        if play_api is not None and not packages:
            settings.problem("PLAY_PACKAGE_NAMES must list the apps whose voided purchases to list")
        apple = read_apple_history(settings)
        overlap = settings.number(
            "RECONCILE_OVERLAP_MINUTES", default=DEFAULT_OVERLAP_MINUTES, low=0, high=7 * 24 * 60
        )
        budget = settings.number(
            "RECONCILE_BUDGET_SECONDS", default=DEFAULT_BUDGET_SECONDS, low=5, high=3500
        )
        policy = read_policy(settings)
        settings.done()
        return cls(
            firestore,
            events,
            play_api,
            credentials,
            packages,
            apple,
            int(overlap * 60_000),
            budget,
            policy,
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
    return Policy(mode == "answer", grant, decline)


def read_apple_history(settings: Settings) -> AppleHistory | None:
    """The App Store Server API when its key is set, else None. Production's notifications must
    chain to Apple Root CA - G3 unless the API is a local stand-in (``make run``)."""
    api = read_apple_api_settings(settings)
    if api is None:
        return None
    bundle_ids = settings.csv("APPLE_BUNDLE_IDS")
    if not bundle_ids:
        settings.problem("APPLE_BUNDLE_IDS must list the apps whose notification history to ask")
    environments = settings.csv("APPLE_ENVIRONMENTS", default=PRODUCTION) or (PRODUCTION,)
    unknown = [e for e in environments if e not in ENVIRONMENTS]
    if unknown:
        settings.problem(f"APPLE_ENVIRONMENTS may list Production and Sandbox, not {unknown}")
        return None
    production = PRODUCTION in environments
    app_apple_id = read_app_apple_id(settings, required=production)
    local = is_local_url(api.base_url)
    roots, _ = read_roots(settings, production=production and not local)
    if not (bundle_ids and roots) or (production and app_apple_id is None):
        return None
    verifier = AppleVerifier(
        roots, bundle_ids=bundle_ids, environments=environments, app_apple_id=app_apple_id
    )
    return AppleHistory(api, bundle_ids, tuple(environments), verifier)
