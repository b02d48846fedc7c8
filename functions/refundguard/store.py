"""Entitlements on Firestore: each event read-decided-written in one transaction.

Layout (see README, "Firestore data layout"):

- ``entitlements/{namespace}:{purchase_id}``: one document per purchase (fields:
  ``refundguard.serializer``), namespace ``google``, ``apple`` or ``apple-sandbox``;
- ``entitlements/{id}/history/{source}:{event_id}``: one document per event ever received for it,
  keyed by event id, which is how duplicates are found;
- ``quarantine/{key}``: requests that can never be processed, stored whole with the reason.

The transaction is driven at the RPC level rather than through ``@firestore.transactional``, for
two reasons the high-level helper cannot meet: (1) one read round and one commit per event: the
read is a ``BatchGetDocuments`` that *opens* the transaction (``new_transaction``), so no separate
``BeginTransaction`` round trip, and a duplicate costs that read plus a rollback, no write; (2) a
bounded deadline: the generated client retries an unreachable Firestore for 60-300 s per call,
longer than a function may run; here every attempt shares one deadline and then the event fails as
``TRANSIENT`` (503: the sender retries). Every attempt is idempotent, because the event id is the
history document's id: an attempt whose commit landed but whose answer was lost is found as a
duplicate by the next one.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from google.api_core import exceptions as gexc
from google.api_core import retry as gretry
from google.cloud import firestore
from google.cloud.firestore_v1 import _helpers

from . import config
from .errors import RefundGuardError, transient
from .ledger import (
    PRODUCTION,
    Decision,
    Effect,
    Entitlement,
    HistoryEntry,
    LedgerEvent,
    StoreName,
    decide,
    document_id,
)
from .serializer import load, ms_to_datetime, to_firestore

ENTITLEMENTS = "entitlements"
HISTORY = "history"
QUARANTINE = "quarantine"
MAX_QUARANTINED_BODY = 512 * 1024  # stay well under Firestore's 1 MiB document limit
_CONTENTION_ATTEMPTS = 8

# Errors worth another attempt within the deadline (Aborted: contention; the rest: reachability).
_RETRYABLE = (
    gexc.Aborted,
    gexc.ServiceUnavailable,
    gexc.DeadlineExceeded,
    gexc.InternalServerError,
    gexc.ResourceExhausted,
    gexc.Unknown,
)


# What a single (retried) call raises when Firestore cannot be reached in time.
_CALL_ERRORS = (gexc.GoogleAPICallError, gexc.RetryError)


@dataclass(frozen=True)
class ApplyResult:
    effect: Effect
    entitlement: Entitlement | None
    history: HistoryEntry | None
    attempts: int = 1


def now_ms() -> int:
    """Milliseconds since the epoch: the one clock of the ledger's callers."""
    return time.time_ns() // 1_000_000


