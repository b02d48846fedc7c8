"""Tenants on Firestore: ``tenants/{id}`` (the tenant, through the serializer) and
``tenant_apps/{store}:{app}`` (which tenant claims an app: one document per app, created in the
same transaction as the tenant's change, so no app is ever claimed twice). ``TenantDirectory``
answers "whose app is this?" from an in-process cache (``TENANT_CACHE_SECONDS``): a change reaches
every function instance within that time."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from google.cloud import firestore

from .errors import Kind, RefundGuardError, not_found, transient
from .firestore_calls import CALL_ERRORS, retry
from .model import StoreName
from .serializer import load, to_firestore
from .tenants import DEFAULT_TENANT, Tenant, app_key, is_app_id, is_tenant_id

if TYPE_CHECKING:
    from collections.abc import Iterator

TENANTS = "tenants"
TENANT_APPS = "tenant_apps"
#: How long an instance trusts what it read about a tenant or an app (a change is seen by every
#: instance within this; an unclaimed app is asked again after it too).
TENANT_CACHE_SECONDS = 60.0
MAX_LIST = 500


def _unavailable() -> RefundGuardError:
    return transient("firestore_unavailable", "the tenant registry is unavailable; retry later")


def conflict(code: str, message: str) -> RefundGuardError:
    return RefundGuardError(Kind.CONFLICT, code, message)


class TenantRegistry:
    """Create, change and remove tenants; every change is one transaction over the tenant and the
    claims of the apps it gains or loses. ``reserved``: app keys of the ``default`` tenant (the
    environment's), which no registered tenant may claim."""

    def __init__(
        self,
        client: firestore.Client,
        *,
        timeout_s: float,
        reserved: Collection[str] = (),
    ) -> None:
        self._client = client
        self._timeout_s = timeout_s
        self._retry = retry(timeout_s)
        self._reserved = frozenset(reserved)

    def _tenant_ref(self, tenant_id: str) -> firestore.DocumentReference:
        return self._client.collection(TENANTS).document(tenant_id)

    def _claim_ref(self, key: str) -> firestore.DocumentReference:
        return self._client.collection(TENANT_APPS).document(key)

    # ------------------------------------------------------------------ reads

    def get(self, tenant_id: str) -> Tenant | None:
        try:
            snap = self._tenant_ref(tenant_id).get(retry=self._retry, timeout=self._timeout_s)
        except CALL_ERRORS as exc:
            raise _unavailable() from exc
        return load(Tenant, snap.to_dict() or {}) if snap.exists else None

    def owner(self, key: str) -> str | None:
        """The id of the tenant that claims app ``key`` (``app_key``), or None."""
        try:
            snap = self._claim_ref(key).get(retry=self._retry, timeout=self._timeout_s)
        except CALL_ERRORS as exc:
            raise _unavailable() from exc
        value = (snap.to_dict() or {}).get("tenant") if snap.exists else None
        return value if isinstance(value, str) else None

    def list(self, *, limit: int = 100, after: str | None = None) -> list[Tenant]:
        """Tenants in id order, ``limit`` at most, after the id ``after`` (a stable cursor)."""
        query = self._client.collection(TENANTS).order_by("id").limit(min(limit, MAX_LIST))
        if after:
            query = query.start_after({"id": after})
        try:
            return [
                load(Tenant, snap.to_dict() or {})
                for snap in query.stream(retry=self._retry, timeout=self._timeout_s)
            ]
        except CALL_ERRORS as exc:
            raise _unavailable() from exc

    def all(self, *, page: int = MAX_LIST) -> Iterator[Tenant]:
        """Every tenant, page by page."""
        after = None
        while True:
            found = self.list(limit=page, after=after)
            yield from found
            if len(found) < page:
                return
            after = found[-1].id

    # ------------------------------------------------------------------ changes

    def create(self, tenant: Tenant, *, now_ms: int) -> Tenant:
        """A new tenant and the claims of its apps; CONFLICT if the id exists or an app is
        claimed (by another tenant or the environment's ``default``)."""
        created = replace(tenant, created_ms=now_ms, updated_ms=now_ms, version=1)
        return self._change(tenant.id, lambda current: self._created(current, created))

    @staticmethod
    def _created(current: Tenant | None, created: Tenant) -> Tenant:
        if current is not None:
            raise conflict("tenant_exists", f"tenant {created.id} exists")
        return created

    def update(
        self,
        tenant_id: str,
        change: Callable[[Tenant], Tenant],
        *,
        now_ms: int,
        expected_version: int | None = None,
    ) -> Tenant:
        """``change`` applied to the tenant as it is now, in one transaction; CONFLICT when
        ``expected_version`` is given and the tenant changed since (read again and retry)."""

        def changed(current: Tenant | None) -> Tenant:
            if current is None:
                raise not_found("no_such_tenant", f"no tenant {tenant_id}")
            if expected_version is not None and current.version != expected_version:
                raise conflict(
                    "tenant_changed",
                    f"tenant {tenant_id} changed since version {expected_version} (it is at "
                    f"{current.version}); read it again",
                )
            new = change(current)
            return replace(
                new,
                id=current.id,
                created_ms=current.created_ms,
                updated_ms=now_ms,
                version=current.version + 1,
            )

        return self._change(tenant_id, changed)

    def delete(self, tenant_id: str) -> Tenant:
        """Remove a tenant and release its apps. Its entitlements stay (they still name it)."""
        return self._change(tenant_id, lambda current: _existing(current, tenant_id), delete=True)

    def _change(
        self, tenant_id: str, decide: Callable[[Tenant | None], Tenant], *, delete: bool = False
    ) -> Tenant:
        transaction = self._client.transaction(max_attempts=5)
        tenant_ref = self._tenant_ref(tenant_id)

        @firestore.transactional
        def run(tx: firestore.Transaction) -> Tenant:
            snap = tenant_ref.get(transaction=tx)
            current = load(Tenant, snap.to_dict() or {}) if snap.exists else None
            new = decide(current)
            before = current.app_keys if current else frozenset()
            after = frozenset() if delete else new.app_keys
            gained = sorted(after - before)
            taken = sorted(self._reserved & set(gained))
            if taken:
                raise conflict(
                    "app_claimed",
                    f"{', '.join(taken)} belongs to the default tenant (set in the environment)",
                )
            claims = [self._claim_ref(key) for key in gained]
            for snap in tx.get_all(claims) if claims else []:
                if snap.exists and (snap.to_dict() or {}).get("tenant") != tenant_id:
                    raise conflict("app_claimed", f"{snap.id} is claimed by another tenant")
            for key in sorted(before - after):
                tx.delete(self._claim_ref(key))
            for key in gained:
                tx.set(self._claim_ref(key), {"tenant": tenant_id})
            if delete:
                tx.delete(tenant_ref)
            else:
                tx.set(tenant_ref, to_firestore(new))
            return new

        try:
            return run(transaction)
        except RefundGuardError:
            raise
        except (ValueError, *CALL_ERRORS) as exc:  # ValueError: contention beyond max_attempts
            raise _unavailable() from exc


def _existing(current: Tenant | None, tenant_id: str) -> Tenant:
    if current is None:
        raise not_found("no_such_tenant", f"no tenant {tenant_id}")
    return current


class TenantDirectory:
    """Whose app is this, and what is tenant X now: the environment's ``default`` tenant first
    (no I/O), then the registry through an in-process cache of ``ttl_s`` (found and not found
    alike). Thread-safe; one per function instance."""

    def __init__(
        self,
        registry: TenantRegistry | None,
        default: Tenant | None = None,
        *,
        ttl_s: float = TENANT_CACHE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.registry = registry
        self.default = default
        self._default_keys = default.app_keys if default else frozenset()
        self._ttl_s = ttl_s
        self._clock = clock
        self._cache: dict[str, tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def _cached(self, key: str, read: Callable[[], Any]) -> Any:
        now = self._clock()
        with self._lock:
            hit = self._cache.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        value = read()
        with self._lock:
            self._cache[key] = (now + self._ttl_s, value)
        return value

    def for_app(self, store: StoreName, app: str) -> Tenant | None:
        """The tenant that claims ``app`` (a Play package, an Apple bundle id), or None."""
        key = app_key(store, app)
        if key in self._default_keys:
            return self.default
        if self.registry is None or not is_app_id(store, app):
            return None
        registry = self.registry
        owner = self._cached("app/" + key, lambda: registry.owner(key))
        if owner is None:
            return None
        tenant = self.tenant(owner)
        return tenant if tenant is not None and key in tenant.app_keys else None

    def tenant(self, tenant_id: str) -> Tenant | None:
        if self.default is not None and tenant_id == DEFAULT_TENANT:
            return self.default
        if self.registry is None or not is_tenant_id(tenant_id):
            return None
        registry = self.registry
        return self._cached("tenant/" + tenant_id, lambda: registry.get(tenant_id))

    def forget(self, tenant: Tenant) -> None:
        """Drop what this instance cached about ``tenant`` (it was just changed here)."""
        with self._lock:
            for key in [f"tenant/{tenant.id}", *(f"app/{k}" for k in tenant.app_keys)]:
                self._cache.pop(key, None)
