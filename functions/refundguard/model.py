"""The ledger's model: stores, sources, statuses, the event every source produces
(``LedgerEvent``, refused when Firestore could never store it), the entitlement and its history
entries, and the ids that key them in Firestore. Pure data; the decision is in ``ledger``."""

from __future__ import annotations

import enum
import hashlib
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import rejected

PRODUCTION = "Production"
#: The tenant of an entitlement written before tenants (and of the apps set in the environment).
DEFAULT_TENANT = "default"


class StoreName(enum.StrEnum):
    GOOGLE = "google"
    APPLE = "apple"


class Source(enum.StrEnum):
    """Who produced an event: a store (its notification, or its API read by the reconciler), a
    person through the admin function, or refundguard itself (answers to the stores' refund
    requests: informational entries)."""

    GOOGLE = "google"
    APPLE = "apple"
    ADMIN = "admin"
    REFUNDGUARD = "refundguard"


class Status(enum.StrEnum):
    ACTIVE = "active"
    REVOKED = "revoked"  # refunded or revoked: no access
    EXPIRED = "expired"
    ON_HOLD = "on_hold"  # Google account hold: no access while on hold
    PAUSED = "paused"  # Google subscription paused: no access while paused
    CANCELED = "canceled"  # a pending purchase was cancelled: access never granted
    PENDING = "pending"  # the store says payment is pending: no access until it completes
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


MAX_EVENT_TIME_MS = 10**14  # year 5138: any larger "milliseconds" are not a time
MAX_TEXT_CHARS = 2000  # any text an event carries (ids, types, reasons, detail values)
MAX_DETAILS = 64
MAX_ORDER_IDS = 100  # a subscription renewed monthly for eight years
_INT64 = 2**63

_PURCHASE_ID = re.compile(r"[A-Za-z0-9._:~+=-]{1,1024}")
_SAFE_ID = re.compile(r"[A-Za-z0-9._:-]{1,400}")


def check_purchase_id(purchase_id: str) -> str:
    """Google purchase tokens use letters, digits, '.', '-', '_'; Apple ids are digits. Never
    dots only: ``.`` and ``..`` would be dot segments in a store API's URL path."""
    if (
        not isinstance(purchase_id, str)
        or not _PURCHASE_ID.fullmatch(purchase_id)
        or not purchase_id.strip(".")
    ):
        raise rejected(
            "bad_purchase_id",
            "purchase id must be 1-1024 characters of letters, digits and . _ - : ~ + =, "
            "not dots only",
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
    order_id: str | None = None  # the store order this event concerns (Google GPA.*, Apple's)
    purchase_time_ms: int | None = None  # when the purchase was made, when the source knows
    actor: str | None = None  # admin's email for admin actions
    reason: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)  # JSON-safe facts shown in history
    #: The tenant whose app the store event is for (resolved from the verified app id); None for
    #: admin actions, which keep the entitlement's.
    tenant: str | None = None

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
    #: Whose customer this is; written before tenants: ``default``.
    tenant: str = DEFAULT_TENANT
    product_id: str | None = None
    user_id: str | None = None  # Google's obfuscated account id, Apple's appAccountToken
    order_id: str | None = None  # the order of the newest applied event that named one
    order_ids: tuple[str, ...] = ()  # every order id seen, oldest first (look-up by order id)
    purchase_time_ms: int | None = None
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


def _check_storable(event: LedgerEvent) -> None:
    """Refuse (REJECTED) what Firestore could never store: text that is not valid Unicode (lone
    surrogates) or too long, integers beyond int64, non-finite floats, nested details."""
    problem = None
    texts = (event.event_id, event.type, event.environment, event.product_id, event.user_id)
    texts += (event.order_id, event.actor, event.reason)
    times = (event.event_time_ms, event.purchase_time_ms or 1)
    if not all(0 < t <= MAX_EVENT_TIME_MS for t in times):
        problem = "a time is not a time in milliseconds"
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
