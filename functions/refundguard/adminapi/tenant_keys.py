"""The admin routes of a tenant's store access: ``PUT /tenants/{id}/apple-key`` (a new App Store
Server API key, sealed with Cloud KMS, becomes the one used; the previous stays until deleted:
rotation with no gap), ``DELETE /tenants/{id}/apple-key/{key_id}``, ``POST
/tenants/{id}:check-access`` (``store_access``) and ``GET /play/service-account`` (the account a
creator invites in their Play Console, with the permissions to give it). ``serve`` authorizes
(``Act.SETTINGS`` on the tenant: its admins and platform admins; another tenant's is the 404 of
an absent one) and ``dispatch`` acts on that tenant. Shapes: docs/admin.md."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from .. import logs, outbound, store_access
from ..access import Act
from ..errors import Kind, RefundGuardError, not_found, rejected
from ..http import Reply
from ..tenants import DEFAULT_TENANT, Tenant
from .tenancy import tenant_json

if TYPE_CHECKING:
    import flask

    from ..playstore.credentials import PlayApiSettings
    from ..tenant_apis import TenantApis
    from ..tenant_keys import TenantKeys
    from ..tenant_registry import TenantDirectory, TenantRegistry
    from ..wiring import Wiring
    from .scope import Scope
    from .settings import AdminSettings

ROUTES = frozenset(
    {"tenant_apple_key_put", "tenant_apple_key_delete", "tenant_check_access", "play_account"}
)
#: ``GET /play/service-account`` without PLAY_API_SERVICE_ACCOUNT (the fallback).
FALLBACK_NOTE = (
    "PLAY_API_SERVICE_ACCOUNT is not set, so this is the answering function's own service account, "
    "and each function that calls the Play Developer API calls it as its own (each would have to "
    "be invited); set PLAY_API_SERVICE_ACCOUNT (Terraform does) so that one account serves all"
)
#: Keys a tenant may hold at once: the one in use and those being rotated out.
MAX_KEYS = 3
MAX_BODY_BYTES = 16 * 1024
_KEY_FIELDS = frozenset({"key_id", "issuer_id", "private_key", "version"})


@dataclass(frozen=True)
class KeyAccess:
    """What these routes use: the registry, the tenants' cache, the KMS sealer (None: tenants'
    keys are off here), the store APIs per tenant, and the deployment's Play account (``shared``:
    it is ``PLAY_API_SERVICE_ACCOUNT``, the one every function calls as; else the fallback, this
    function's own)."""

    registry: TenantRegistry
    directory: TenantDirectory
    keys: TenantKeys | None
    apis: TenantApis | None
    play_account: Callable[[], str | None]
    clock_ms: Callable[[], int]
    #: The apps set in the environment, as the ``default`` tenant (None: none).
    default: Tenant | None = None
    #: Keeps each check-access result (the store-access alert reads it); None: not kept.
    record_check: Callable[[str, Mapping[str, Mapping[str, Any]]], None] | None = None
    #: Whether ``play_account`` is PLAY_API_SERVICE_ACCOUNT (every function's), not the fallback.
    play_account_shared: bool = False


def serve(
    request: flask.Request,
    name: str,
    params: Mapping[str, str],
    access: KeyAccess,
    scope: Scope,
) -> Reply:
    """Authorize, load the route's tenant (404 if none, or another tenant's) and its body, then
    ``dispatch``."""
    from ..http import parse_json_object, read_body

    tenant = None
    if "tenant" in params:
        tenant_id = params["tenant"]
        scope.require(Act.SETTINGS, tenant_id, lambda: _no_tenant(tenant_id))
        tenant = load_tenant(access, tenant_id)
    else:  # the Play account: whoever onboards a tenant
        scope.ever(Act.SETTINGS)
    body = None
    if request.method == "PUT":
        body = parse_json_object(read_body(request, max_bytes=MAX_BODY_BYTES))
    return dispatch(name, tenant, access, params=params, body=body)


