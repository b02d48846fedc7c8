"""Input that can never be processed, kept for a person instead of answered with an error:
``quarantine/{id}`` documents. ``record`` builds one (pure: the body cut to fit by bytes, its
digest and true size, the reason); ``Quarantine`` writes it (TRANSIENT when Firestore fails)."""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from . import logs
from .errors import transient
from .firestore_calls import CALL_ERRORS, retry
from .serializer import ms_to_datetime

if TYPE_CHECKING:
    from google.cloud import firestore

QUARANTINE = "quarantine"
MAX_BODY = 512 * 1024  # bytes kept; base64 makes it 683 KiB, under Firestore's 1 MiB a document


class Quarantine:
    """The ``quarantine`` collection."""

    def __init__(
        self,
        client: firestore.Client,
        *,
        timeout_s: float,
        clock_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
    ) -> None:
        self._client = client
        self._timeout_s = timeout_s
        self._retry = retry(timeout_s)
        self._clock_ms = clock_ms

    def keep(
        self,
        *,
        source: str,
        code: str,
        reason: str,
        body: bytes,
        key: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> str:
        """Keep a request that can never be processed (``record``); its document id."""
        doc_id, data = record(
            source=source,
            code=code,
            reason=reason,
            body=body,
            key=key,
            details=details,
            now_ms=self._clock_ms(),
        )
        try:
            self._client.collection(QUARANTINE).document(doc_id).set(
                data, retry=self._retry, timeout=self._timeout_s
            )
        except CALL_ERRORS as exc:
            raise transient(
                "firestore_unavailable", "the entitlement store is unavailable; retry later"
            ) from exc
        return doc_id


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
    doc_id = quarantine_id(key) if key else f"{source}:sha256:{digest}"
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


def quarantine_id(key: str) -> str:
    """A Firestore document id for ``key``: the key itself when it can be one, else its digest."""
    cleaned = key.replace("/", "_")
    try:
        size = len(cleaned.encode("utf-8"))
    except UnicodeEncodeError:
        size = 10**6  # a lone surrogate: no UTF-8 for it
    if size > 400 or cleaned in (".", "..") or cleaned.startswith("__"):
        return "k:" + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
    return cleaned