class EntitlementStore:
    """The only code that talks to Firestore."""

    def __init__(
        self,
        client: firestore.Client,
        *,
        deadline_s: float = config.DEFAULT_DEADLINE_SECONDS,
        clock_ms: Callable[[], int] = now_ms,
    ) -> None:
        self._client = client
        self._deadline_s = deadline_s
        self._clock_ms = clock_ms
        self._api = client._firestore_api  # the generated client, for RPC-level transactions
        self._database = client._database_string
        self._metadata = client._rpc_metadata

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> EntitlementStore:
        client = firestore.Client(
            project=config.project(env), database=config.firestore_database(env)
        )
        return cls(client, deadline_s=config.firestore_deadline(env))

    # ---------------------------------------------------------------- events

    def apply(self, event: LedgerEvent) -> ApplyResult:
        """Apply one event in one transaction; raise TRANSIENT if Firestore cannot be reached."""
        ent_ref = self._client.collection(ENTITLEMENTS).document(event.document_id)
        hist_ref = ent_ref.collection(HISTORY).document(event.history_id)
        deadline = time.monotonic() + self._deadline_s
        previous_tx: bytes | None = None
        attempt = 0
        while True:
            attempt += 1
            try:
                decision = self._attempt(
                    event, ent_ref._document_path, hist_ref._document_path, previous_tx, deadline
                )
                return ApplyResult(decision.effect, decision.entitlement, decision.history, attempt)
            except _TransactionAborted as aborted:
                previous_tx = aborted.transaction
                cause: Exception = aborted.cause
            except _RETRYABLE as exc:
                cause = exc
            except gexc.GoogleAPICallError as exc:
                # Permission denied, database missing...: ours to fix, never the sender's; 503 keeps
                # the notification coming back until it is fixed.
                raise self._transient("firestore_error") from exc
            remaining = deadline - time.monotonic()
            if remaining <= 0 or attempt >= _CONTENTION_ATTEMPTS:
                raise self._transient("firestore_unavailable") from cause
            time.sleep(
                min(
                    remaining,
                    random.uniform(  # noqa: S311 - jitter, not crypto
                        0.05, 0.1 * 2 ** min(attempt, 5)
                    ),
                )
            )

    def _attempt(
        self,
        event: LedgerEvent,
        ent_path: str,
        hist_path: str,
        previous_tx: bytes | None,
        deadline: float,
    ) -> Decision:
        options: dict[str, Any] = {"read_write": {}}
        if previous_tx:
            options["read_write"]["retry_transaction"] = previous_tx
        transaction, found = self._begin_and_read([ent_path, hist_path], options, deadline)
        try:
            current_data = found.get(ent_path)
            current = load(Entitlement, current_data) if current_data is not None else None
            decision = decide(
                current, event, already_seen=hist_path in found, now_ms=self._clock_ms()
            )
            if not decision.writes:
                self._rollback(transaction, deadline)
                return decision
            assert decision.entitlement is not None and decision.history is not None
            writes = _helpers.pbs_for_set_no_merge(ent_path, to_firestore(decision.entitlement))
            writes += _helpers.pbs_for_create(hist_path, to_firestore(decision.history))
            self._api.commit(
                request={"database": self._database, "writes": writes, "transaction": transaction},
                metadata=self._metadata,
                retry=None,  # a commit is retried as a whole new attempt, never blindly
                timeout=self._remaining(deadline),
            )
            return decision
        except gexc.Aborted as exc:
            raise _TransactionAborted(transaction, exc) from exc
        except BaseException:
            self._rollback(transaction, deadline)
            raise

    def _begin_and_read(
        self, paths: list[str], options: dict[str, Any], deadline: float
    ) -> tuple[bytes, dict[str, dict[str, Any]]]:
        """One BatchGetDocuments that opens the transaction: (transaction id, {path: fields})."""
        responses = self._api.batch_get_documents(
            request={"database": self._database, "documents": paths, "new_transaction": options},
            metadata=self._metadata,
            retry=None,
            timeout=self._remaining(deadline),
        )
        transaction = b""
        found: dict[str, dict[str, Any]] = {}
        for response in responses:
            if response.transaction:
                transaction = response.transaction
            if response._pb.HasField("found"):
                found[response.found.name] = _helpers.decode_dict(
                    response.found.fields, self._client
                )
        if not transaction:
            raise gexc.InternalServerError("Firestore opened no transaction for the read")
        return transaction, found

    def _rollback(self, transaction: bytes, deadline: float) -> None:
        # On failure the transaction expires on its own; nothing was written.
        with contextlib.suppress(gexc.GoogleAPICallError):
            self._api.rollback(
                request={"database": self._database, "transaction": transaction},
                metadata=self._metadata,
                retry=None,
                timeout=max(0.5, deadline - time.monotonic()),
            )

    # ---------------------------------------------------------------- reads

    def get(
        self, store: StoreName, purchase_id: str, environment: str = PRODUCTION
    ) -> Entitlement | None:
        ref = self._client.collection(ENTITLEMENTS).document(
            document_id(store, purchase_id, environment)
        )
        try:
            snapshot = ref.get(retry=self._read_retry(), timeout=self._deadline_s)
        except _CALL_ERRORS as exc:
            raise self._transient("firestore_unavailable") from exc
        return load(Entitlement, snapshot.to_dict() or {}) if snapshot.exists else None

    def history(
        self, store: StoreName, purchase_id: str, environment: str = PRODUCTION, *, limit: int = 500
    ) -> list[HistoryEntry]:
        """The events of one entitlement, newest received first."""
        query = (
            self._client.collection(ENTITLEMENTS)
            .document(document_id(store, purchase_id, environment))
            .collection(HISTORY)
            .order_by("received_ms", direction=firestore.Query.DESCENDING)
            .limit(limit)
        )
        try:
            snapshots = list(query.stream(retry=self._read_retry(), timeout=self._deadline_s))
        except _CALL_ERRORS as exc:
            raise self._transient("firestore_unavailable") from exc
        return [load(HistoryEntry, s.to_dict() or {}) for s in snapshots]

    def history_entry(
        self, store: StoreName, purchase_id: str, environment: str, history_id: str
    ) -> HistoryEntry | None:
        """One history entry by its id (``LedgerEvent.history_id``), or None."""
        ref = (
            self._client.collection(ENTITLEMENTS)
            .document(document_id(store, purchase_id, environment))
            .collection(HISTORY)
            .document(history_id)
        )
        try:
            snapshot = ref.get(retry=self._read_retry(), timeout=self._deadline_s)
        except _CALL_ERRORS as exc:
            raise self._transient("firestore_unavailable") from exc
        return load(HistoryEntry, snapshot.to_dict() or {}) if snapshot.exists else None

    # ---------------------------------------------------------------- quarantine

    def quarantine(
        self,
        *,
        source: str,
        code: str,
        reason: str,
        body: bytes,
        key: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> str:
        """Keep a request that can never be processed, whole, so that nothing is silently lost.

        ``key`` (e.g. ``play:<messageId>``) makes redeliveries overwrite one document rather than
        pile up; without it the body's digest is the key. Returns the document id.
        """
        digest = hashlib.sha256(body).hexdigest()
        doc_id = _safe_doc_id(key) if key else f"{source}:sha256:{digest}"
        now = self._clock_ms()
        try:
            text: str | None = body.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        kept = body[:MAX_QUARANTINED_BODY]
        data: dict[str, Any] = {
            "source": source,
            "code": code,
            "reason": reason,
            "received_ms": now,
            "received_at": ms_to_datetime(now),
            "body_sha256": digest,
            "body_size": len(body),
            "body_truncated": len(body) > MAX_QUARANTINED_BODY,
            "body_encoding": "utf-8" if text is not None else "base64",
            "body": text[:MAX_QUARANTINED_BODY]
            if text is not None
            else base64.b64encode(kept).decode(),
            "details": dict(details or {}),
        }
        try:
            self._client.collection(QUARANTINE).document(doc_id).set(
                data, retry=self._read_retry(), timeout=self._deadline_s
            )
        except _CALL_ERRORS as exc:
            raise self._transient("firestore_unavailable") from exc
        return doc_id

    # ---------------------------------------------------------------- helpers

    def _remaining(self, deadline: float) -> float:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise gexc.DeadlineExceeded("refundguard's Firestore deadline passed")
        return remaining

    def _read_retry(self) -> gretry.Retry:
        return gretry.Retry(
            predicate=gretry.if_exception_type(*_RETRYABLE),
            initial=0.1,
            maximum=2.0,
            multiplier=2.0,
            timeout=self._deadline_s,
        )

    @staticmethod
    def _transient(code: str) -> RefundGuardError:
        """The caller sees a plain message; the handler's log line names the cause (``raise ...
        from exc`` at every call site keeps it as ``__cause__``)."""
        return transient(code, "the entitlement store is unavailable; retry later")


class _TransactionAborted(Exception):
    """Contention: try again, telling Firestore which transaction this one retries."""

    def __init__(self, transaction: bytes, cause: Exception) -> None:
        super().__init__(str(cause))
        self.transaction = transaction
        self.cause = cause


def _safe_doc_id(key: str) -> str:
    cleaned = key.replace("/", "_")
    if len(cleaned.encode()) > 400 or cleaned in (".", "..") or cleaned.startswith("__"):
        return "k:" + hashlib.sha256(key.encode()).hexdigest()
    return cleaned
