"""Environment variables: the one list of what each function reads (``FUNCTION_ENV``, checked
against Terraform by ``tests/unit/test_infra.py``) and ``Settings``, which reads them and collects
every problem so a misconfigured function names them all, one line each, and does not start."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import urlsplit

T = TypeVar("T")

#: Read by every function. Every function changes entitlements (or, the sweep, publishes their
#: events), so every one reads EVENTS_TOPIC.
COMMON_ENV = (
    "GOOGLE_CLOUD_PROJECT",
    "FIRESTORE_DATABASE",
    "FIRESTORE_DEADLINE_SECONDS",
    "EVENTS_TOPIC",
    "TENANT_CACHE_SECONDS",
)

#: The Play Developer API's settings (read by ``playstore.credentials.read_play_api_settings``):
#: PLAY_API_SERVICE_ACCOUNT is the one account every function calls it as (impersonated).
PLAY_API_ENV = ("PLAY_DEVELOPER_API", "PLAY_API_BASE_URL", "PLAY_API_SERVICE_ACCOUNT")
#: The App Store Server API's settings (read by ``appstore.credentials``);
#: APPLE_API_PRIVATE_KEY comes from Secret Manager (``SECRET_ENV``).
APPLE_API_ENV = (
    "APPLE_API_KEY_ID",
    "APPLE_API_ISSUER_ID",
    "APPLE_API_PRIVATE_KEY",
    "APPLE_API_BASE_URL",
    "APPLE_API_SANDBOX_BASE_URL",
)

#: Tenants' App Store Server API keys, sealed with Cloud KMS (``kms``, ``tenant_keys``): read by
#: the functions that store or use them (encrypt: admin and console; decrypt: every function that
#: calls Apple with a tenant's key). IAM on the key decides who may do what (tenant_keys.tf).
TENANT_KEYS_ENV = ("TENANT_KEYS_KMS_KEY", "TENANT_KEYS_KMS_BASE_URL")

#: The refund-request policy (``refund_policy.read_policy``, docs/refunds.md).
REFUND_POLICY_ENV = (
    "REFUND_REQUESTS",
    "REFUND_GRANT_BELOW_PERCENT",
    "REFUND_DECLINE_FROM_PERCENT",
    "REFUND_RULES",
)

#: What looking orders up takes (the admin function and the console; the reconciler reads it too):
#: both stores' APIs, and what verifying Apple's signed answers needs (bundle ids, the app's Apple
#: ID, the pinned roots).
ORDER_LOOKUP_ENV = (
    *PLAY_API_ENV,
    "PLAY_PACKAGE_NAMES",
    *APPLE_API_ENV,
    "APPLE_BUNDLE_IDS",
    "APPLE_APP_APPLE_ID",
    "APPLE_ROOT_CERTS",
    *TENANT_KEYS_ENV,
)

#: Read by each function, by entry point name (beside COMMON_ENV). Which store API each reads:
#: play_notifications verifies purchases and judges voids with the Play API; admin looks orders
#: up with both APIs (and needs what verifying Apple's signed answers takes: bundle ids, the app's
#: Apple ID, the pinned roots) and triggers the reconciler (RECONCILE_URL); apple_notifications
#: needs neither (notifications are signed and self-contained); the reconciler lists voids and
#: Apple's notification history and answers refund requests with both.
#: Refund insight's warehouse (``insight.InsightSettings``, docs/insight.md): the admin API's
#: ``GET /insight``, in the admin function and the console.
INSIGHT_ENV = (
    "INSIGHT_ENGINE",
    "INSIGHT_DATASET",
    "INSIGHT_LOCATION",
    "INSIGHT_API_BASE_URL",
    "INSIGHT_CACHE_SECONDS",
)

FUNCTION_ENV: dict[str, tuple[str, ...]] = {
    "play_notifications": (
        "PLAY_PACKAGE_NAMES",
        "PLAY_PUSH_SERVICE_ACCOUNTS",
        "PLAY_PUSH_AUDIENCE",
        "PLAY_PUSH_CERTS_URL",
        *PLAY_API_ENV,
    ),
    "apple_notifications": (
        "APPLE_BUNDLE_IDS",
        "APPLE_ENVIRONMENTS",
        "APPLE_APP_APPLE_ID",
        "APPLE_ROOT_CERTS",
    ),
    "admin": (
        "ADMIN_AUDIENCES",
        "ADMIN_EMAILS",
        "ADMIN_CERTS_URL",
        *ORDER_LOOKUP_ENV,
        "RECONCILE_URL",
        *INSIGHT_ENV,
        # The default tenant's refund policy, for POST /refund-requests:dry-run.
        *REFUND_POLICY_ENV,
    ),
    # The sweep also runs the alert checks (docs/alerts.md).
    "events_sweep": (
        "EVENTS_SWEEP_GRACE_SECONDS",
        "ALERTS",
        "ALERT_DEADLINE_HOURS",
        "ALERT_SPIKE_MIN_REFUNDS",
        "ALERT_RECONCILE_MINUTES",
    ),
    "reconcile": (
        *ORDER_LOOKUP_ENV,
        "APPLE_ENVIRONMENTS",
        "RECONCILE_OVERLAP_MINUTES",
        "RECONCILE_BUDGET_SECONDS",
        *REFUND_POLICY_ENV,
        # Set: it fans out (one work message per tenant x source); unset: it walks them itself.
        "RECONCILE_WORK_TOPIC",
    ),
    # One page of one tenant's source per work message, pushed by Pub/Sub (OIDC checked as the
    # Play function does); it publishes each continuation to the same topic.
    "reconcile_worker": (
        *ORDER_LOOKUP_ENV,
        "APPLE_ENVIRONMENTS",
        "RECONCILE_OVERLAP_MINUTES",
        "RECONCILE_BUDGET_SECONDS",
        *REFUND_POLICY_ENV,
        "RECONCILE_WORK_TOPIC",
        "RECONCILE_PUSH_SERVICE_ACCOUNTS",
        "RECONCILE_PUSH_AUDIENCE",
        "RECONCILE_PUSH_CERTS_URL",
    ),
    # The admin API again, for browsers (docs/console.md): the console's OAuth client id is its
    # one token audience (no ADMIN_AUDIENCES), and where its page loads the sign-in library from.
    "admin_console": (
        "CONSOLE_OAUTH_CLIENT_ID",
        "CONSOLE_GIS_CLIENT_URL",
        "ADMIN_EMAILS",
        "ADMIN_CERTS_URL",
        *ORDER_LOOKUP_ENV,
        *INSIGHT_ENV,
        *REFUND_POLICY_ENV,
    ),
}

#: Settings that come from Secret Manager (Terraform's secret_environment_variables), not from
#: plain environment variables: never in Terraform state or the code.
SECRET_ENV = frozenset({"APPLE_API_PRIVATE_KEY"})

DEFAULT_DATABASE = "(default)"
#: How long one event may spend on Firestore (all retries included) before the request answers 503.
#: Keep it below the function's timeout so the sender sees a clean 5xx and retries.
DEFAULT_DEADLINE_SECONDS = 20.0


#: The hosts of this machine: the only ones a setting may name over plain http (``make run``).
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def is_local_url(url: str) -> bool:
    """An http:// URL of this machine: a local stand-in (``make run``, tests), never Google's or
    Apple's."""
    parts = urlsplit(url)
    return parts.scheme == "http" and parts.hostname in LOCAL_HOSTS