def access(
    settings: AdminSettings, wiring: Wiring, apis: TenantApis, clock_ms: Callable[[], int]
) -> KeyAccess:
    """These routes' view of the admin function."""
    from ..tenant_keys import TenantKeys

    keys = apis.keys
    return KeyAccess(
        wiring.registry,
        wiring.tenants,
        keys if isinstance(keys, TenantKeys) else None,
        apis,
        play_account(settings.play_api),
        clock_ms,
        settings.default_tenant,
        record_check=lambda tenant, results: _record_check(wiring, tenant, results, clock_ms()),
        play_account_shared=_shared_account(settings.play_api) is not None,
    )


def _shared_account(play: PlayApiSettings | None) -> str | None:
    return play.service_account if play is not None else None


def _record_check(
    wiring: Wiring, tenant: str, results: Mapping[str, Mapping[str, Any]], now_ms: int
) -> None:
    """Keep the result for the store-access alert (``alert_checks``); best effort: the answer is
    the caller's either way, and the next check records again."""
    from ..alert_checks import record_access_check
    from ..firestore_calls import CALL_ERRORS

    try:
        record_access_check(
            wiring.client, tenant, results, now_ms=now_ms, timeout_s=wiring.deadline_s
        )
    except CALL_ERRORS as exc:
        logs.warning("check-access result not recorded", tenant=tenant, error=type(exc).__name__)


def play_account(play: PlayApiSettings | None = None) -> Callable[[], str | None]:
    """The email of the service account the Play Developer API is called as:
    ``PLAY_API_SERVICE_ACCOUNT`` when set (every function impersonates it); else (the fallback)
    this function's own, from its credentials (None: the runtime's, which on Cloud Functions is
    read once from the metadata server)."""
    shared = _shared_account(play)
    if shared is not None:
        return lambda: shared
    credentials = play.credentials if play is not None else None
    lock = threading.Lock()
    found: list[str] = []

    def email() -> str | None:
        with lock:
            if not found:
                value = _email_of(credentials)
                if value:
                    found.append(value)
            return found[0] if found else None

    return email


def _email_of(credentials: Any) -> str | None:
    import google.auth
    from google.auth import exceptions

    from ..playstore.credentials import SCOPE

    try:
        if credentials is None:
            credentials, _ = google.auth.default(scopes=[SCOPE])
        email = getattr(credentials, "service_account_email", None)
        if not email or email == "default":  # Compute Engine credentials: ask the metadata
            credentials.refresh(outbound.google_auth_request())
            email = getattr(credentials, "service_account_email", None)
    except (exceptions.GoogleAuthError, OSError, ValueError):
        return None
    return email if isinstance(email, str) and "@" in email else None


def _no_tenant(tenant_id: str) -> RefundGuardError:
    return not_found("no_such_tenant", f"no tenant {tenant_id[:60]}")


def load_tenant(access: KeyAccess, tenant_id: str) -> Tenant:
    """The route's tenant as it is now (read from the registry, not a cache: a key's change
    names the version it was made on), or 404; ``default``: the environment's apps."""
    if tenant_id == DEFAULT_TENANT and access.default is not None:
        return access.default
    tenant = access.registry.get(tenant_id) if _plausible(tenant_id) else None
    if tenant is None:
        raise _no_tenant(tenant_id)
    return tenant


def _plausible(tenant_id: str) -> bool:
    return 0 < len(tenant_id) <= 40 and tenant_id.replace("-", "").isalnum()


def dispatch(
    name: str,
    tenant: Tenant | None,
    access: KeyAccess,
    *,
    params: Mapping[str, str],
    body: Mapping[str, Any] | None,
) -> Reply:
    """One of ``ROUTES``; ``tenant`` is the route's tenant, authorized by the caller (None for
    ``play_account``)."""
    if name == "play_account":
        return _play_account(access)
    assert tenant is not None
    logs.bind(tenant=tenant.id)
    if name != "tenant_check_access" and tenant.id == DEFAULT_TENANT:
        raise RefundGuardError(
            Kind.CONFLICT,
            "default_tenant_key",
            "the default tenant's Apple key is set in the environment (APPLE_API_*, Secret "
            "Manager; docs/deploy.md section 3), not here",
        )
    if name == "tenant_apple_key_put":
        return _put_key(tenant, access, body or {})
    if name == "tenant_apple_key_delete":
        return _delete_key(tenant, access, params["key_id"])
    return _check_access(tenant, access)


