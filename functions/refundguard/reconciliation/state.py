"""The reconciler's own Firestore documents: the lease that keeps two runs from overlapping
(``reconcile_lease/reconciler``, taken with a precondition on its update time), one cursor per
source (``reconcile_cursors/{source}``) and one record per run (``reconcile_runs/{run id}``; a
fanned-out run has one per tenant, ``reconcile_runs/{run id}:{tenant}``), which admins list
(``GET /reconciliation/runs``), all stored through the serializer. A fanned-out run's worker
moves a cursor and adds its page to the tenant's record in one transaction (``commit_page``),
only if the cursor is still as the worker read it. TRANSIENT when Firestore cannot be reached."""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter
from google.cloud.firestore_v1.field_path import FieldPath

from ..errors import transient
from ..firestore_calls import CALL_ERRORS, retry
from ..serializer import load, ms_to_iso, to_firestore
from .plan import Cursor, RunRecord, SourceTally, run_state

LEASE = "reconcile_lease"
CURSORS = "reconcile_cursors"
RUNS = "reconcile_runs"
LEASE_ID = "reconciler"
_LOST = (gexc.AlreadyExists, gexc.FailedPrecondition, gexc.Aborted, gexc.NotFound)


def _unavailable() -> Exception:
    return transient("firestore_unavailable", "the reconciler's state is unavailable; retry later")


@dataclasses.dataclass(frozen=True)
class Held:
    """The lease as read: who holds it and until when."""

    run_id: str
    expires_ms: int


