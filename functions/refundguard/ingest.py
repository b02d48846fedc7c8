"""The one path of a store event into the ledger, whoever found it (the Play and Apple functions,
both reconciler sources): judge it (the store's API, when on) -> apply it -> record the refund
question it asks; what can never be applied is quarantined. Takes no request: the functions parse
theirs and hand over what they read."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from . import logs
from .errors import Kind, RefundGuardError
from .http import OnRejected, Reply
from .model import Effect, LedgerEvent, StoreName
from .refunds import request_for

if TYPE_CHECKING:
    from .appstore.notifications import Mapped
    from .appstore.verifier import VerifiedNotification
    from .playstore.api import PlayApiClient
    from .playstore.rtdn import PlayNotification
    from .quarantine import Quarantine
    from .refund_store import RefundStore
    from .store import ApplyResult, EntitlementStore
    from .tenant_registry import TenantDirectory
    from .tenants import Tenant

#: The quarantine key of a rejected request (e.g. ``play:<messageId>``), or None: the body's digest.
KeyOf = Callable[[RefundGuardError], str | None]


@dataclass(frozen=True)
class Applied:
    """What applying one event did, the entitlement's status after it, and the store API's
    permission problem to raise an alarm about (Play), if any."""

    result: ApplyResult
    status: str | None
    alarm: str | None = None


@dataclass
class Batch:
    """What ``apply_new`` did; ``stopped``: ``stop`` said so before every event was applied."""

    applied: int = 0
    already_known: int = 0
    rejected: int = 0
    stopped: bool = False


class Ingestion:
    """Store events -> ledger, refund requests, quarantine."""

    def __init__(
        self,
        entitlements: EntitlementStore,
        refunds: RefundStore,
        quarantine: Quarantine,
        tenants: TenantDirectory | None = None,
    ) -> None:
        self.entitlements, self.refunds, self.quarantine = entitlements, refunds, quarantine
        self.tenants = tenants

    def tenant_of(self, store: StoreName, app: str) -> Tenant | None:
        """The tenant that claims ``app``; None when none does (or tenants are not wired)."""
        return self.tenants.for_app(store, app) if self.tenants is not None else None

    def apply(
        self,
        event: LedgerEvent,
        *,
        app: str,
        key: tuple[str, str] | None = None,
        pending_refund_token: str | None = None,
    ) -> Applied:
        """Apply one event (one the store cannot keep is tagged with ``key``, e.g.
        ("message_id", id), so that it is quarantined under it), bind the outcome to the log
        line, and record the refund question it asks (Google's ``pending_refund_token`` comes
        beside the event: history never holds it). A store event without a tenant is given the
        one that claims ``app``."""
        event = self._stamped(event, app)
        if event.tenant is not None:
            logs.bind(tenant=event.tenant)
        try:
            result = self.entitlements.apply(event)
        except RefundGuardError as err:
            if key is not None:
                err.details.setdefault(*key)
            raise
        status = result.entitlement.status.value if result.entitlement else None
        logs.bind(effect=result.effect.value, status=status, attempts=result.attempts)
        self.record_request(event, app, pending_refund_token=pending_refund_token)
        return Applied(result, status)

    def _stamped(self, event: LedgerEvent, app: str) -> LedgerEvent:
        if event.tenant is None and event.source.value == event.store.value:
            tenant = self.tenant_of(event.store, app)
            if tenant is not None:
                return replace(event, tenant=tenant.id)
        return event

    def record_request(
        self, event: LedgerEvent, app: str, *, pending_refund_token: str | None = None
    ) -> None:
        """A refund review (Google) or consumption request (Apple) becomes a ``refund_requests``
        document, answered by the reconciler by the operator's policy (docs/refunds.md). Also for
        duplicates: a redelivery completes what a crash between the two writes left undone."""
        request = request_for(event, app, pending_refund_token=pending_refund_token)
        if request is not None:
            new = self.refunds.record(request)
            logs.bind(refund_request=request.id, refund_request_new=new)

    def apply_new(
        self,
        events: Iterable[LedgerEvent],
        *,
        app: str,
        judge: Callable[[LedgerEvent], LedgerEvent] = lambda event: event,
        prepare: Callable[[list[LedgerEvent]], None] | None = None,
        stop: Callable[[], bool] = lambda: False,
    ) -> Batch:
        """The reconciler's batch: one ``seen`` read, then ``prepare`` with the events the ledger
        does not hold yet, then each through ``judge`` and ``apply``; a refused one is counted,
        never a reason to stop. ``stop`` is asked before each event (the run's time budget): what
        was applied stays applied, and the rest is found new again next time."""
        events = [self._stamped(event, app) for event in events]
        known = self.entitlements.seen(events)
        new: list[LedgerEvent] = []
        for event in events:
            if f"{event.document_id}/{event.history_id}" in known:
                self.record_request(event, app)
            else:
                new.append(event)
        batch = Batch(already_known=len(events) - len(new))
        if new and prepare is not None:
            prepare(new)
        for event in new:
            if stop():
                batch.stopped = True
                break
            try:
                done = self.apply(judge(event), app=app)
            except RefundGuardError as err:
                if err.kind is not Kind.REJECTED:
                    raise
                batch.rejected += 1
                continue
            if done.result.effect is Effect.DUPLICATE:
                batch.already_known += 1  # the notification landed since the read
            else:
                batch.applied += 1
        return batch

    # ------------------------------------------------------------------------ Google Play

    def play(
        self, notification: PlayNotification, message_id: str, api: PlayApiClient | None
    ) -> Applied | None:
        """An RTDN: keyed (a refund review naming only an order), judged by the Play API when it
        is on (for the deployment, and for the tenant whose app it is), applied. None: a test
        notification (nothing to apply)."""
        from .playstore import judge

        tenant = self.tenant_of(StoreName.GOOGLE, notification.package_name)
        if tenant is not None:
            logs.bind(tenant=tenant.id)
            if not tenant.play_api:
                api = None
        event = notification.event
        if notification.unkeyed is not None:
            event = judge.keyed(notification, message_id, known_token=self._token_of, api=api)
        if event is None:
            return None
        logs.bind(token_hash=logs.token_hash(event.purchase_id), event_time_ms=event.event_time_ms)
        consulted = judge.Consulted(event)
        if api is not None:
            consulted = judge.consult(api, notification.package_name, notification.kind, event)
        applied = self.apply(
            consulted.event,
            app=notification.package_name,
            key=("message_id", message_id),
            pending_refund_token=notification.pending_refund_token,
        )
        if consulted.alarm:
            logs.bind(api_problem=consulted.alarm)
        return Applied(applied.result, applied.status, consulted.alarm)

    def _token_of(self, order_id: str) -> str | None:
        known = [
            e for e in self.entitlements.find_by_order(order_id) if e.store is StoreName.GOOGLE
        ]
        return known[0].purchase_id if known else None

    # ------------------------------------------------------------------------ quarantine

    def quarantiner(
        self,
        source: str,
        *,
        key_of: KeyOf,
        applies: Callable[[RefundGuardError], bool] = lambda err: err.kind is Kind.REJECTED,
        status: int = 200,
    ) -> OnRejected:
        """The ``on_rejected`` policy of a function whose sender retries every non-2xx (Pub/Sub,
        Apple): keep the body whole (cut to fit) with the reason, then answer ``status``: 200
        acknowledges (Pub/Sub), a 4xx says it will never be accepted (Apple). If it cannot be
        kept, the TRANSIENT error answers 503 and the sender retries."""

        def on_rejected(body: bytes, err: RefundGuardError) -> Reply | None:
            if not applies(err):
                return None
            doc_id = self.quarantine.keep(
                source=source,
                code=err.code,
                reason=err.message,
                body=body,
                key=key_of(err),
                details=err.details,
            )
            logs.bind(effect="quarantined", code=err.code, reason=err.message, quarantine_id=doc_id)
            answer = {"effect": "quarantined", "code": err.code, "reason": err.message}
            return Reply(
                {**answer, "quarantine_id": doc_id},
                "request quarantined",
                status=status,
                severity="WARNING",
            )

        return on_rejected


def apple_event(
    verified: VerifiedNotification,
    *,
    bundle_id: str | None = None,
    environment: str | None = None,
) -> Mapped:
    """A verified App Store Server Notification -> what it does to the ledger: for the expected
    app and environment when given, mapped (``UnmappableNotification`` otherwise: quarantined)."""
    from .appstore.notifications import UnmappableNotification, map_notification

    if (bundle_id is not None and verified.bundle_id != bundle_id) or (
        environment is not None and verified.environment != environment
    ):
        raise UnmappableNotification(
            Kind.REJECTED, "inconsistent_payload", "another app's or environment's data"
        )
    return map_notification(verified)