def _put_key(tenant: Tenant, access: KeyAccess, body: Mapping[str, Any]) -> Reply:
    unknown = set(body) - _KEY_FIELDS
    if unknown:
        raise rejected("unknown_field", f"unknown field(s): {', '.join(sorted(unknown))[:200]}")
    version = body.get("version", tenant.version)
    if isinstance(version, bool) or not isinstance(version, int):
        raise rejected("bad_field", "version must be the tenant's version (an integer)")
    if version != tenant.version:  # stale: refused before KMS is asked (and again on write)
        raise RefundGuardError(
            Kind.CONFLICT,
            "tenant_changed",
            f"tenant {tenant.id} changed since version {version} (it is at {tenant.version}); "
            "read it again",
        )
    if access.keys is None:
        raise RefundGuardError(
            Kind.CONFLICT,
            "tenant_keys_off",
            "tenants' Apple keys cannot be stored here: set TENANT_KEYS_KMS_KEY "
            "(infra/tenant_keys.tf, docs/deploy.md)",
        )
    key_id = body.get("key_id")
    kept = [k for k in tenant.apple_keys if k.key_id != key_id]
    if len(kept) >= MAX_KEYS:
        raise RefundGuardError(
            Kind.CONFLICT,
            "too_many_keys",
            f"tenant {tenant.id} holds {len(kept)} keys: delete one no longer used first "
            "(DELETE /tenants/{id}/apple-key/{key_id})",
        )
    # Checked and sealed before anything is written: a bad key or KMS down changes nothing.
    sealed = access.keys.seal(tenant.id, key_id, body.get("issuer_id"), body.get("private_key"))

    def add(current: Tenant) -> Tenant:
        others = tuple(k for k in current.apple_keys if k.key_id != sealed.key_id)
        if len(others) >= MAX_KEYS:
            raise RefundGuardError(Kind.CONFLICT, "too_many_keys", "delete an old key first")
        return replace(current, apple_keys=(sealed, *others))

    updated = access.registry.update(
        tenant.id, add, now_ms=access.clock_ms(), expected_version=version
    )
    access.directory.forget(updated)
    logs.bind(key_id=sealed.key_id, apple_keys=len(updated.apple_keys), version=updated.version)
    return Reply({"tenant": tenant_json(updated)}, "admin action")


def _delete_key(tenant: Tenant, access: KeyAccess, key_id: str) -> Reply:
    if all(k.key_id != key_id for k in tenant.apple_keys):
        raise not_found("no_such_key", f"tenant {tenant.id} has no Apple key {key_id[:64]}")

    def remove(current: Tenant) -> Tenant:
        if all(k.key_id != key_id for k in current.apple_keys):
            raise not_found("no_such_key", f"tenant {tenant.id} has no Apple key {key_id[:64]}")
        kept = tuple(k for k in current.apple_keys if k.key_id != key_id)
        return replace(current, apple_keys=kept)

    updated = access.registry.update(tenant.id, remove, now_ms=access.clock_ms())
    access.directory.forget(updated)
    logs.bind(key_id=key_id, apple_keys=len(updated.apple_keys), version=updated.version)
    return Reply({"tenant": tenant_json(updated)}, "admin action")


def _check_access(tenant: Tenant, access: KeyAccess) -> Reply:
    account = access.play_account() if tenant.play_packages else None
    google = store_access.check_google(tenant, access.apis, account=account)
    apple = store_access.check_apple(tenant, access.apis, now_ms=access.clock_ms())
    logs.bind(google=google.state, apple=apple.state)
    results = {"google": google.to_json(), "apple": apple.to_json()}
    if access.record_check is not None:
        access.record_check(tenant.id, results)
    return Reply(results, "admin action")


def _play_account(access: KeyAccess) -> Reply:
    email = access.play_account()
    if email is None:
        raise RefundGuardError(
            Kind.TRANSIENT,
            "service_account_unknown",
            "the deployment's service account could not be read from its credentials; retry",
        )
    body: dict[str, Any] = {"email": email, "permissions": list(store_access.PLAY_PERMISSIONS)}
    if not access.play_account_shared:
        body["note"] = FALLBACK_NOTE
    logs.bind(play_account_shared=access.play_account_shared)
    return Reply(body, "admin action")