class ReconcileState:
    def __init__(self, client: firestore.Client, *, timeout_s: float) -> None:
        self._client = client
        self._timeout_s = timeout_s
        self._retry = retry(timeout_s)

    # ------------------------------------------------------------------------ the lease

    def acquire(self, run_id: str, *, now_ms: int, ttl_ms: int) -> tuple[bool, Held | None]:
        """Take the lease for ``run_id`` unless another run holds it unexpired. Returns whether
        it was taken, and the holder read (the live holder when refused; an expired holder, a run
        that never finished, when taken)."""
        ref = self._client.collection(LEASE).document(LEASE_ID)
        try:
            snap = ref.get(retry=self._retry, timeout=self._timeout_s)
            held = None
            if snap.exists:
                data = snap.to_dict() or {}
                held = Held(str(data.get("run_id")), int(data.get("expires_ms") or 0))
                if held.expires_ms > now_ms and held.run_id != run_id:
                    return False, held
            lease = {"run_id": run_id, "acquired_ms": now_ms, "expires_ms": now_ms + ttl_ms}
            if snap.exists:
                option = self._client.write_option(last_update_time=snap.update_time)
                ref.update(lease, option=option, timeout=self._timeout_s)
            else:
                ref.create(lease, timeout=self._timeout_s)
        except _LOST:  # another run took it between our read and our write
            return False, None
        except CALL_ERRORS as exc:
            raise _unavailable() from exc
        return True, held

    def release(self, run_id: str) -> None:
        """Give the lease back if this run still holds it (best effort: it expires anyway)."""
        ref = self._client.collection(LEASE).document(LEASE_ID)
        try:
            snap = ref.get(retry=self._retry, timeout=self._timeout_s)
            if snap.exists and (snap.to_dict() or {}).get("run_id") == run_id:
                option = self._client.write_option(last_update_time=snap.update_time)
                ref.delete(option=option, timeout=self._timeout_s)
        except (*_LOST, *CALL_ERRORS):
            pass

    # ------------------------------------------------------------------------ cursors

    def cursor(self, source: str) -> Cursor | None:
        ref = self._client.collection(CURSORS).document(source.replace("/", "_"))
        try:
            snap = ref.get(retry=self._retry, timeout=self._timeout_s)
        except CALL_ERRORS as exc:
            raise _unavailable() from exc
        return load(Cursor, snap.to_dict() or {}) if snap.exists else None

    def commit_page(self, cursor: Cursor, *, expected: Cursor | None) -> bool:
        """One transaction on the cursor alone: ``cursor`` written only if the cursor still
        stands where it stood when read (``expected``; None: absent; its ``published`` mark
        aside). False when another delivery moved it first: nothing written."""
        ref = self._client.collection(CURSORS).document(cursor.source.replace("/", "_"))

        @firestore.transactional
        def commit(tx: firestore.Transaction) -> bool:
            snap = ref.get(transaction=tx)
            now = load(Cursor, snap.to_dict() or {}) if snap.exists else None
            if position(now) != position(expected):
                return False
            tx.set(ref, to_firestore(cursor))
            return True

        return self._transact(commit)

    def finish_source(
        self,
        record_id: str,
        key: str,
        *,
        now_ms: int,
        tally: SourceTally | None = None,
        refund_requests: dict[str, Any] | None = None,
    ) -> None:
        """A source of a fanned-out run is done: its tally (or the refund requests' outcomes)
        in the tenant's run record, its key out of ``awaiting``. One write of field transforms,
        no read (the tenant's sources finish concurrently without waiting on each other);
        writing it again (a redelivery) changes nothing."""
        fields: dict[str, Any] = {
            "awaiting": firestore.ArrayRemove([key]),
            "finished_ms": firestore.Maximum(now_ms),
        }
        if tally is not None:
            fields[FieldPath("tallies", key).to_api_repr()] = to_firestore(tally)
        if refund_requests is not None:
            fields["refund_requests"] = refund_requests
        ref = self._client.collection(RUNS).document(record_id)
        try:
            ref.update(fields, timeout=self._timeout_s)
        except gexc.NotFound:
            pass  # no record (it was removed): nothing to count in
        except CALL_ERRORS as exc:
            raise _unavailable() from exc

    def mark_published(self, source: str, run_id: str, page: int) -> None:
        """The continuation ``page`` of ``run_id`` was published (a redelivery of the page
        before it need not publish it again). Best effort, without a transaction (a precondition
        on the cursor as read): at worst it is published twice, and the cursor's check makes the
        second copy do nothing."""
        ref = self._client.collection(CURSORS).document(source.replace("/", "_"))
        with contextlib.suppress(*_LOST, *CALL_ERRORS):
            snap = ref.get(retry=self._retry, timeout=self._timeout_s)
            data = (snap.to_dict() or {}) if snap.exists else {}
            if data.get("run_id") == run_id and int(data.get("published") or 0) < page:
                option = self._client.write_option(last_update_time=snap.update_time)
                ref.update({"published": page}, option=option, timeout=self._timeout_s)

    def _transact(self, body: Any) -> bool:
        transaction = self._client.transaction(max_attempts=5)
        try:
            return bool(body(transaction))
        except (gexc.Aborted, gexc.FailedPrecondition, ValueError):
            return False  # contention beyond the attempts: another delivery got there first
        except CALL_ERRORS as exc:
            raise _unavailable() from exc

    def save_cursor(self, cursor: Cursor) -> None:
        ref = self._client.collection(CURSORS).document(cursor.source.replace("/", "_"))
        try:
            ref.set(to_firestore(cursor), retry=self._retry, timeout=self._timeout_s)
        except CALL_ERRORS as exc:
            raise _unavailable() from exc

    # ------------------------------------------------------------------------ run records

    def save_run(self, record: RunRecord) -> None:
        ref = self._client.collection(RUNS).document(record.run_id)
        try:
            ref.set(to_firestore(record), retry=self._retry, timeout=self._timeout_s)
        except CALL_ERRORS as exc:
            raise _unavailable() from exc

    def get_run(self, run_id: str) -> RunRecord | None:
        try:
            snap = (
                self._client.collection(RUNS)
                .document(run_id)
                .get(retry=self._retry, timeout=self._timeout_s)
            )
        except CALL_ERRORS as exc:
            raise _unavailable() from exc
        return settled(load(RunRecord, snap.to_dict() or {})) if snap.exists else None

    def find_by_request(self, request_id: str) -> RunRecord | None:
        """The run started for the admin function's ``request_id``, if one was."""
        query = self._client.collection(RUNS).where(
            filter=FieldFilter("request_id", "==", request_id)
        )
        try:
            snaps = list(query.limit(1).stream(retry=self._retry, timeout=self._timeout_s))
        except CALL_ERRORS as exc:
            raise _unavailable() from exc
        return settled(load(RunRecord, snaps[0].to_dict() or {})) if snaps else None

    def mark_abandoned(self, run_id: str, *, now_ms: int) -> None:
        """A run whose lease expired without finishing (its function was stopped)."""
        record = self.get_run(run_id)
        if record is not None and record.state == "running":
            self.save_run(
                dataclasses.replace(
                    record, state="abandoned", finished_ms=now_ms, error="the run never finished"
                )
            )

    def save_runs(self, records: list[RunRecord]) -> None:
        """A fanned-out run's records, one per tenant (``{run id}:{tenant}``), in batches."""
        for start in range(0, len(records), 500):
            batch = self._client.batch()
            for record in records[start : start + 500]:
                doc = record_id(record.run_id, record.tenant)
                batch.set(self._client.collection(RUNS).document(doc), to_firestore(record))
            try:
                batch.commit(retry=self._retry, timeout=self._timeout_s)
            except CALL_ERRORS as exc:
                raise _unavailable() from exc

    def recent_runs(self, limit: int, *, tenant: str | None = None) -> list[RunRecord]:
        """The newest records; ``tenant``: that tenant's only (an index on tenant, started_ms)."""
        query = self._client.collection(RUNS)
        if tenant is not None:
            query = query.where(filter=FieldFilter("tenant", "==", tenant))
        query = query.order_by("started_ms", direction=firestore.Query.DESCENDING).limit(limit)
        try:
            return [
                settled(load(RunRecord, s.to_dict() or {}))
                for s in query.stream(retry=self._retry, timeout=self._timeout_s)
            ]
        except CALL_ERRORS as exc:
            raise _unavailable() from exc


