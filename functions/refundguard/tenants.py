"""Tenants, pure: a tenant (one creator, or whatever unit the platform chooses) and its apps, the
keys that claim an app for exactly one tenant, the ``default`` tenant a deployment configured
with environment variables has, and the admin API's JSON body for one, checked field by field."""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from .errors import rejected
from .model import DEFAULT_TENANT, PRODUCTION, StoreName
from .refund_rules import RefundRule, parse_rules

__all__ = ["DEFAULT_TENANT"]  # also: the tenant of a deployment's environment-set apps

SANDBOX = "Sandbox"
APPLE_ENVIRONMENTS = (PRODUCTION, SANDBOX)
MAX_APPS = 50
MAX_NAME_CHARS = 120

_TENANT_ID = re.compile(r"[a-z][a-z0-9-]{1,38}[a-z0-9]")
# Android application ids: segments of letters, digits and _, separated by dots.
_PACKAGE = re.compile(r"[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z][A-Za-z0-9_]*)+")
# Apple bundle ids: letters, digits, '-' and '.'.
_BUNDLE = re.compile(r"[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*")


class TenantStatus(enum.StrEnum):
    ACTIVE = "active"
    #: Its refunds are still applied (a refund must revoke); its staff cannot act.
    SUSPENDED = "suspended"


@dataclass(frozen=True)
class AppleApp:
    bundle_id: str
    #: The app's Apple ID, required with Production (notifications must name it).
    app_apple_id: int | None = None
    environments: tuple[str, ...] = (PRODUCTION,)


@dataclass(frozen=True)
class AppleKey:
    """One App Store Server API key of the tenant's Apple team; ``sealed`` is the ``.p8``
    encrypted by Cloud KMS (``tenant_keys``), never the key itself."""

    key_id: str
    issuer_id: str
    sealed: str = ""
    added_ms: int = 0


@dataclass(frozen=True)
class Tenant:
    id: str
    display_name: str
    status: TenantStatus = TenantStatus.ACTIVE
    play_packages: tuple[str, ...] = ()
    apple_apps: tuple[AppleApp, ...] = ()
    #: Whether the Play Developer API is asked (verify purchases, list voids, find orders).
    play_api: bool = False
    #: Newest first: the first is used; an older one stays until removed (rotation, no gap).
    apple_keys: tuple[AppleKey, ...] = ()
    #: The refund-request policy's settings (``REFUND_*`` names, docs/refunds.md); empty: the
    #: deployment's.
    policy: Mapping[str, str] = field(default_factory=dict)
    #: Ordered refund-request rules (``refund_rules``); empty: the thresholds of ``policy``.
    refund_rules: tuple[RefundRule, ...] = ()
    #: Whether tenant support staff may re-grant and revoke (look-up is always theirs).
    support_can_act: bool = False
    created_ms: int = 0
    updated_ms: int = 0
    #: Raised by every change: a change made on a stale read is refused (409).
    version: int = 0

    @property
    def active(self) -> bool:
        return self.status is TenantStatus.ACTIVE

    @property
    def app_keys(self) -> frozenset[str]:
        return frozenset(
            [app_key(StoreName.GOOGLE, p) for p in self.play_packages]
            + [app_key(StoreName.APPLE, a.bundle_id) for a in self.apple_apps]
        )

    def apple_app(self, bundle_id: str) -> AppleApp | None:
        return next((a for a in self.apple_apps if a.bundle_id == bundle_id), None)

    @property
    def apple_key(self) -> AppleKey | None:
        return self.apple_keys[0] if self.apple_keys else None


def default_tenant(
    *,
    play_packages: tuple[str, ...] = (),
    apple_apps: tuple[AppleApp, ...] = (),
    play_api: bool = False,
) -> Tenant | None:
    """The ``default`` tenant: the apps a function's environment names (``PLAY_PACKAGE_NAMES``,
    ``APPLE_BUNDLE_IDS``), as deployments before tenants were configured; None when it names
    none."""
    if not play_packages and not apple_apps:
        return None
    return Tenant(
        id=DEFAULT_TENANT,
        display_name="Apps set in the environment",
        play_packages=play_packages,
        apple_apps=apple_apps,
        play_api=play_api,
    )


def app_key(store: StoreName, app: str) -> str:
    """The id that claims an app for one tenant: ``google:<package>``, ``apple:<bundle id>``."""
    return f"{store.value}:{app}"


def is_app_id(store: StoreName, app: object) -> bool:
    """Whether ``app`` could be a Play package name or an Apple bundle id (anything else is
    nobody's app, and is never looked up)."""
    pattern = _PACKAGE if store is StoreName.GOOGLE else _BUNDLE
    return isinstance(app, str) and len(app) <= 255 and bool(pattern.fullmatch(app))


def is_tenant_id(value: object) -> bool:
    return isinstance(value, str) and bool(_TENANT_ID.fullmatch(value))


def check_tenant_id(value: Any) -> str:
    if not is_tenant_id(value):
        raise rejected(
            "bad_tenant_id",
            "a tenant id is 3-40 characters of lowercase letters, digits and '-', starting "
            "with a letter and not ending with '-'",
        )
    return value


# ---------------------------------------------------------------------------- the JSON body

_FIELDS = frozenset(
    {
        "id",
        "display_name",
        "status",
        "play_packages",
        "apple_apps",
        "play_api",
        "policy",
        "refund_rules",
        "support_can_act",
    }
)
_POLICY_NAMES = frozenset(
    {"REFUND_REQUESTS", "REFUND_GRANT_BELOW_PERCENT", "REFUND_DECLINE_FROM_PERCENT"}
)


