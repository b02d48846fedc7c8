"""Entitlements on Firestore, through google-cloud-firestore's public API only.

Layout (fields: ``refundguard.model``'s dataclasses, through ``refundguard.serializer``):

- ``entitlements/{namespace}:{purchase_id}``: one document per purchase, namespace ``google``,
  ``apple`` or ``apple-sandbox``;
- ``entitlements/{id}/history/{source}:{event_id}``: one document per event ever received for it,
  keyed by event id, which is how duplicates are found;
- ``outbox/{event id}``: access-change events not yet published (``refundguard.outbox``);
- ``refund_days/{tenant}:{day}:{shard}``: refunds per tenant and day
  (``refundguard.refund_counts``), incremented in the same batch as a revocation by a store refund.

An event is two round trips, optimistic, never a lock: one ``get_all`` reads the entitlement and
the event's history entry; ``ledger.decide``; one atomic ``WriteBatch`` creates the history entry
(it fails if the entry exists: a concurrent duplicate) and writes the entitlement on the condition
that it is unchanged since the read (its ``update_time``; ``create`` when it did not exist). When
another writer won (``ALREADY_EXISTS``, ``FAILED_PRECONDITION``, ``ABORTED``) the event is read and
decided again. A duplicate costs the read and no write, and its answer carries the stored entry.

With events on (a ``Publisher``), the same read also gets the event's outbox entry and the same
batch creates it when the change sends one (``events.sends``); after the commit the entry is
published (``Outbox.deliver``: one Pub/Sub request, only for changes of access), and its delete
rides on the next batch this instance commits (``Outbox.take_deletes``: no round trip of its own).
A duplicate whose entry is still there, and not published by this instance, publishes and deletes
it.

Every attempt shares one deadline (``FIRESTORE_DEADLINE_SECONDS``); no call is retried by the client
library (whose loops last 60-300 s). Unreachable or too slow: ``TRANSIENT`` (503, the sender
retries). An attempt whose commit landed but whose answer was lost is found as a duplicate by the
next one, because the event id is the history document's id. A value Firestore cannot store is
``REJECTED`` (``unstorable``): a retry would never help, so callers quarantine it.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from google.api_core import exceptions as gexc
from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter
from google.cloud.firestore_v1.field_path import FieldPath

from . import config, logs, refund_counts
from .errors import RefundGuardError, rejected, transient
from .events import OutboxEntry, access_event, event_id
from .firestore_calls import CALL_ERRORS, RETRYABLE, retry
from .history_details import allowed
from .ledger import decide
from .model import (
    PRODUCTION,
    Effect,
    Entitlement,
    HistoryEntry,
    LedgerEvent,
    StoreName,
    document_id,
)
from .outbox import Outbox
from .serializer import load, to_firestore

if TYPE_CHECKING:
    from .publisher import Publisher

ENTITLEMENTS = "entitlements"
HISTORY = "history"

# Another writer committed between our read and our commit: read and decide again.
_CONFLICTS = (gexc.AlreadyExists, gexc.FailedPrecondition, gexc.Aborted)

# What the client library raises while encoding a value Firestore has no type for (an int beyond
# 64 bits, a lone surrogate, an empty map key...), and the serializer for a time beyond year 9999.
_ENCODING_ERRORS = (ValueError, TypeError, OverflowError)


@dataclass(frozen=True)
class ApplyResult:
    """What ``apply`` did: ``history`` is the entry written or, for a ``DUPLICATE``, the one stored
    (read in the same round trip as the entitlement); ``attempts``: read-decide-commit rounds;
    ``event``: the access-change event committed now, or found unpublished by a duplicate, and
    ``published`` whether it reached Pub/Sub (None: no event)."""

    effect: Effect
    entitlement: Entitlement | None
    history: HistoryEntry | None
    attempts: int = 1
    event: OutboxEntry | None = None
    published: bool | None = None


def now_ms() -> int:
    """Milliseconds since the epoch: the one clock of the ledger's callers."""
    return time.time_ns() // 1_000_000