def position(cursor: Cursor | None) -> tuple[Any, ...] | None:
    """Where a cursor stands (what a page moves; not its ``published`` mark)."""
    if cursor is None:
        return None
    return (
        cursor.run_id,
        cursor.pages,
        cursor.complete_ms,
        cursor.resume_start_ms,
        cursor.resume_end_ms,
        cursor.resume_token,
    )


def settled(record: RunRecord) -> RunRecord:
    """A fanned-out run's record as read: its sources from the tallies the worker wrote, and,
    once no source is awaited, its state (``running`` until then)."""
    if record.tenant is None:
        return record
    sources = tuple(load(SourceTally, record.tallies[k]) for k in sorted(record.tallies))
    record = dataclasses.replace(record, sources=sources)
    if record.state == "running" and not record.awaiting:
        record = dataclasses.replace(record, state=run_state(list(sources), failure=None))
    return record


def record_id(run_id: str, tenant: str | None) -> str:
    """A run record's document id: the run id, with the tenant for a fanned-out run's."""
    return f"{run_id}:{tenant}" if tenant else run_id


def run_json(record: RunRecord) -> dict[str, Any]:
    """A run record as ``GET /reconciliation/runs`` shows it (docs/admin.md): the serializer's
    JSON of each source, with the windows as ISO times."""
    sources = []
    for tally in record.sources:
        sources.append(
            {
                "source": tally.source,
                "app": tally.app,
                "environment": tally.environment,
                "seen": tally.seen,
                "applied": tally.applied,
                "already_known": tally.already_known,
                "rejected": tally.rejected,
                "errors": list(tally.errors or []),
                "cursor": _iso(tally.cursor_ms),
                "window": {
                    "start_at": _iso(tally.window_start_ms),
                    "end_at": _iso(tally.window_end_ms),
                },
                "more": tally.more,
                "gap": tally.gap,
            }
        )
    starts = [t.window_start_ms for t in record.sources if t.window_start_ms]
    ends = [t.window_end_ms for t in record.sources if t.window_end_ms]
    return {
        "run_id": record.run_id,
        "tenant": record.tenant,
        "trigger": record.trigger,
        "actor": record.actor,
        "started_at": _iso(record.started_ms),
        "finished_at": _iso(record.finished_ms),
        "state": record.state,
        "window": {
            "start_at": _iso(min(starts)) if starts else None,
            "end_at": _iso(max(ends)) if ends else None,
        },
        "sources": sources,
        "refund_requests": dict(record.refund_requests),
        "error": record.error,
    }


def _iso(ms: int | None) -> str | None:
    return ms_to_iso(ms) if isinstance(ms, int) and ms > 0 else None