def parse_tenant(body: Mapping[str, Any], *, current: Tenant | None = None) -> Tenant:
    """A tenant from the admin API's JSON: the whole of a new one (``current`` None), or the
    fields a change names over ``current``. Every field is checked; the first problem is a 400
    naming it. Keys are never set here (``tenant_keys``)."""
    unknown = set(body) - _FIELDS
    if unknown:
        raise rejected("unknown_field", f"unknown field(s): {', '.join(sorted(unknown))[:200]}")
    if current is None:
        tenant = Tenant(id=check_tenant_id(body.get("id")), display_name="")
        if tenant.id == DEFAULT_TENANT:
            raise rejected(
                "reserved_tenant_id",
                "'default' is the tenant of the apps set in the environment; choose another id",
            )
    else:
        if "id" in body and body["id"] != current.id:
            raise rejected("tenant_id_changed", "a tenant's id cannot change")
        tenant = current
    changes: dict[str, Any] = {}
    if "display_name" in body or current is None:
        changes["display_name"] = _display_name(body.get("display_name"))
    if "status" in body:
        changes["status"] = _enum(TenantStatus, body["status"], "status")
    if "play_packages" in body:
        changes["play_packages"] = _apps(body["play_packages"], _PACKAGE, "play_packages")
    if "apple_apps" in body:
        changes["apple_apps"] = _apple_apps(body["apple_apps"])
    changes.update(_flags(body, ("play_api", "support_can_act")))
    if "policy" in body:
        changes["policy"] = parse_policy_settings(body["policy"])
    if "refund_rules" in body:
        changes["refund_rules"] = parse_rules(body["refund_rules"])
    return replace(tenant, **changes)


def _flags(body: Mapping[str, Any], names: tuple[str, ...]) -> dict[str, bool]:
    for name in names:
        if name in body and not isinstance(body[name], bool):
            raise rejected("bad_field", f"{name} must be true or false")
    return {name: body[name] for name in names if name in body}


def parse_policy_settings(value: Any) -> dict[str, str]:
    """A tenant's refund-request policy: the deployment's ``REFUND_*`` settings by name (checked
    by ``refund_answers`` like the environment's)."""
    if not isinstance(value, dict):
        raise rejected("bad_field", "policy must be an object of REFUND_* settings")
    unknown = set(value) - _POLICY_NAMES
    if unknown:
        raise rejected(
            "bad_field", f"policy takes {', '.join(sorted(_POLICY_NAMES))}; not {sorted(unknown)}"
        )
    out: dict[str, str] = {}
    for name, setting in value.items():
        if not isinstance(setting, (str, int, float)) or isinstance(setting, bool):
            raise rejected("bad_field", f"policy.{name} must be text or a number")
        out[name] = str(setting)[:40]
    return out


def _display_name(value: Any) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_NAME_CHARS:
        raise rejected("bad_field", f"display_name must be 1-{MAX_NAME_CHARS} characters")
    if not value.isprintable():
        raise rejected("bad_field", "display_name must be printable text")
    return value.strip()


def _enum(cls: type[enum.StrEnum], value: Any, name: str) -> Any:
    try:
        return cls(value)
    except ValueError:
        raise rejected("bad_field", f"{name} must be one of {', '.join(cls)}") from None


def _apps(value: Any, pattern: re.Pattern[str], name: str) -> tuple[str, ...]:
    if not isinstance(value, list) or len(value) > MAX_APPS:
        raise rejected("bad_field", f"{name} must be a list of at most {MAX_APPS} ids")
    for item in value:
        if not isinstance(item, str) or len(item) > 255 or not pattern.fullmatch(item):
            raise rejected("bad_field", f"{name} holds an id that is not an app id: {item!r:.80}")
    if len(set(value)) != len(value):
        raise rejected("bad_field", f"{name} names an app twice")
    return tuple(value)


def _apple_apps(value: Any) -> tuple[AppleApp, ...]:
    if not isinstance(value, list) or len(value) > MAX_APPS:
        raise rejected("bad_field", f"apple_apps must be a list of at most {MAX_APPS} apps")
    apps: list[AppleApp] = []
    for item in value:
        if not isinstance(item, dict) or set(item) - {"bundle_id", "app_apple_id", "environments"}:
            raise rejected(
                "bad_field", "each apple_apps item is {bundle_id, app_apple_id, environments}"
            )
        bundle_id = _apps([item.get("bundle_id")], _BUNDLE, "apple_apps.bundle_id")[0]
        environments = item.get("environments", [PRODUCTION])
        if (
            not isinstance(environments, list)
            or not environments
            or not all(env in APPLE_ENVIRONMENTS for env in environments if isinstance(env, str))
            or not all(isinstance(env, str) for env in environments)
            or len(set(environments)) != len(environments)
        ):
            raise rejected(
                "bad_field", "apple_apps.environments must list Production and/or Sandbox"
            )
        app_apple_id = item.get("app_apple_id")
        if app_apple_id is not None and (
            isinstance(app_apple_id, bool)
            or not isinstance(app_apple_id, int)
            or not 0 < app_apple_id < 2**63
        ):
            raise rejected("bad_field", "apple_apps.app_apple_id must be a positive integer")
        if PRODUCTION in environments and app_apple_id is None:
            raise rejected(
                "bad_field",
                f"apple_apps: {bundle_id} takes Production notifications, so it needs its "
                "app_apple_id (App Store Connect > App Information > Apple ID)",
            )
        apps.append(AppleApp(bundle_id, app_apple_id, tuple(environments)))
    if len({a.bundle_id for a in apps}) != len(apps):
        raise rejected("bad_field", "apple_apps names a bundle id twice")
    return tuple(apps)
