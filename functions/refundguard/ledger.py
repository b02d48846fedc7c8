"""The entitlement ledger's model and its one decision, ``decide``: pure (no I/O, no clock). The
rules are listed in the README ("Guarantees") and each is tested in ``tests/test_ledger.py``."""

from __future__ import annotations

import enum
import hashlib
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from .errors import rejected

PRODUCTION = "Production"


class StoreName(enum.StrEnum):
    GOOGLE = "google"
    APPLE = "apple"


class Source(enum.StrEnum):
    """Who produced an event: a store's notification or a person through the admin function."""

    GOOGLE = "google"
    APPLE = "apple"
    ADMIN = "admin"


class Status(enum.StrEnum):
    ACTIVE = "active"
    REVOKED = "revoked"  # refunded or revoked: no access
    EXPIRED = "expired"
    ON_HOLD = "on_hold"  # Google account hold: no access while on hold
    PAUSED = "paused"  # Google subscription paused: no access while paused
    CANCELED = "canceled"  # a pending purchase was cancelled: access never granted
    UNKNOWN = "unknown"  # only informational events seen so far

    @property
    def grants_access(self) -> bool:
        return self is Status.ACTIVE


class Effect(enum.StrEnum):
    """What an event did, as written in history."""

    APPLIED = "applied"  # the event set the status (possibly to the same value)
    RECORDED = "recorded"  # informational: kept in history, status untouched
    STALE = "stale"  # older than the newest applied event: kept in history, status untouched
    DUPLICATE = "duplicate"  # seen before: nothing written


# Ties between state-setting events with equal event times: the more restrictive status wins.
_TIE_RANK = {
    Status.ACTIVE: 1,
    Status.UNKNOWN: 0,
    Status.CANCELED: 2,
    Status.PAUSED: 3,
    Status.ON_HOLD: 3,
    Status.EXPIRED: 4,
    Status.REVOKED: 5,
}

#: How far in the future (after it was received) an event may be dated before its time is clamped
#: to the moment it was received: a clock error must never let an event outrank later ones.
MAX_CLOCK_SKEW_MS = 5 * 60 * 1000
MAX_EVENT_TIME_MS = 10**14  # year 5138: any larger "milliseconds" are not a time
MAX_TEXT_CHARS = 2000  # any text an event carries (ids, types, reasons, detail values)
MAX_DETAILS = 64
_INT64 = 2**63

_PURCHASE_ID = re.compile(r"[A-Za-z0-9._:~+=-]{1,1024}")
_SAFE_ID = re.compile(r"[A-Za-z0-9._:-]{1,400}")


def check_purchase_id(purchase_id: str) -> str:
    """Google purchase tokens use letters, digits, '.', '-', '_'; Apple ids are digits."""
    if not isinstance(purchase_id, str) or not _PURCHASE_ID.fullmatch(purchase_id):
        raise rejected(
            "bad_purchase_id",
            "purchase id must be 1-1024 characters of letters, digits and . _ - : ~ + =",
        )
    return purchase_id


def namespace(store: StoreName, environment: str = PRODUCTION) -> str:
    """``google``, ``apple``, ``apple-sandbox``...: Sandbox and Production never share a key."""
    if environment == PRODUCTION:
        return store.value
    return f"{store.value}-{environment.lower()}"


def document_id(store: StoreName, purchase_id: str, environment: str = PRODUCTION) -> str:
    """The Firestore document id of an entitlement: ``<namespace>:<purchase id>``."""
    return f"{namespace(store, environment)}:{check_purchase_id(purchase_id)}"


def parse_namespace(value: str) -> tuple[StoreName, str]:
    """The inverse of ``namespace``: ``apple-sandbox`` -> (APPLE, "Sandbox")."""
    known = {namespace(store, env): (store, env) for store, env in _NAMESPACES}
    try:
        return known[value]
    except KeyError:
        raise rejected(
            "unknown_store",
            f"store must be one of {', '.join(sorted(known))}, not {value[:40]!r}",
        ) from None


_NAMESPACES = (
    (StoreName.GOOGLE, PRODUCTION),
    (StoreName.APPLE, PRODUCTION),
    (StoreName.APPLE, "Sandbox"),
)


