"""The transactional outbox on Firestore: ``outbox/{event id}`` documents, each a whole Pub/Sub
message. The store writes one in the same batch as the change it announces; after the commit it is
published (``deliver``), and its delete rides on the next batch this instance commits
(``take_deletes``), so an access change costs one round trip more than events off, not two. What is
left (Pub/Sub unreachable, the function stopped before its next commit) is published by a
redelivery of the same source event (the store reads the entry with the entitlement; that rare path
deletes at once) or by the sweep (``sweep``: entries older than a grace period, in version order per
entitlement, deleted once published). Publishing twice is harmless: consumers dedupe by event id."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from google.cloud.firestore_v1.base_query import FieldFilter

from . import logs
from .errors import transient
from .events import OutboxEntry, publish_order
from .firestore_calls import CALL_ERRORS, retry
from .serializer import load

if TYPE_CHECKING:
    from google.cloud import firestore

    from .publisher import Publisher

OUTBOX = "outbox"
MAX_BATCH_WRITES = 500  # Firestore's limit per commit
DELETE_TIMEOUT_S = 5.0
#: Published entries whose delete waits for this instance's next commit; beyond this many the oldest
#: are forgotten (the sweep publishes them again, consumers dedupe): a commit stays far below 500.
MAX_DEFERRED_DELETES = 100


@dataclass(frozen=True)
class SweepResult:
    published: int  # entries published and deleted
    pages: int
    more: bool  # entries older than the grace period may remain (the time budget ran out)


class Outbox:
    """The outbox of one Firestore client; ``publisher`` None: read-only (events off)."""

    def __init__(
        self,
        client: firestore.Client,
        publisher: Publisher | None,
        *,
        deadline_s: float,
        function: str | None = None,
    ) -> None:
        self._client = client
        self.publisher = publisher
        self._deadline_s = deadline_s
        self._retry = retry(deadline_s)
        self._function = function
        self._published: dict[str, None] = {}  # published here, delete not yet committed (ordered)
        self._lock = threading.Lock()

    @property
    def source(self) -> str:
        assert self.publisher is not None
        return self.publisher.source

    def ref(self, event_id: str) -> firestore.DocumentReference:
        return self._client.collection(OUTBOX).document(event_id)

    # ------------------------------------------------------------------------- after a commit

    def deliver(self, entry: OutboxEntry, *, delete_now: bool = False) -> bool:
        """Publish one committed entry. Its delete is left to this instance's next commit
        (``take_deletes``), or made now with ``delete_now`` (a redelivery found the entry: there may
        be no next commit soon). Never raises: the change is committed whatever happens here, and
        what is not published stays for the sweep (a WARNING line)."""
        assert self.publisher is not None
        fields = {
            "function": self._function,
            "platform_event_id": entry.event_id,
            "version": entry.version,
            "store": entry.attributes.get("store"),
            "token_hash": logs.token_hash(entry.entitlement.partition(":")[2]),
        }
        try:
            self.publisher.publish([entry])
        except Exception as exc:  # PublishError, or anything else: never fail the request
            logs.bind(platform_event_id=entry.event_id, platform_event_published=False)
            logs.warning(
                "access event not published: it stays in the outbox for the sweep",
                error=str(exc)[:300],
                cause=logs.cause_text(exc),
                **fields,
            )
            return False
        logs.bind(platform_event_id=entry.event_id, platform_event_published=True)
        if not delete_now:
            self.give_back([entry.event_id])
            return True
        try:
            self.ref(entry.event_id).delete(retry=None, timeout=DELETE_TIMEOUT_S)
        except CALL_ERRORS as exc:
            logs.warning(
                "access event published, but its outbox entry could not be deleted: the sweep "
                "will publish it again (consumers dedupe by event id)",
                error=type(exc).__name__,
                **fields,
            )
        return True

    def published_here(self, event_id: str) -> bool:
        """Whether this instance published ``event_id`` and has not committed its delete yet."""
        with self._lock:
            return event_id in self._published

    def take_deletes(self) -> list[str]:
        """The ids of the published entries waiting for a commit to delete them, handed over:
        the caller adds their deletes to its batch and gives them back if the commit fails."""
        with self._lock:
            ids = list(self._published)
            self._published.clear()
        return ids

    def give_back(self, event_ids: Sequence[str]) -> None:
        """Published entries whose delete is still to be committed (the oldest beyond
        ``MAX_DEFERRED_DELETES`` are forgotten: the sweep publishes them again)."""
        with self._lock:
            self._published.update(dict.fromkeys(event_ids))
            while len(self._published) > MAX_DEFERRED_DELETES:
                del self._published[next(iter(self._published))]

    # ------------------------------------------------------------------------- reads and deletes

    def pending(self, *, limit: int, created_before_ms: int | None = None) -> list[OutboxEntry]:
        """Unpublished entries, oldest first; TRANSIENT when Firestore cannot be reached."""
        query = self._client.collection(OUTBOX)
        if created_before_ms is not None:
            query = query.where(filter=FieldFilter("created_ms", "<", created_before_ms))
        query = query.order_by("created_ms").limit(limit)
        try:
            snapshots = list(query.stream(retry=self._retry, timeout=self._deadline_s))
        except CALL_ERRORS as exc:
            raise transient(
                "firestore_unavailable", "the outbox is unavailable; retry later"
            ) from exc
        return [load(OutboxEntry, s.to_dict() or {}) for s in snapshots]

    def delete(self, entries: Sequence[OutboxEntry]) -> None:
        """Delete published entries (deleting one already gone is no error)."""
        for start in range(0, len(entries), MAX_BATCH_WRITES):
            batch = self._client.batch()
            for entry in entries[start : start + MAX_BATCH_WRITES]:
                batch.delete(self.ref(entry.event_id))
            try:
                batch.commit(retry=self._retry, timeout=self._deadline_s)
            except CALL_ERRORS as exc:
                raise transient(
                    "firestore_unavailable", "published, but the outbox could not be cleared"
                ) from exc

    # ------------------------------------------------------------------------- the sweep

    def sweep(
        self,
        *,
        now_ms: int,
        grace_ms: int,
        budget_s: float,
        page_size: int = 200,
        per_request: int = 100,
        clock: Callable[[], float] = time.monotonic,
    ) -> SweepResult:
        """Publish every entry created more than ``grace_ms`` before ``now_ms``: oldest first,
        each entitlement's entries in version order within one request, deleted once published.
        A publish that fails stops the sweep (TRANSIENT, what was published so far is counted in
        its details); what is left waits for the next run. Idempotent: publishing an entry twice
        gives consumers the same event id twice."""
        from .publisher import PublishError

        assert self.publisher is not None
        ends = clock() + budget_s
        published = pages = 0
        while True:
            entries = self.pending(limit=page_size, created_before_ms=now_ms - grace_ms)
            pages += 1
            for request in _requests(publish_order(entries), per_request):
                try:
                    self.publisher.publish(request)
                except PublishError as exc:
                    err = transient("pubsub_unavailable", "could not publish to the events topic")
                    err.details.update(published=published, left=len(entries))
                    raise err from exc
                self.delete(request)
                published += len(request)
            more = len(entries) == page_size
            if not more or clock() >= ends:
                return SweepResult(published, pages, more)


def _requests(groups: list[list[OutboxEntry]], per_request: int) -> list[list[OutboxEntry]]:
    """Whole groups (one entitlement each) packed into requests of about ``per_request`` entries;
    a larger group is a request of its own."""
    requests: list[list[OutboxEntry]] = []
    current: list[OutboxEntry] = []
    for group in groups:
        if current and len(current) + len(group) > per_request:
            requests.append(current)
            current = []
        current.extend(group)
    if current:
        requests.append(current)
    return requests
