"""Input that can never be processed, kept for a person instead of answered with an error: the
quarantine record (pure: the body cut to fit by bytes, its digest and true size, the reason) and
the ``on_rejected`` policy of the functions whose senders retry every non-2xx (Pub/Sub, Apple)."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import flask

from . import logs
from .errors import Kind, RefundGuardError
from .http import OnRejected, Reply
from .serializer import ms_to_datetime

if TYPE_CHECKING:
    from .store import EntitlementStore

MAX_BODY = 512 * 1024  # bytes kept; base64 makes it 683 KiB, under Firestore's 1 MiB a document

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
        doc_id = store.quarantine(
            source=source,
            code=err.code,
            reason=err.message,
            body=request.get_data(cache=True),
            key=key_of(err),
            details=err.details,
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


def record(
    *,
    source: str,
    code: str,
    reason: str,
    body: bytes,
    key: str | None,
    details: Mapping[str, Any] | None,
    now_ms: int,
) -> tuple[str, dict[str, Any]]:
    """The quarantine document (its id and fields) of a request: whole when it fits, else its
    first ``MAX_BODY`` bytes, always with its SHA-256 and true size; text as text, bytes as base64;
    every field storable, whatever came in. ``key`` (e.g. ``play:<messageId>``) makes
    redeliveries overwrite one document; without it the body's digest is the id."""
    digest = hashlib.sha256(body).hexdigest()
    doc_id = document_id(key) if key else f"{source}:sha256:{digest}"
    kept = body[:MAX_BODY]
    try:
        body.decode("utf-8")
        text: str | None = kept.decode("utf-8", "ignore")  # a character cut in two is dropped
    except UnicodeDecodeError:
        text = None
    return doc_id, {
        "source": source,
        "code": code,
        "reason": logs.bounded(reason),
        "received_ms": now_ms,
        "received_at": ms_to_datetime(now_ms),
        "body_sha256": digest,
        "body_size": len(body),
        "body_truncated": len(body) > MAX_BODY,
        "body_encoding": "utf-8" if text is not None else "base64",
        "body": text if text is not None else base64.b64encode(kept).decode(),
        "details": logs.bounded(dict(details or {})),
    }


def document_id(key: str) -> str:
    """A Firestore document id for ``key``: the key itself when it can be one, else its digest."""
    cleaned = key.replace("/", "_")
    try:
        size = len(cleaned.encode("utf-8"))
    except UnicodeEncodeError:
        size = 10**6  # a lone surrogate: no UTF-8 for it
    if size > 400 or cleaned in (".", "..") or cleaned.startswith("__"):
        return "k:" + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
    return cleaned
