"""Check access: may refundguard read a tenant's store accounts? One cheap read-only call per app
and store API: Google ``purchases.voidedpurchases.list`` with ``maxResults=1`` per package (what
the reconciler lists, so it needs the same permission), Apple Get Notification History over the
last minute per bundle id and environment (Request a Test Notification would send a notification:
not read-only). Each store's answer is one state with the fix in words: ``ok``, ``not_invited``,
``key_refused``, ``wrong_bundle``, ``api_off``, ``no_key``, ``unreachable``. ``classify_*`` are
pure; ``check_google`` / ``check_apple`` make the calls."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import Kind, RefundGuardError
from .storeapi import StoreApiError, StoreAuthError, StoreNotFoundError
from .tenants import DEFAULT_TENANT

if TYPE_CHECKING:
    from .appstore.api import AppStoreApiClient
    from .tenant_apis import TenantApis
    from .tenants import Tenant

OK, NOT_INVITED, KEY_REFUSED, WRONG_BUNDLE = "ok", "not_invited", "key_refused", "wrong_bundle"
API_OFF, NO_KEY, UNREACHABLE = "api_off", "no_key", "unreachable"
#: When a store's apps answer differently, the state shown is the first of these found.
SEVERITY = (API_OFF, NO_KEY, KEY_REFUSED, NOT_INVITED, WRONG_BUNDLE, UNREACHABLE, OK)
CHECK_DEADLINE_S = 8.0
#: All of one store's calls together, well under a function's timeout: apps left unasked when it
#: runs out are ``unreachable`` ("not checked").
CHECK_BUDGET_S = 20.0
HISTORY_WINDOW_MS = 60_000
#: Google's words for "the Play Developer API is not enabled in the caller's project".
_API_DISABLED = ("has not been used in project", "it is disabled", "SERVICE_DISABLED",
                 "accessNotConfigured")  # fmt: skip
PLAY_PERMISSIONS = ("View financial data", "Manage orders and subscriptions")


@dataclass(frozen=True)
class Check:
    state: str
    fix: str
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"state": self.state, "fix": self.fix, "details": self.details}


def worst(states: dict[str, str]) -> str:
    return min(states.values(), key=SEVERITY.index) if states else OK


def _budget() -> Callable[[], float | None]:
    """The deadline of the next call, or None once the store's budget is spent."""
    end = time.monotonic() + CHECK_BUDGET_S

    def next_deadline() -> float | None:
        remaining = end - time.monotonic()
        return min(CHECK_DEADLINE_S, remaining) if remaining > 0.5 else None

    return next_deadline


# ---------------------------------------------------------------------------------- Google


def classify_google(err: StoreApiError) -> str:
    """The state of one package from the Play Developer API's refusal (pure)."""
    if isinstance(err, StoreAuthError):
        text = f"{err.message} {err.details.get('reason', '')}"
        if any(words in text for words in _API_DISABLED):
            return API_OFF
        if err.upstream_status is None:  # the token endpoint refused the deployment's account
            return KEY_REFUSED
        return NOT_INVITED
    if isinstance(err, StoreNotFoundError) and err.kind is Kind.NOT_FOUND:
        return WRONG_BUNDLE  # no such package in the Play account that invited us
    return UNREACHABLE


def google_fix(state: str, tenant: Tenant, account: str | None) -> str:
    who = account or "the deployment's service account (GET /play/service-account)"
    return {
        OK: "nothing to do",
        NOT_INVITED: (
            f"in the Play Console of the account that owns {', '.join(tenant.play_packages)}: "
            f"Users and permissions > Invite new users > {who}, with "
            f"{' and '.join(repr(p) for p in PLAY_PERMISSIONS)} for these apps (a new invitation "
            "can take up to 24 hours to work)"
        ),
        KEY_REFUSED: (
            "Google refused the deployment's own credentials: check that the Play API service "
            "account (GET /play/service-account) exists and is enabled, and, with "
            "PLAY_API_SERVICE_ACCOUNT set, that the IAM Service Account Credentials API is enabled "
            "and the functions hold Service Account Token Creator on that account (an operator's "
            "fix, not the creator's)"
        ),
        WRONG_BUNDLE: (
            "the Play account that invited us has no app with this package name: check the "
            "tenant's play_packages against the Play Console"
        ),
        API_OFF: (
            "enable the Google Play Android Developer API in the deployment's Google Cloud "
            "project (an operator's fix), then check again"
        ),
        UNREACHABLE: "the Play Developer API did not answer: check again in a few minutes",
    }[state]


