"""A fanned-out run (the ``reconcile`` function with ``RECONCILE_WORK_TOPIC``): no source is
walked here. Every tenant (the environment's ``default`` and every registered one, suspended
included: a refund must revoke) gets a run record (``reconcile_runs/{run id}:{tenant}``) naming
the sources it awaits, then one work message per tenant x source is published: Google's voids per
package (Play API on), Apple's history per bundle id and environment (a key configured), the
tenant's refund requests. The worker (``reconcile_worker``) does each, page by page."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from .. import logs
from ..tenants import DEFAULT_TENANT
from . import work as w
from .plan import RunRecord

if TYPE_CHECKING:
    from ..tenant_apis import TenantApis
    from ..tenants import Tenant
    from ..wiring import Wiring

#: Work messages per publish request (Pub/Sub takes 1,000 and 10 MB; one is about 300 bytes).
PUBLISH_CHUNK = 1000


def tenant_work(run_id: str, trigger: str, tenant: Tenant, apis: TenantApis) -> list[w.Work]:
    """The work messages of one tenant (pure but for ``apis``' settings: nothing is opened)."""
    items: list[w.Work] = []
    if apis.play_on and tenant.play_api:
        items += [
            w.Work(run_id, tenant.id, w.GOOGLE, p, trigger=trigger) for p in tenant.play_packages
        ]
    if _has_apple_key(tenant, apis):
        for app in tenant.apple_apps:
            items += [
                w.Work(run_id, tenant.id, w.APPLE, app.bundle_id, env, trigger=trigger)
                for env in app.environments
            ]
    items.append(w.Work(run_id, tenant.id, w.ANSWERS, trigger=trigger))
    return items


def _has_apple_key(tenant: Tenant, apis: TenantApis) -> bool:
    if tenant.id == DEFAULT_TENANT:
        return apis.apple_access(tenant) is not None  # the environment's key: nothing opened
    return tenant.apple_key is not None


class FanOut:
    """One schedule call: records, then messages (a worker finds its record before its work)."""

    def __init__(
        self,
        wiring: Wiring,
        apis: TenantApis,
        publish: Callable[[list[dict[str, Any]]], None],
    ) -> None:
        self.wiring, self.apis, self.publish = wiring, apis, publish

    def tenants(self) -> Iterable[Tenant]:
        default = self.wiring.default_tenant
        if default is not None:
            yield default
        for tenant in self.wiring.registry.all():
            if tenant.id != DEFAULT_TENANT:
                yield tenant

    def run(
        self, *, trigger: str = "schedule", actor: str | None = None, request_id: str | None = None
    ) -> dict[str, Any]:
        from .run import new_run_id

        started = self.wiring.clock_ms()
        run_id = new_run_id(started)
        logs.bind(run_id=run_id, trigger=trigger)
        items: list[w.Work] = []
        records: list[RunRecord] = []
        for tenant in self.tenants():
            mine = tenant_work(run_id, trigger, tenant, self.apis)
            items += mine
            records.append(
                RunRecord(
                    run_id,
                    trigger,
                    started,
                    actor=actor,
                    request_id=request_id,
                    tenant=tenant.id,
                    awaiting=tuple(item.key for item in mine),
                )
            )
        self.wiring.runs.save_runs(records)
        messages = [item.message() for item in items]
        for start in range(0, len(messages), PUBLISH_CHUNK):
            self.publish(messages[start : start + PUBLISH_CHUNK])
        by_source = dict(Counter(item.source for item in items))
        logs.bind(effect="dispatched", tenants=len(records), published=len(items), **by_source)
        return {
            "run_id": run_id,
            "trigger": trigger,
            "actor": actor,
            "state": "dispatched",
            "tenants": len(records),
            "published": len(items),
            "work": by_source,
            "sources": [],
        }