class ConfigError(RuntimeError):
    """Settings are missing or malformed: the function must not start. One problem per line."""

    def __init__(self, *problems: str) -> None:
        self.problems = tuple(problems) or ("invalid configuration",)
        super().__init__("\n".join(self.problems))


def env_vars_for(entry_point: str) -> tuple[str, ...]:
    return COMMON_ENV + FUNCTION_ENV[entry_point]


class Settings:
    """Reads settings from ``env``; each reader records a problem instead of raising, and
    ``done()`` raises one ``ConfigError`` listing them all."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.problems: list[str] = []

    def raw(self, name: str) -> str:
        return self.env.get(name, "").strip()

    def problem(self, message: str) -> None:
        self.problems.append(message)

    def csv(self, name: str, *, default: str = "", required: bool = False) -> tuple[str, ...]:
        """A comma-separated list, items stripped, empties dropped, order kept, no duplicates."""
        raw = self.env.get(name, default)
        items = tuple(dict.fromkeys(item.strip() for item in raw.split(",") if item.strip()))
        if required and not items:
            self.problem(f"{name} must be set to a comma-separated list (it is empty or unset)")
        return items

    def text(self, name: str, *, default: str = "", required: bool = False) -> str:
        value = self.raw(name) or default
        if required and not value:
            self.problem(f"{name} must be set")
        return value

    def number(self, name: str, *, default: float, low: float, high: float) -> float:
        raw = self.raw(name)
        if not raw:
            return default
        try:
            value = float(raw)
        except ValueError:
            self.problem(f"{name} must be a number, not {raw[:40]!r}")
            return default
        if not low <= value <= high:
            self.problem(f"{name} must be between {low:g} and {high:g}, not {value:g}")
            return default
        return value

    def check(self, build: Callable[[], T]) -> T | None:
        """Run ``build``; a ConfigError it raises becomes recorded problems (None returned)."""
        try:
            return build()
        except ConfigError as err:
            self.problems.extend(err.problems)
            return None

    def done(self) -> None:
        if self.problems:
            raise ConfigError(*self.problems)

    # -------------------------------------------------------------------- common to every function

    def project(self) -> str | None:
        """The Google Cloud project, or None to let the client library infer it from the runtime."""
        return self.raw("GOOGLE_CLOUD_PROJECT") or None

    def firestore_database(self) -> str:
        return self.text("FIRESTORE_DATABASE", default=DEFAULT_DATABASE)

    def firestore_deadline(self) -> float:
        return self.number(
            "FIRESTORE_DEADLINE_SECONDS", default=DEFAULT_DEADLINE_SECONDS, low=0.5, high=540
        )


@dataclass(frozen=True)
class FirestoreSettings:
    """Where the entitlements live, and how long one event may spend on them."""

    project: str | None
    database: str
    deadline_s: float
    #: How long an instance trusts what it read about tenants (``TENANT_CACHE_SECONDS``): a
    #: tenant's change reaches every instance within it.
    tenant_cache_s: float = 60.0

    @classmethod
    def read(cls, settings: Settings) -> FirestoreSettings:
        project = settings.project()
        if project and project.startswith("demo-") and not settings.raw("FIRESTORE_EMULATOR_HOST"):
            settings.problem(
                f"GOOGLE_CLOUD_PROJECT={project} is a local demo project, but "
                "FIRESTORE_EMULATOR_HOST is not set: refusing to talk to a real Firestore"
            )
        cache = settings.number("TENANT_CACHE_SECONDS", default=60.0, low=0, high=600)
        return cls(project, settings.firestore_database(), settings.firestore_deadline(), cache)


_TOPIC = re.compile(
    r"projects/([a-z][a-z0-9-]{4,28}[a-z0-9])/topics/([A-Za-z][A-Za-z0-9._~%+-]{2,254})"
)


@dataclass(frozen=True)
class EventsSettings:
    """Where access-change events are published (``EVENTS_TOPIC``), and whether to a local
    Pub/Sub emulator (``PUBSUB_EMULATOR_HOST``)."""

    topic: str  # projects/P/topics/T
    emulator_host: str | None

    @property
    def project(self) -> str:
        return self.topic.split("/")[1]

    @property
    def source(self) -> str:
        """The CloudEvents ``source`` of every event: this deployment of refundguard."""
        return f"//refundguard/projects/{self.project}"

    @classmethod
    def read(
        cls, settings: Settings, *, required: bool = False, name: str = "EVENTS_TOPIC"
    ) -> EventsSettings | None:
        """None when ``EVENTS_TOPIC`` (or the topic setting ``name``) is unset (events off),
        unless ``required``."""
        topic = settings.text(name, required=required)
        if not topic:
            return None
        if not _TOPIC.fullmatch(topic):
            settings.problem(
                f"{name} must be a topic's full name, projects/PROJECT/topics/TOPIC, "
                f"not {topic[:80]!r}"
            )
            return None
        emulator = settings.raw("PUBSUB_EMULATOR_HOST") or None
        events = cls(topic, emulator)
        if events.project.startswith("demo-") and emulator is None:
            settings.problem(
                f"{name} is in {events.project}, a local demo project, but "
                "PUBSUB_EMULATOR_HOST is not set: refusing to publish to a real Pub/Sub"
            )
            return None
        return events
