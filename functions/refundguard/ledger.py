"""The ledger's one decision, ``decide``: what an event does to an entitlement. Pure (no I/O,
no clock). The rules are listed in the README ("Guarantees"), each tested in test_ledger.py."""

from __future__ import annotations

from dataclasses import dataclass, replace

from .history_details import allowed
from .model import (
    DEFAULT_TENANT,
    MAX_ORDER_IDS,
    Effect,
    Entitlement,
    HistoryEntry,
    LedgerEvent,
    Source,
    Status,
)

#: How far in the future (after it was received) an event may be dated before its time is clamped
#: to the moment it was received: a clock error must never let an event outrank later ones.
MAX_CLOCK_SKEW_MS = 5 * 60 * 1000

_STORES = (Source.GOOGLE, Source.APPLE)

# Ties between state-setting events with equal event times: the more restrictive status wins.
_TIE_RANK = {
    Status.UNKNOWN: 0,
    Status.ACTIVE: 1,
    Status.PENDING: 2,
    Status.CANCELED: 3,
    Status.PAUSED: 4,
    Status.ON_HOLD: 4,
    Status.EXPIRED: 5,
    Status.REVOKED: 6,
}


@dataclass(frozen=True)
class Decision:
    """What to write: nothing for a duplicate, else the new entitlement and one history entry."""

    effect: Effect
    entitlement: Entitlement | None  # the entitlement after the event (None: duplicate of nothing)
    history: HistoryEntry | None  # None for a duplicate: nothing is written

    @property
    def writes(self) -> bool:
        return self.history is not None


def effective_time_ms(event: LedgerEvent, now_ms: int) -> int:
    """The time an event is ordered by: its own, unless dated more than ``MAX_CLOCK_SKEW_MS``
    after it was received (``now_ms``): then the moment it was received."""
    if event.event_time_ms > now_ms + MAX_CLOCK_SKEW_MS:
        return now_ms
    return event.event_time_ms


def _wins(current: Entitlement, event: LedgerEvent, time_ms: int) -> bool:
    """Whether a state-setting event is applied, by event time (ties: the more restrictive status;
    an admin action over a store event). An admin action always takes effect over store events,
    whatever their date; among admin actions, the newest decides."""
    last = current.last_event_time_ms
    if event.source is Source.ADMIN:
        return current.last_source is not Source.ADMIN or last is None or time_ms >= last
    if last is None or time_ms > last:
        return True
    if time_ms < last:
        return False
    assert event.effect is not None
    if current.last_source is Source.ADMIN:
        return False
    return _TIE_RANK[event.effect] >= _TIE_RANK[current.status]


def _with_order(order_ids: tuple[str, ...], order_id: str | None) -> tuple[str, ...]:
    """Every order id seen for a purchase, oldest first, the newest ``MAX_ORDER_IDS`` kept."""
    if order_id is None or order_id in order_ids:
        return order_ids
    return (*order_ids, order_id)[-MAX_ORDER_IDS:]


def decide(
    current: Entitlement | None, event: LedgerEvent, *, already_seen: bool, now_ms: int
) -> Decision:
    """What ``event`` does to ``current`` (None: never seen). Pure: the caller does the I/O."""
    if already_seen:
        return Decision(Effect.DUPLICATE, current, None)

    before = current.status if current else None
    base = current or Entitlement(
        store=event.store,
        purchase_id=event.purchase_id,
        environment=event.environment,
        status=Status.UNKNOWN,
        tenant=event.tenant or DEFAULT_TENANT,
        created_ms=now_ms,
    )
    time_ms = effective_time_ms(event, now_ms)
    details = allowed(event.source, event.details)  # only listed fields reach history
    if time_ms != event.event_time_ms:
        details["stated_event_time_ms"] = event.event_time_ms
    if event.effect is None:
        effect = Effect.RECORDED
    elif _wins(base, event, time_ms):
        effect = Effect.APPLIED
    else:
        effect = Effect.STALE

    after = replace(
        base,
        # A store event proves whose app the purchase is in: its tenant wins over one an admin
        # action gave a purchase the store had not told us about yet.
        tenant=event.tenant if event.tenant and event.source in _STORES else base.tenant,
        product_id=base.product_id or event.product_id,
        user_id=base.user_id or event.user_id,
        purchase_time_ms=base.purchase_time_ms or event.purchase_time_ms,
        order_ids=_with_order(base.order_ids, event.order_id),
        order_id=base.order_id or event.order_id,
        updated_ms=now_ms,
        history_count=base.history_count + 1,
    )
    if effect is Effect.APPLIED:
        assert event.effect is not None
        after = replace(
            after,
            order_id=event.order_id or after.order_id,
            status=event.effect,
            last_event_time_ms=time_ms,
            last_event_id=event.event_id,
            last_event_type=event.type,
            last_source=event.source,
        )
    history = HistoryEntry(
        event_id=event.event_id,
        source=event.source,
        type=event.type,
        event_time_ms=time_ms,
        received_ms=now_ms,
        effect=effect,
        status_before=before,
        status_after=after.status,
        actor=event.actor,
        reason=event.reason,
        details=details,
    )
    return Decision(effect, after, history)