class EntitlementStore:
    """The entitlements and their history (and, with events on, the outbox in the same batch)."""

    def __init__(
        self,
        client: firestore.Client,
        *,
        deadline_s: float = config.DEFAULT_DEADLINE_SECONDS,
        clock_ms: Callable[[], int] = now_ms,
        publisher: Publisher | None = None,
        function: str | None = None,
    ) -> None:
        """``publisher`` None: events off, no outbox read or written."""
        self._client = client
        self._deadline_s = deadline_s
        self._retry = retry(deadline_s)  # of the single reads and writes, not of ``apply``
        self._clock_ms = clock_ms
        self.outbox = Outbox(client, publisher, deadline_s=deadline_s, function=function)
        self.events_on = publisher is not None

    @classmethod
    def connect(
        cls,
        settings: config.FirestoreSettings,
        events: config.EventsSettings | None = None,
        *,
        function: str | None = None,
    ) -> EntitlementStore:
        """The store of a function (``function`` named: a WARNING at start-up when events are
        off)."""
        client = firestore.Client(project=settings.project, database=settings.database)
        publisher = None
        if events is not None:
            from .publisher import Publisher

            publisher = Publisher(events)
        elif function is not None:
            logs.warning(
                "EVENTS_TOPIC is not set: changes of access are NOT sent to the platform "
                "(events off; set it to projects/PROJECT/topics/TOPIC)",
                function=function,
            )
        return cls(client, deadline_s=settings.deadline_s, publisher=publisher, function=function)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> EntitlementStore:
        settings = config.Settings(env)
        firestore_settings = config.FirestoreSettings.read(settings)
        events = config.EventsSettings.read(settings)
        settings.done()
        return cls.connect(firestore_settings, events)

    # ---------------------------------------------------------------- events

    def apply(self, event: LedgerEvent) -> ApplyResult:
        """Apply one event; TRANSIENT if Firestore cannot be reached in time, REJECTED
        (``unstorable``) if it holds a value Firestore cannot store."""
        ent_ref = self._client.collection(ENTITLEMENTS).document(event.document_id)
        hist_ref = ent_ref.collection(HISTORY).document(event.history_id)
        out_ref = None
        if self.events_on:
            out_ref = self.outbox.ref(event_id(event.document_id, event.history_id))
        deadline = time.monotonic() + self._deadline_s
        attempt = conflicts = failures = 0
        cause: Exception | None
        code, cause = "firestore_unavailable", None  # what the caller hears if time runs out
        while True:
            attempt += 1
            try:
                result = self._attempt(event, ent_ref, hist_ref, deadline, attempt, out_ref=out_ref)
            except _DeadlinePassed as exc:  # before a call: the previous attempt's failure stands
                raise self._transient(code) from cause or exc
            except _CONFLICTS as exc:
                # Someone else made progress: come back soon, spread out so that a crowd on one
                # purchase does not collide again in lockstep.
                conflicts += 1
                cause, code = exc, "firestore_contention"
                pause = random.uniform(0, 0.005 * 2 ** min(conflicts, 6))  # noqa: S311 - jitter
            except RETRYABLE as exc:
                failures += 1
                cause, code = exc, "firestore_unavailable"
                pause = random.uniform(0.05, 0.1 * 2 ** min(failures, 5))  # noqa: S311 - jitter
            except gexc.InvalidArgument as exc:
                raise _unstorable() from exc
            except gexc.GoogleAPICallError as exc:
                # Permission denied, database missing...: ours to fix, never the sender's; 503 keeps
                # the notification coming back until it is fixed.
                raise self._transient("firestore_error") from exc
            else:  # committed (or a duplicate): the event, if any, goes out now
                if result.event is None:
                    return result
                found = result.effect is Effect.DUPLICATE  # a redelivery found it: delete it now
                published = self.outbox.deliver(result.event, delete_now=found)
                return replace(result, published=published)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise self._transient(code) from cause
            time.sleep(min(remaining, pause))

    def _attempt(
        self,
        event: LedgerEvent,
        ent_ref: firestore.DocumentReference,
        hist_ref: firestore.DocumentReference,
        deadline: float,
        attempt: int,
        *,
        out_ref: firestore.DocumentReference | None,
    ) -> ApplyResult:
        refs = [ent_ref, hist_ref] if out_ref is None else [ent_ref, hist_ref, out_ref]
        snapshots = {
            snapshot.reference.path: snapshot
            for snapshot in self._client.get_all(
                refs, retry=None, timeout=self._remaining(deadline)
            )
        }
        ent_snap = snapshots.get(ent_ref.path)
        hist_snap = snapshots.get(hist_ref.path)
        current = load(Entitlement, ent_snap.to_dict() or {}) if _exists(ent_snap) else None
        seen = _exists(hist_snap)
        decision = decide(current, event, already_seen=seen, now_ms=self._clock_ms())
        if not decision.writes:
            assert hist_snap is not None
            stored = load(HistoryEntry, hist_snap.to_dict() or {})
            unpublished = None
            if out_ref is not None and not self.outbox.published_here(out_ref.id):
                out_snap = snapshots.get(out_ref.path)
                if _exists(out_snap):
                    unpublished = load(OutboxEntry, out_snap.to_dict() or {})
            return ApplyResult(decision.effect, decision.entitlement, stored, attempt, unpublished)
        assert decision.entitlement is not None and decision.history is not None
        entry = None
        if out_ref is not None:
            entry = access_event(decision.entitlement, decision.history, source=self.outbox.source)

        batch = self._client.batch()
        try:
            batch.create(hist_ref, to_firestore(decision.history))
            if entry is not None and out_ref is not None:
                assert entry.event_id == out_ref.id, "the outbox id read must be the one written"
                batch.create(out_ref, to_firestore(entry))
            fields = to_firestore(decision.entitlement)
            if ent_snap is not None and current is not None:
                condition = self._client.write_option(last_update_time=ent_snap.update_time)
                batch.update(ent_ref, fields, option=condition)
            else:
                batch.create(ent_ref, fields)
            # A store refund also adds to its tenant's refunds of the day (no read, same commit).
            count = refund_counts.counted(decision.entitlement, decision.history)
            if count is not None:
                refund_counts.add(self._client, batch, count)
        except _ENCODING_ERRORS as exc:
            raise _unstorable() from exc
        # The deletes of entries published since this instance's last commit ride along (a delete
        # never fails a batch; given back when the commit fails, for the next one).
        deletes = self.outbox.take_deletes() if out_ref is not None else []
        for published in deletes:
            batch.delete(self.outbox.ref(published))
        try:
            # Never retried blindly: a new attempt reads again (and finds a landed commit a
            # duplicate).
            batch.commit(retry=None, timeout=self._remaining(deadline))
        except BaseException:
            self.outbox.give_back(deletes)
            raise
        return ApplyResult(decision.effect, decision.entitlement, decision.history, attempt, entry)

    # ---------------------------------------------------------------- reads

    @property
    def client(self) -> firestore.Client:
        """The Firestore client, for the other repositories (``wiring``)."""
        return self._client

    @property
    def deadline_s(self) -> float:
        """``FIRESTORE_DEADLINE_SECONDS``: every repository's deadline (``wiring``)."""
        return self._deadline_s

    def seen(self, events: list[LedgerEvent]) -> set[str]:
        """The history ids (``source:event id``) of ``events`` already in their entitlements'
        history: one ``get_all`` for them all (the reconciler skips what is known)."""
        refs = [
            self._client.collection(ENTITLEMENTS)
            .document(e.document_id)
            .collection(HISTORY)
            .document(e.history_id)
            for e in events
        ]
        if not refs:
            return set()
        try:
            snaps = self._client.get_all(refs, retry=self._retry, timeout=self._deadline_s)
            return {f"{s.reference.parent.parent.id}/{s.id}" for s in snaps if s.exists}
        except CALL_ERRORS as exc:
            raise self._transient("firestore_unavailable") from exc

    def get(
        self, store: StoreName, purchase_id: str, environment: str = PRODUCTION
    ) -> Entitlement | None:
        ref = self._client.collection(ENTITLEMENTS).document(
            document_id(store, purchase_id, environment)
        )
        try:
            snapshot = ref.get(retry=self._retry, timeout=self._deadline_s)
        except CALL_ERRORS as exc:
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
            snapshots = list(query.stream(retry=self._retry, timeout=self._deadline_s))
        except CALL_ERRORS as exc:
            raise self._transient("firestore_unavailable") from exc
        entries = [load(HistoryEntry, s.to_dict() or {}) for s in snapshots]
        # Entries written before a field left the allow-list are shown without it too.
        return [replace(e, details=allowed(e.source, e.details)) for e in entries]

    def find_by_order(self, order_id: str, *, limit: int = 20) -> list[Entitlement]:
        """The entitlements that have seen ``order_id`` (one query on ``order_ids``)."""
        query = (
            self._client.collection(ENTITLEMENTS)
            .where(filter=FieldFilter("order_ids", "array_contains", order_id))
            .limit(limit)
        )
        try:
            snapshots = list(query.stream(retry=self._retry, timeout=self._deadline_s))
        except CALL_ERRORS as exc:
            raise self._transient("firestore_unavailable") from exc
        return [load(Entitlement, s.to_dict() or {}) for s in snapshots]

    def list_for_tenant(
        self,
        tenant: str,
        *,
        status: str | None = None,
        updated_since_ms: int | None = None,
        after: tuple[int, str] | None = None,
        limit: int = 100,
    ) -> list[Entitlement]:
        """A tenant's entitlements in ``(updated_ms, document id)`` order, after the cursor
        ``after`` (the last one's pair): one indexed query (infra/firestore_indexes.tf). A change
        moves an entitlement to the end: paging sees every one at least once, each version
        once."""
        query = self._client.collection(ENTITLEMENTS).where(
            filter=FieldFilter("tenant", "==", tenant)
        )
        if status is not None:
            query = query.where(filter=FieldFilter("status", "==", status))
        if updated_since_ms is not None:
            query = query.where(filter=FieldFilter("updated_ms", ">=", updated_since_ms))
        query = query.order_by("updated_ms").order_by(FieldPath.document_id())
        if after is not None:
            query = query.start_after({"updated_ms": after[0], FieldPath.document_id(): after[1]})
        try:
            snapshots = list(query.limit(limit).stream(retry=self._retry, timeout=self._deadline_s))
        except CALL_ERRORS as exc:
            raise self._transient("firestore_unavailable") from exc
        return [load(Entitlement, s.to_dict() or {}) for s in snapshots]

    # ---------------------------------------------------------------- helpers

    @staticmethod
    def _remaining(deadline: float) -> float:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _DeadlinePassed("refundguard's Firestore deadline passed")
        return remaining

    @staticmethod
    def _transient(code: str) -> RefundGuardError:
        """The caller sees a plain message; the handler's log line names the cause (``raise ...
        from exc`` at every call site keeps it as ``__cause__``)."""
        return transient(code, "the entitlement store is unavailable; retry later")


class _DeadlinePassed(Exception):
    """The deadline passed between two calls: no call was made."""


def _exists(snapshot: firestore.DocumentSnapshot | None) -> bool:
    return snapshot is not None and snapshot.exists


def _unstorable() -> RefundGuardError:
    """A value Firestore refuses (too large, too deep, out of range...): no retry can fix it. The
    cause (``raise ... from``) goes to the log line, never to the caller."""
    return rejected("unstorable", "the event holds a value Firestore cannot store")
