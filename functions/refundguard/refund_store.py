"""Refund requests and consumption reports on Firestore: ``refund_requests/{id}`` (one per question
a store asked, written by the notification functions and the reconciler, answered by the
reconciler) and ``consumption/{entitlement id}`` (what the platform reported through the admin
API). Fields come from ``refunds`` through the serializer; TRANSIENT when Firestore fails."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from google.api_core import exceptions as gexc
from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter

from . import logs
from .errors import RefundGuardError, transient
from .firestore_calls import CALL_ERRORS, retry
from .model import LedgerEvent
from .refunds import PENDING, Consumption, RefundRequest, request_for
from .serializer import load, to_firestore

if TYPE_CHECKING:
    from .store import ApplyResult, EntitlementStore

REFUND_REQUESTS = "refund_requests"
CONSUMPTION = "consumption"


def _unavailable() -> Exception:
    return transient("firestore_unavailable", "the refund requests are unavailable; retry later")


class RefundStore:
    def __init__(self, client: firestore.Client, *, timeout_s: float = 15.0) -> None:
        self._client = client
        self._timeout_s = timeout_s
        self._retry = retry(timeout_s)

    def _ref(self, request_id: str) -> firestore.DocumentReference:
        return self._client.collection(REFUND_REQUESTS).document(request_id.replace("/", "_"))

    def record(self, request: RefundRequest) -> bool:
        """Create the request unless it exists (a redelivered notification, or the reconciler
        finding a notification the endpoint had); whether it was new."""
        try:
            self._ref(request.id).create(
                to_firestore(request), retry=self._retry, timeout=self._timeout_s
            )
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

    def pending(self, *, limit: int = 200) -> list[RefundRequest]:
        """Pending requests, the nearest deadline first."""
        query = (
            self._client.collection(REFUND_REQUESTS)
            .where(filter=FieldFilter("state", "==", PENDING))
            .limit(limit)
        )
        return sorted(self._requests(query), key=lambda r: r.deadline_ms)

    def recent(self, *, limit: int) -> list[RefundRequest]:
        """The newest requests (admins' list), pending first, then by time received."""
        query = (
            self._client.collection(REFUND_REQUESTS)
            .order_by("received_ms", direction=firestore.Query.DESCENDING)
            .limit(limit)
        )
        found = self._requests(query)
        pending = self.pending(limit=limit)
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
        """Write the request with ``changes``."""
        updated = replace(request, **changes)
        try:
            self._ref(request.id).set(
                to_firestore(updated), retry=self._retry, timeout=self._timeout_s
            )
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


def record_refund_request(
    store: EntitlementStore,
    event: LedgerEvent,
    app: str,
    *,
    pending_refund_token: str | None = None,
) -> None:
    """A refund review (Google) or consumption request (Apple) just applied to the ledger becomes
    a ``refund_requests`` document, answered by the reconciler by the operator's policy
    (docs/refunds.md). Also on duplicates: a redelivery completes what a crash between the two
    writes left undone. Google's token comes beside the event: history never holds it."""
    request = request_for(event, app, pending_refund_token=pending_refund_token)
    if request is not None:
        new = RefundStore(store.client).record(request)
        logs.bind(refund_request=request.id, refund_request_new=new)


def apply_notification(
    store: EntitlementStore,
    event: LedgerEvent,
    *,
    app: str,
    key: tuple[str, str],
    pending_refund_token: str | None = None,
) -> tuple[ApplyResult, str | None]:
    """What a notification function does with its ledger event: apply it (one the store cannot
    keep is tagged with ``key``, e.g. ("message_id", id), so it is quarantined under it), bind the
    outcome to the request's log line, and record a refund request the store asked. Returns the
    result and the entitlement's status."""
    try:
        result = store.apply(event)
    except RefundGuardError as err:
        err.details.setdefault(*key)
        raise
    status = result.entitlement.status.value if result.entitlement else None
    logs.bind(effect=result.effect.value, status=status, attempts=result.attempts)
    record_refund_request(store, event, app, pending_refund_token=pending_refund_token)
    return result, status
