"""Input that can never be processed, kept for a person instead of answered with an error: the
``on_rejected`` policy of the functions whose senders retry every non-2xx (Pub/Sub, Apple)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import flask

from . import logs
from .errors import Kind, RefundGuardError
from .http import OnRejected, Reply
from .store import EntitlementStore

#: The quarantine key of a rejected request (e.g. ``play:<messageId>``), or None: the body's digest.
KeyOf = Callable[[RefundGuardError], str | None]


def quarantiner(
    store: EntitlementStore,
    source: str,
    *,
    key_of: KeyOf,
    applies: Callable[[RefundGuardError], bool] = lambda err: err.kind is Kind.REJECTED,
    status: int = 200,
) -> OnRejected:
    """Store a rejected request whole (cut to fit) with the reason, then answer ``status``: 200
    acknowledges (Pub/Sub), a 4xx says it will never be accepted (Apple). If it cannot be stored,
    the store's TRANSIENT error answers 503 and the sender retries."""

    def on_rejected(request: flask.Request, err: RefundGuardError) -> Reply | None:
        if not applies(err):
            return None
        key = key_of(err)
        doc_id = store.quarantine(
            source=source,
            code=err.code,
            reason=logs.bounded(err.message),
            body=request.get_data(cache=True),
            key=_safe_key(key) if key is not None else None,
            details=logs.bounded(err.details),
        )
        logs.bind(effect="quarantined", code=err.code, reason=err.message, quarantine_id=doc_id)
        return Reply(
            {
                "effect": "quarantined",
                "code": err.code,
                "reason": err.message,
                "quarantine_id": doc_id,
            },
            "request quarantined",
            status=status,
            severity="WARNING",
        )

    return on_rejected


def _safe_key(key: str) -> str:
    """A quarantine key Firestore can store: the key itself, or a digest of it."""
    try:
        key.encode("utf-8")
    except UnicodeEncodeError:
        return "k:" + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
    return key
