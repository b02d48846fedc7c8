"""Staff on Firestore: ``staff/{email}`` = {"platform": "admin"|"service"|null, "tenants":
{tenant id: "admin"|"support"}, "tenant_ids": [...]} (``tenant_ids`` repeats the map's keys so a
tenant's staff is one ``array_contains`` query). Read through an in-process cache of
``STAFF_CACHE_SECONDS`` (a change reaches every function instance within it); each change is one
transaction on the one document."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter

from .access import PlatformRole, TenantRole
from .errors import rejected, transient
from .firestore_calls import CALL_ERRORS, retry

STAFF = "staff"
STAFF_CACHE_SECONDS = 60.0
#: Emails cached at most (anyone with a Google account can make the console look one up): past
#: it the cache starts again empty.
MAX_CACHED = 10_000
MAX_STAFF = 500
_EMAIL = re.compile(r"[^@\s,*/]{1,200}@[A-Za-z0-9.-]{1,200}\.[A-Za-z0-9-]{1,60}")


def _unavailable() -> Exception:
    return transient("firestore_unavailable", "the staff list is unavailable; retry later")


def check_email(raw: Any) -> str:
    if not isinstance(raw, str) or not _EMAIL.fullmatch(raw.strip()):
        raise rejected("bad_email", "not an email address")
    return raw.strip().lower()


@dataclass(frozen=True)
class StaffRecord:
    email: str
    platform: PlatformRole | None = None
    tenants: dict[str, TenantRole] = field(default_factory=dict)

    def to_document(self) -> dict[str, Any]:
        return {
            "email": self.email,
            "platform": self.platform.value if self.platform else None,
            "tenants": {t: r.value for t, r in sorted(self.tenants.items())},
            "tenant_ids": sorted(self.tenants),
        }

    @classmethod
    def from_document(cls, email: str, data: dict[str, Any]) -> StaffRecord:
        platform = data.get("platform")
        tenants = data.get("tenants") or {}
        return cls(
            email,
            PlatformRole(platform) if platform in set(PlatformRole) else None,
            {
                str(t): TenantRole(r)
                for t, r in (tenants.items() if isinstance(tenants, dict) else [])
                if r in set(TenantRole)
            },
        )


class StaffStore:
    """The staff documents, and a cache of who is what (found and not found alike)."""

    def __init__(
        self,
        client: firestore.Client,
        *,
        timeout_s: float,
        ttl_s: float = STAFF_CACHE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._timeout_s = timeout_s
        self._retry = retry(timeout_s)
        self._ttl_s = ttl_s
        self._clock = clock
        self._cache: dict[str, tuple[float, StaffRecord | None]] = {}
        self._lock = threading.Lock()

    def _ref(self, email: str) -> firestore.DocumentReference:
        return self._client.collection(STAFF).document(email)

    def get(self, email: str) -> StaffRecord | None:
        """``email``'s roles (cached), or None when it has none."""
        now = self._clock()
        with self._lock:
            hit = self._cache.get(email)
        if hit is not None and hit[0] > now:
            return hit[1]
        record = self.read(email)
        with self._lock:
            if len(self._cache) >= MAX_CACHED:
                self._cache.clear()
            self._cache[email] = (now + self._ttl_s, record)
        return record

    def read(self, email: str) -> StaffRecord | None:
        try:
            snap = self._ref(email).get(retry=self._retry, timeout=self._timeout_s)
        except CALL_ERRORS as exc:
            raise _unavailable() from exc
        if not snap.exists:
            return None
        record = StaffRecord.from_document(email, snap.to_dict() or {})
        return record if record.platform or record.tenants else None

    def of_tenant(self, tenant_id: str) -> list[StaffRecord]:
        query = (
            self._client.collection(STAFF)
            .where(filter=FieldFilter("tenant_ids", "array_contains", tenant_id))
            .limit(MAX_STAFF)
        )
        return self._stream(query)

    def platform(self) -> list[StaffRecord]:
        """Everyone with a platform role (stored; ``ADMIN_EMAILS`` are not)."""
        query = (
            self._client.collection(STAFF)
            .where(filter=FieldFilter("platform", "in", [r.value for r in PlatformRole]))
            .limit(MAX_STAFF)
        )
        return self._stream(query)

    def _stream(self, query: firestore.Query) -> list[StaffRecord]:
        try:
            snaps = list(query.stream(retry=self._retry, timeout=self._timeout_s))
        except CALL_ERRORS as exc:
            raise _unavailable() from exc
        return sorted(
            (StaffRecord.from_document(s.id, s.to_dict() or {}) for s in snaps),
            key=lambda r: r.email,
        )

    def change(self, email: str, change: Callable[[StaffRecord], StaffRecord]) -> StaffRecord:
        """``change`` applied to ``email``'s record as it is now, in one transaction (a record
        left with no role is deleted)."""
        ref = self._ref(email)
        transaction = self._client.transaction(max_attempts=5)

        @firestore.transactional
        def run(tx: firestore.Transaction) -> StaffRecord:
            snap = ref.get(transaction=tx)
            current = StaffRecord.from_document(email, snap.to_dict() or {} if snap.exists else {})
            new = change(current)
            if new.platform is None and not new.tenants:
                tx.delete(ref)
            else:
                tx.set(ref, new.to_document())
            return new

        try:
            record = run(transaction)
        except (ValueError, *CALL_ERRORS) as exc:  # ValueError: contention beyond max_attempts
            raise _unavailable() from exc
        self.forget(email)
        return record

    def forget(self, email: str) -> None:
        with self._lock:
            self._cache.pop(email, None)
