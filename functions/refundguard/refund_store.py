"""Refund requests and consumption reports on Firestore: ``refund_requests/{id}`` (one per question
a store asked, written by the notification functions and the reconciler, answered by the
reconciler) and ``consumption/{entitlement id}`` (what the platform reported through the admin
API). Fields come from ``refunds`` through the serializer; TRANSIENT when Firestore fails.

With events on (an ``Outbox`` with a publisher), every request created or written also writes its
refund-request event (``events.refund_request_event``) to ``outbox/{event id}`` in the same batch,
published after the commit; what is not published then, the events sweep publishes."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from google.api_core import exceptions as gexc
from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter

from .errors import transient
from .events import OutboxEntry, refund_request_event
from .firestore_calls import CALL_ERRORS, retry
from .model import DEFAULT_TENANT
from .refunds import PENDING, Consumption, RefundRequest
from .serializer import load, to_firestore

if TYPE_CHECKING:
    from .outbox import Outbox

REFUND_REQUESTS = "refund_requests"
CONSUMPTION = "consumption"


def _unavailable() -> Exception:
    return transient("firestore_unavailable", "the refund requests are unavailable; retry later")


class RefundStore:
    def __init__(
        self, client: firestore.Client, *, timeout_s: float, outbox: Outbox | None = None
    ) -> None:
        """``outbox`` None, or without a publisher: events off (no refund-request events)."""
        self._client = client
        self._timeout_s = timeout_s
        self._retry = retry(timeout_s)
        self._outbox = outbox if outbox is not None and outbox.publisher is not None else None

    def _ref(self, request_id: str) -> firestore.DocumentReference:
        return self._client.collection(REFUND_REQUESTS).document(request_id.replace("/", "_"))

    def _event(self, request: RefundRequest, previous_state: str | None) -> OutboxEntry | None:
        if self._outbox is None:
            return None
        return refund_request_event(
            request, previous_state=previous_state, source=self._outbox.source
        )

    def _commit(self, request: RefundRequest, entry: OutboxEntry | None, *, create: bool) -> None:
        """The request and its event in one batch (with the deletes of events this instance
        published since its last commit); AlreadyExists when ``create`` finds the request."""
        batch = self._client.batch()
        ref = self._ref(request.id)
        if create:
            batch.create(ref, to_firestore(request))
        else:
            batch.set(ref, to_firestore(request))
        deletes: list[str] = []
        if entry is not None and self._outbox is not None:
            batch.set(self._outbox.ref(entry.event_id), to_firestore(entry))
            deletes = self._outbox.take_deletes()
            for published in deletes:
                batch.delete(self._outbox.ref(published))
        try:
            batch.commit(retry=self._retry, timeout=self._timeout_s)
        except BaseException:
            if self._outbox is not None:
                self._outbox.give_back(deletes)
            raise
        if entry is not None and self._outbox is not None:
            self._outbox.deliver(entry)  # never raises: what is not published waits for the sweep

    def record(self, request: RefundRequest) -> bool:
        """Create the request unless it exists (a redelivered notification, or the reconciler
        finding a notification the endpoint had); whether it was new. A new one sends its
        ``received`` event."""
        try:
            self._commit(request, self._event(request, None), create=True)
        except gexc.AlreadyExists:
            return False
        except CALL_ERRORS as exc:
            raise _unavailable() from exc
        return True

    def get(self, request_id: str) -> RefundRequest | None:
        try:
            snap = self._ref(request_id).get(retry=self._retry, timeout=self._timeout_s)
        except CALL_ERRORS as exc:
            raise _unavailable() from exc
        return load(RefundRequest, snap.to_dict() or {}) if snap.exists else None

    def pending(
        self, *, limit: int = 200, tenants: list[str] | None = None, tenant: str | None = None
    ) -> list[RefundRequest]:
        """Pending requests, the nearest deadline first: of ``tenants`` only (the admin API's
        lists), or of one ``tenant`` (the reconciler's answers; the ``default`` tenant's include
        requests written before tenants, which name none)."""
        query = self._client.collection(REFUND_REQUESTS).where(
            filter=FieldFilter("state", "==", PENDING)
        )
        if tenant is None:
            found = self._requests(_of_tenants(query, tenants).limit(limit))
            return sorted(found, key=lambda r: r.deadline_ms)
        if tenant != DEFAULT_TENANT:
            query = query.where(filter=FieldFilter("tenant", "==", tenant))
        found = self._requests(query.limit(limit))
        if tenant == DEFAULT_TENANT:
            found = [r for r in found if r.tenant == DEFAULT_TENANT]
        return sorted(found, key=lambda r: r.deadline_ms)

    def recent(self, *, limit: int, tenants: list[str] | None = None) -> list[RefundRequest]:
        """The newest requests (admins' list), pending first, then by time received (of
        ``tenants`` only, when given: one indexed query, infra/firestore_indexes.tf)."""
        query = (
            _of_tenants(self._client.collection(REFUND_REQUESTS), tenants)
            .order_by("received_ms", direction=firestore.Query.DESCENDING)
            .limit(limit)
        )
        found = self._requests(query)
        pending = self.pending(limit=limit, tenants=tenants)
        seen = {r.id for r in pending}
        return (pending + [r for r in found if r.id not in seen])[:limit]

    def _requests(self, query: firestore.Query) -> list[RefundRequest]:
        try:
            return [
                load(RefundRequest, s.to_dict() or {})
                for s in query.stream(retry=self._retry, timeout=self._timeout_s)
            ]
        except CALL_ERRORS as exc:
            raise _unavailable() from exc

    def update(self, request: RefundRequest, **changes: Any) -> RefundRequest:
        """Write the request with ``changes``, and its event (state before -> after)."""
        updated = replace(request, **changes)
        try:
            self._commit(updated, self._event(updated, request.state), create=False)
        except CALL_ERRORS as exc:
            raise _unavailable() from exc
        return updated

    # ------------------------------------------------------------------------ consumption

    def consumption(self, entitlement_id: str) -> Consumption | None:
        ref = self._client.collection(CONSUMPTION).document(entitlement_id)
        try:
            snap = ref.get(retry=self._retry, timeout=self._timeout_s)
        except CALL_ERRORS as exc:
            raise _unavailable() from exc
        return load(Consumption, snap.to_dict() or {}) if snap.exists else None

    def report(self, consumption: Consumption) -> None:
        ref = self._client.collection(CONSUMPTION).document(consumption.entitlement_id)
        try:
            ref.set(to_firestore(consumption), retry=self._retry, timeout=self._timeout_s)
        except CALL_ERRORS as exc:
            raise _unavailable() from exc


def _of_tenants(query: Any, tenants: list[str] | None) -> Any:
    """``query`` narrowed to ``tenants`` (None: every tenant; at most 30, Firestore's ``in``)."""
    if tenants is None:
        return query
    return query.where(filter=FieldFilter("tenant", "in", tenants[:30] or ["-"]))