def history_id(source: Source, event_id: str) -> str:
    """The history document id of an event: readable when safe, else a digest."""
    candidate = f"{source.value}:{event_id}"
    if _SAFE_ID.fullmatch(candidate):
        return candidate
    return f"{source.value}:h:{hashlib.sha256(event_id.encode()).hexdigest()}"


@dataclass(frozen=True)
class LedgerEvent:
    """One thing that happened to one purchase, from one source."""

    store: StoreName
    purchase_id: str
    event_id: str  # Pub/Sub messageId, Apple notificationUUID, an admin action id
    source: Source
    type: str  # e.g. VOIDED_PURCHASE, SUBSCRIPTION_PURCHASED, REFUND, ADMIN_REGRANT
    event_time_ms: int
    effect: Status | None  # the status the event asks for; None: informational only
    environment: str = PRODUCTION
    product_id: str | None = None
    user_id: str | None = None
    actor: str | None = None  # admin's email for admin actions
    reason: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)  # JSON-safe facts shown in history

    def __post_init__(self) -> None:
        check_purchase_id(self.purchase_id)
        if not self.event_id:
            raise rejected("missing_event_id", "an event needs an id")
        _check_storable(self)

    @property
    def document_id(self) -> str:
        return document_id(self.store, self.purchase_id, self.environment)

    @property
    def history_id(self) -> str:
        return history_id(self.source, self.event_id)


@dataclass(frozen=True)
class Entitlement:
    store: StoreName
    purchase_id: str
    environment: str
    status: Status
    product_id: str | None = None
    user_id: str | None = None
    last_event_time_ms: int | None = None  # newest state-setting event applied
    last_event_id: str | None = None
    last_event_type: str | None = None
    last_source: Source | None = None
    created_ms: int = 0
    updated_ms: int = 0
    history_count: int = 0

    @property
    def document_id(self) -> str:
        return document_id(self.store, self.purchase_id, self.environment)


@dataclass(frozen=True)
class HistoryEntry:
    event_id: str
    source: Source
    type: str
    event_time_ms: int
    received_ms: int
    effect: Effect
    status_before: Status | None
    status_after: Status
    actor: str | None = None
    reason: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Decision:
    """What to write: nothing for a duplicate, else the new entitlement and one history entry."""

    effect: Effect
    entitlement: Entitlement | None  # the entitlement after the event (None: duplicate of nothing)
    history: HistoryEntry | None  # None for a duplicate: nothing is written

    @property
    def writes(self) -> bool:
        return self.history is not None


def _check_storable(event: LedgerEvent) -> None:
    """Refuse (REJECTED) what Firestore could never store: text that is not valid Unicode (lone
    surrogates) or too long, integers beyond int64, non-finite floats, nested details."""
    problem = None
    texts = (event.event_id, event.type, event.environment, event.product_id, event.user_id)
    texts += (event.actor, event.reason)
    if not 0 < event.event_time_ms <= MAX_EVENT_TIME_MS:
        problem = "the event time is not a time in milliseconds"
    elif any(text is not None and not _storable_text(text) for text in texts):
        problem = "a text field is not valid Unicode or is longer than 2000 characters"
    elif len(event.details) > MAX_DETAILS:
        problem = f"more than {MAX_DETAILS} details"
    else:
        for key, value in event.details.items():
            if not (isinstance(key, str) and _storable_text(key) and _storable_scalar(value)):
                problem = "a detail is not a storable scalar (text, int64, finite number, bool)"
                break
    if problem:
        raise rejected("unstorable_event", problem)


def _storable_text(text: str) -> bool:
    if len(text) > MAX_TEXT_CHARS:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _storable_scalar(value: Any) -> bool:
    if value is None or isinstance(value, bool):
        return True
    if isinstance(value, int):
        return -_INT64 <= value < _INT64
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, str) and _storable_text(value)


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
        created_ms=now_ms,
    )
    time_ms = effective_time_ms(event, now_ms)
    details = dict(event.details)
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
        product_id=base.product_id or event.product_id,
        user_id=base.user_id or event.user_id,
        updated_ms=now_ms,
        history_count=base.history_count + 1,
    )
    if effect is Effect.APPLIED:
        assert event.effect is not None
        after = replace(
            after,
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
