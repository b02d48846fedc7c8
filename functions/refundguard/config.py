"""Environment variables: the one list of what each function reads, and small parsing helpers.

``ENV_VARS`` is the contract with ``infra/``: the offline infrastructure tests check that Terraform
sets exactly these variables on each function. A function reads its settings once, at start-up, and
refuses to start (``ConfigError``) when one is missing or malformed.
"""

from __future__ import annotations

from collections.abc import Mapping

#: Read by every function.
COMMON_ENV = ("GOOGLE_CLOUD_PROJECT", "FIRESTORE_DATABASE", "FIRESTORE_DEADLINE_SECONDS")

#: Read by each function, by entry point name (beside COMMON_ENV).
FUNCTION_ENV: dict[str, tuple[str, ...]] = {
    "play_notifications": (
        "PLAY_PACKAGE_NAMES",
        "PLAY_PUSH_SERVICE_ACCOUNTS",
        "PLAY_PUSH_CERTS_URL",
    ),
    "apple_notifications": (
        "APPLE_BUNDLE_IDS",
        "APPLE_ENVIRONMENTS",
        "APPLE_APP_APPLE_ID",
        "APPLE_ROOT_CERTS",
    ),
    "admin": ("ADMIN_AUDIENCES", "ADMIN_EMAILS", "ADMIN_CERTS_URL"),
}

DEFAULT_DATABASE = "(default)"
#: How long one event may spend on Firestore (all retries included) before the request answers 503.
#: Keep it below the function's timeout so the sender sees a clean 5xx and retries.
DEFAULT_DEADLINE_SECONDS = 20.0


class ConfigError(RuntimeError):
    """A setting is missing or malformed: the function must not start."""


def env_vars_for(entry_point: str) -> tuple[str, ...]:
    return COMMON_ENV + FUNCTION_ENV[entry_point]


def csv_list(
    env: Mapping[str, str], name: str, *, default: str = "", required: bool = False
) -> tuple[str, ...]:
    """A comma-separated list, items stripped, empties dropped, order kept, duplicates removed."""
    raw = env.get(name, default)
    items = tuple(dict.fromkeys(item.strip() for item in raw.split(",") if item.strip()))
    if required and not items:
        raise ConfigError(f"{name} must be set to a comma-separated list (it is empty or unset)")
    return items


def text(env: Mapping[str, str], name: str, *, default: str | None = None) -> str:
    value = env.get(name, "").strip() or default
    if value is None:
        raise ConfigError(f"{name} must be set")
    return value


def firestore_database(env: Mapping[str, str]) -> str:
    return text(env, "FIRESTORE_DATABASE", default=DEFAULT_DATABASE)


def project(env: Mapping[str, str]) -> str | None:
    """The Google Cloud project, or None to let the client library infer it from the runtime."""
    return env.get("GOOGLE_CLOUD_PROJECT", "").strip() or None


def firestore_deadline(env: Mapping[str, str]) -> float:
    raw = env.get("FIRESTORE_DEADLINE_SECONDS", "").strip()
    if not raw:
        return DEFAULT_DEADLINE_SECONDS
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(
            f"FIRESTORE_DEADLINE_SECONDS must be a number of seconds, not {raw!r}"
        ) from None
    if not 0.5 <= value <= 540:
        raise ConfigError("FIRESTORE_DEADLINE_SECONDS must be between 0.5 and 540")
    return value
