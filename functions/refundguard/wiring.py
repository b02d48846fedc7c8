"""The composition root: every repository built from one Firestore client and one deadline
(``FIRESTORE_DEADLINE_SECONDS``), and the ingestion path over them. Handlers take what they need
from a ``Wiring``; tests hand one over an existing ``EntitlementStore``."""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property
from typing import TYPE_CHECKING

from .store import EntitlementStore, now_ms

if TYPE_CHECKING:
    from google.cloud import firestore

    from . import config
    from .ingest import Ingestion
    from .quarantine import Quarantine
    from .reconciliation.state import ReconcileState
    from .refund_store import RefundStore
    from .staff import StaffStore
    from .tenant_registry import TenantDirectory, TenantRegistry
    from .tenants import Tenant


class Wiring:
    """What one function instance talks to, built once at start-up (lazily: a function builds
    only the repositories it uses)."""

    def __init__(
        self,
        entitlements: EntitlementStore,
        *,
        clock_ms: Callable[[], int] = now_ms,
        default_tenant: Tenant | None = None,
        tenant_cache_s: float = 60.0,
    ) -> None:
        self.entitlements = entitlements
        self.tenant_cache_s = tenant_cache_s
        self.clock_ms = clock_ms
        #: The apps set in the environment (``tenants.default_tenant``), if any.
        self.default_tenant = default_tenant

    @classmethod
    def connect(
        cls,
        firestore_settings: config.FirestoreSettings,
        events: config.EventsSettings | None,
        *,
        function: str,
        clock_ms: Callable[[], int] = now_ms,
        default_tenant: Tenant | None = None,
    ) -> Wiring:
        """A function's wiring (a WARNING at start-up when events are off)."""
        store = EntitlementStore.connect(firestore_settings, events, function=function)
        return cls(
            store,
            clock_ms=clock_ms,
            default_tenant=default_tenant,
            tenant_cache_s=firestore_settings.tenant_cache_s,
        )

    @classmethod
    def build(
        cls,
        entitlements: EntitlementStore | None,
        firestore_settings: config.FirestoreSettings,
        events: config.EventsSettings | None,
        *,
        function: str,
        clock_ms: Callable[[], int] = now_ms,
        default_tenant: Tenant | None = None,
    ) -> Wiring:
        """Over ``entitlements`` when given (tests, benchmarks), else connected."""
        if entitlements is not None:
            return cls(
                entitlements,
                clock_ms=clock_ms,
                default_tenant=default_tenant,
                tenant_cache_s=firestore_settings.tenant_cache_s,
            )
        return cls.connect(
            firestore_settings,
            events,
            function=function,
            clock_ms=clock_ms,
            default_tenant=default_tenant,
        )

    @property
    def client(self) -> firestore.Client:
        return self.entitlements.client

    @property
    def deadline_s(self) -> float:
        return self.entitlements.deadline_s

    @cached_property
    def refunds(self) -> RefundStore:
        from .refund_store import RefundStore

        outbox = self.entitlements.outbox if self.entitlements.events_on else None
        return RefundStore(self.client, timeout_s=self.deadline_s, outbox=outbox)

    @cached_property
    def runs(self) -> ReconcileState:
        from .reconciliation.state import ReconcileState

        return ReconcileState(self.client, timeout_s=self.deadline_s)

    @cached_property
    def quarantine(self) -> Quarantine:
        from .quarantine import Quarantine

        return Quarantine(self.client, timeout_s=self.deadline_s, clock_ms=self.clock_ms)

    @cached_property
    def registry(self) -> TenantRegistry:
        from .tenant_registry import TenantRegistry

        reserved = self.default_tenant.app_keys if self.default_tenant else ()
        return TenantRegistry(self.client, timeout_s=self.deadline_s, reserved=reserved)

    @cached_property
    def staff(self) -> StaffStore:
        """Who is staff of which tenant (cached in-process)."""
        from .staff import StaffStore

        return StaffStore(self.client, timeout_s=self.deadline_s)

    @cached_property
    def tenants(self) -> TenantDirectory:
        """Whose app is this: the environment's apps, then the registry (cached in-process)."""
        from .tenant_registry import TenantDirectory

        return TenantDirectory(self.registry, self.default_tenant, ttl_s=self.tenant_cache_s)

    @cached_property
    def ingestion(self) -> Ingestion:
        from .ingest import Ingestion

        return Ingestion(self.entitlements, self.refunds, self.quarantine, self.tenants)