def check_google(tenant: Tenant, apis: TenantApis | None, *, account: str | None = None) -> Check:
    if not tenant.play_packages:
        return Check(
            API_OFF,
            "the tenant has no Play packages: add them (play_packages) if it sells on Google Play",
            {"packages": {}},
        )
    if apis is None or not apis.play_on:
        return Check(
            API_OFF,
            "the Play Developer API is off for this deployment: set play_developer_api = true "
            "(terraform.tfvars) and apply (an operator's fix)",
            {"packages": {}},
        )
    client = apis.play(tenant)
    if client is None:
        return Check(
            API_OFF,
            f"the tenant's play_api is off: invite {account or 'the service account'} in its Play "
            "Console, then set play_api to true for the tenant",
            {"packages": {}},
        )
    states: dict[str, str] = {}
    reasons: dict[str, str] = {}
    deadline = _budget()
    for package in tenant.play_packages:
        deadline_s = deadline()
        if deadline_s is None:
            states[package], reasons[package] = UNREACHABLE, "not checked: out of time"
            continue
        try:
            client.list_voided_purchases(package, max_results=1, deadline_s=deadline_s)
            states[package] = OK
        except StoreApiError as err:
            states[package] = classify_google(err)
            reasons[package] = err.message[:300]
    state = worst(states)
    details: dict[str, Any] = {"packages": states}
    if reasons:
        details["store_said"] = reasons
    return Check(state, google_fix(state, tenant, account), details)


# ---------------------------------------------------------------------------------- Apple


def classify_apple(results: dict[str, str]) -> str:
    """The state of a tenant's key from each app's answer (``ok``, ``refused``, ``unreachable``):
    refused for every app means the key itself; refused for some, a bundle id (pure)."""
    if not results:
        return OK
    values = set(results.values())
    if values == {"refused"}:
        return KEY_REFUSED
    if "refused" in values:
        return WRONG_BUNDLE
    if "unreachable" in values:
        return UNREACHABLE
    return OK


def apple_fix(state: str, tenant: Tenant, refused: list[str]) -> str:
    key = tenant.apple_key
    key_id = key.key_id if key else "?"
    return {
        OK: "nothing to do",
        KEY_REFUSED: (
            f"Apple refused key {key_id}: in App Store Connect > Users and Access > Integrations "
            "> In-App Purchase, check that the key exists (not revoked), that it belongs to the "
            "team that owns the apps, and that key_id and issuer_id match; upload it again"
        ),
        WRONG_BUNDLE: (
            f"Apple refuses {', '.join(refused)} with key {key_id}: the bundle id is wrong, or "
            "the app belongs to another Apple team (one tenant = one team's key)"
        ),
        UNREACHABLE: "the App Store Server API did not answer: check again in a few minutes",
    }[state]


def _apple_client(tenant: Tenant, apis: TenantApis | None) -> AppStoreApiClient | Check:
    """The client of the tenant's key, or the check's answer when there is none to use."""
    if not tenant.apple_apps:
        return Check(
            API_OFF,
            "the tenant has no Apple apps: add them (apple_apps) if it sells on the App Store",
            {"apps": {}},
        )
    if tenant.apple_key is None and tenant.id != DEFAULT_TENANT:
        return Check(
            NO_KEY,
            "upload the tenant's In-App Purchase key (App Store Connect > Users and Access > "
            "Integrations > In-App Purchase): PUT /tenants/{id}/apple-key with key_id, issuer_id "
            "and the .p8 text",
            {"apps": {}},
        )
    try:
        client = apis.apple(tenant) if apis is not None else None
    except (RefundGuardError, ValueError) as err:  # ValueError: the stored key is not a .p8
        if isinstance(err, RefundGuardError) and err.kind is Kind.TRANSIENT:
            return Check(UNREACHABLE, err.message, {"apps": {}, "service": "cloud_kms"})
        message = getattr(err, "message", "the stored key is not a .p8: upload it again")
        return Check(NO_KEY, message, {"apps": {}})
    if client is None:
        return Check(
            API_OFF,
            "tenants' Apple keys are off for this deployment: set TENANT_KEYS_KMS_KEY "
            "(infra/tenant_keys.tf; an operator's fix)",
            {"apps": {}},
        )
    return client


def check_apple(tenant: Tenant, apis: TenantApis | None, *, now_ms: int | None = None) -> Check:
    client = _apple_client(tenant, apis)
    if isinstance(client, Check):
        return client
    now = now_ms if now_ms is not None else int(time.time() * 1000)
    results: dict[str, str] = {}
    reasons: dict[str, str] = {}
    deadline = _budget()
    for app in tenant.apple_apps:
        for environment in app.environments:
            name = f"{app.bundle_id} ({environment})"
            deadline_s = deadline()
            if deadline_s is None:
                results[name], reasons[name] = UNREACHABLE, "not checked: out of time"
                continue
            try:
                client.get_signed_notification_history(
                    bundle_id=app.bundle_id,
                    environment=environment,
                    start_date_ms=now - HISTORY_WINDOW_MS,
                    end_date_ms=now,
                    deadline_s=deadline_s,
                )
                results[name] = OK
            except StoreAuthError as err:
                results[name], reasons[name] = "refused", err.message[:300]
            except StoreApiError as err:
                results[name], reasons[name] = UNREACHABLE, err.message[:300]
    state = classify_apple(results)
    refused = [name for name, result in results.items() if result == "refused"]
    details: dict[str, Any] = {"apps": results}
    if tenant.apple_key is not None:
        details["key_id"] = tenant.apple_key.key_id
    if reasons:
        details["store_said"] = reasons
    return Check(state, apple_fix(state, tenant, refused), details)
