"""The worker's settings, read once at start-up: the reconciler's (``reconciliation.settings``; the
work topic is required, each continuation is published there) and the Pub/Sub push identity's
token check (``RECONCILE_PUSH_SERVICE_ACCOUNTS``, ``RECONCILE_PUSH_AUDIENCE``,
``RECONCILE_PUSH_CERTS_URL``; unset: off, a WARNING, local runs only)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..config import Settings
from ..oidc import Authenticator, read_authenticator
from ..reconciliation.settings import ReconcileSettings

PUSH_SERVICE_ACCOUNTS = "RECONCILE_PUSH_SERVICE_ACCOUNTS"


@dataclass(frozen=True)
class WorkerSettings:
    reconcile: ReconcileSettings
    push_auth: Authenticator | None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> WorkerSettings:
        settings = Settings(env)
        reconcile = ReconcileSettings.read(settings)
        if not settings.raw("RECONCILE_WORK_TOPIC"):
            settings.problem(
                "RECONCILE_WORK_TOPIC must be set: the worker publishes each continuation there"
            )
        push_auth = read_authenticator(
            settings,
            emails=PUSH_SERVICE_ACCOUNTS,
            audiences="RECONCILE_PUSH_AUDIENCE",
            keys_url="RECONCILE_PUSH_CERTS_URL",
            who="reconcile_worker",
            forbidden_code="not_the_push_identity",
        )
        if push_auth is not None and push_auth.allow_list.domains:
            settings.problem(f"{PUSH_SERVICE_ACCOUNTS} takes service account emails only")
        settings.done()
        return cls(reconcile, push_auth)
