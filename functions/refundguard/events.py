"""Access-change events, pure (no I/O, no clock): which history entries send one (``sends``), the
event's stable id, the CloudEvent built from the entitlement and its history entry, the Pub/Sub
message around it (attributes, ordering key) as an ``OutboxEntry``, and the order in which a batch
of entries is published (``publish_order``); and the refund-request event
(``refund_request_event``: a store's refund question received or changed). The contract is
docs/integrating.md."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .model import Effect, Entitlement, HistoryEntry, Status, history_id
from .serializer import ms_to_iso

if TYPE_CHECKING:
    from .refunds import RefundRequest

EVENT_TYPE = "com.refundguard.entitlement.access.v1"
REFUND_REQUEST_TYPE = "com.refundguard.refund_request.v1"
#: Recorded store events that send an access event although access is unchanged: a quantity-based
#: partial refund (Google) keeps access, but platforms and the figures (docs/insight.md) count it.
PARTIAL_REFUND_TYPES = frozenset({"VOIDED_PURCHASE_PARTIAL_REFUND"})
SPEC_VERSION = "1.0"
CONTENT_TYPE = "application/json"
MAX_ORDERING_KEY_BYTES = 1024  # Pub/Sub's limit


@dataclass(frozen=True)
class OutboxEntry:
    """One event waiting in ``outbox/{event_id}`` to be published: the Pub/Sub message, whole."""

    event_id: str
    entitlement: str  # the entitlement's document id (the CloudEvent's subject)
    version: int  # the entitlement's history_count after the change
    status: str
    ordering_key: str
    data: str  # the CloudEvent, structured-mode JSON: exactly what is published (UTF-8)
    created_ms: int  # when the change was committed (the history entry's received_ms)
    attributes: Mapping[str, str] = field(default_factory=dict)


def sends(history: HistoryEntry) -> bool:
    """An event is sent for an applied entry whose status differs from the status before it; a
    purchase never seen before (``status_before`` None) counts, so a first grant or a refund
    tombstone sends one. A recorded partial refund (``PARTIAL_REFUND_TYPES``) of a purchase whose
    status is known sends one with its status unchanged. Other recorded, stale and duplicate
    entries, and re-applications of the same status (a renewal of an active subscription), send
    nothing."""
    if history.effect is Effect.RECORDED:
        return history.type in PARTIAL_REFUND_TYPES and history.status_after is not Status.UNKNOWN
    return history.effect is Effect.APPLIED and history.status_after != history.status_before


def event_id(entitlement_id: str, history_key: str) -> str:
    """Stable: the same change (this entitlement, this history entry, i.e. this source event) always
    has the same id, in every attempt, redelivery and sweep. 32 hex digits."""
    material = f"{EVENT_TYPE}\n{entitlement_id}\n{history_key}".encode()
    return hashlib.sha256(material).hexdigest()[:32]


def ordering_key(entitlement_id: str) -> str:
    """The entitlement's id, or ``sha256:<hex>`` of it when longer than Pub/Sub allows."""
    if len(entitlement_id.encode()) <= MAX_ORDERING_KEY_BYTES:
        return entitlement_id
    return "sha256:" + hashlib.sha256(entitlement_id.encode()).hexdigest()


def cloudevent(entitlement: Entitlement, history: HistoryEntry, *, source: str) -> dict[str, Any]:
    """The CloudEvents 1.0 structured-mode object of a change (``sends(history)`` holds)."""
    subject = entitlement.document_id
    before = history.status_before
    return {
        "specversion": SPEC_VERSION,
        "id": event_id(subject, history_id(history.source, history.event_id)),
        "source": source,
        "type": EVENT_TYPE,
        "subject": subject,
        "time": ms_to_iso(history.received_ms),
        "datacontenttype": CONTENT_TYPE,
        "tenant": entitlement.tenant,  # a CloudEvents extension attribute (routing, clustering)
        "data": {
            "entitlement_id": subject,
            "tenant": entitlement.tenant,
            "store": entitlement.store.value,
            "environment": entitlement.environment,
            "purchase_id": entitlement.purchase_id,
            "status": history.status_after.value,
            "access": history.status_after.grants_access,
            "previous_status": before.value if before is not None else None,
            "previous_access": before is not None and before.grants_access,
            "product_id": entitlement.product_id,
            "user_id": entitlement.user_id,
            "order_id": entitlement.order_id,
            "version": entitlement.history_count,
            "cause": {
                "source": history.source.value,
                "type": history.type,
                "event_id": history.event_id,
                "event_time": ms_to_iso(history.event_time_ms),
                "actor": history.actor,
                "reason": history.reason,
            },
        },
    }


def access_event(
    entitlement: Entitlement, history: HistoryEntry, *, source: str
) -> OutboxEntry | None:
    """The outbox entry of a change, or None when the entry sends nothing (see ``sends``)."""
    if not sends(history):
        return None
    event = cloudevent(entitlement, history, source=source)
    data = event["data"]
    return OutboxEntry(
        event_id=event["id"],
        entitlement=event["subject"],
        version=data["version"],
        status=data["status"],
        ordering_key=ordering_key(event["subject"]),
        data=json.dumps(event, ensure_ascii=False, separators=(",", ":")),
        created_ms=history.received_ms,
        attributes={
            "tenant": data["tenant"],
            "store": data["store"],
            "environment": data["environment"],
            "status": data["status"],
            "access": "true" if data["access"] else "false",
        },
    )


def refund_request_id(request_id: str, state: str, changed_ms: int, attempts: int) -> str:
    """Stable: the same change of a request (created, or written with this state, time and attempt
    count) always has the same id, in every redelivery and sweep. 32 hex digits."""
    material = f"{REFUND_REQUEST_TYPE}\n{request_id}\n{state}\n{changed_ms}\n{attempts}".encode()
    return hashlib.sha256(material).hexdigest()[:32]


def refund_request_cloudevent(
    request: RefundRequest, *, previous_state: str | None, source: str
) -> dict[str, Any]:
    """The CloudEvents 1.0 object of a refund request created (``previous_state`` None) or
    written: never its pending refund token, nor the answer's body beyond its preference."""
    changed_ms = request.updated_ms or request.received_ms
    preference = request.answer.get("refundPreference") if request.answer else None
    return {
        "specversion": SPEC_VERSION,
        "id": refund_request_id(request.id, request.state, changed_ms, request.attempts),
        "source": source,
        "type": REFUND_REQUEST_TYPE,
        "subject": request.id,
        "time": ms_to_iso(changed_ms),
        "datacontenttype": CONTENT_TYPE,
        "tenant": request.tenant,
        "data": {
            "request_id": request.id,
            "tenant": request.tenant,
            "kind": request.kind,
            "store": request.store,
            "environment": request.environment,
            "entitlement_id": request.entitlement_id,
            "order_id": request.order_id,
            "state": request.state,
            "previous_state": previous_state,
            "reason": request.reason[:2000] if request.reason else None,
            "rule": request.rule,
            "refund_preference": preference if isinstance(preference, str) else None,
            "attempts": request.attempts,
            "received_at": ms_to_iso(request.received_ms),
            "deadline_at": ms_to_iso(request.deadline_ms),
            "answered_at": ms_to_iso(request.answered_ms) if request.answered_ms else None,
        },
    }


def refund_request_event(
    request: RefundRequest, *, previous_state: str | None, source: str
) -> OutboxEntry:
    """The outbox entry of a refund request's change. Its ordering key is the request's id (its
    changes arrive in order); ``version`` is the change's time, which orders them in a sweep."""
    event = refund_request_cloudevent(request, previous_state=previous_state, source=source)
    data = event["data"]
    return OutboxEntry(
        event_id=event["id"],
        entitlement=event["subject"],
        version=request.updated_ms or request.received_ms,
        status=data["state"],
        ordering_key=ordering_key(event["subject"]),
        data=json.dumps(event, ensure_ascii=False, separators=(",", ":")),
        created_ms=request.updated_ms or request.received_ms,
        attributes={
            "type": REFUND_REQUEST_TYPE,
            "tenant": data["tenant"],
            "store": data["store"],
            "environment": data["environment"],
            "state": data["state"],
        },
    )


def publish_order(entries: Iterable[OutboxEntry]) -> list[list[OutboxEntry]]:
    """Entries grouped by entitlement, each group in version order (one ordering key each), the
    groups by their oldest entry: publish a group in one request, so its order holds."""
    groups: dict[str, list[OutboxEntry]] = {}
    for entry in sorted(entries, key=lambda e: (e.created_ms, e.entitlement, e.version)):
        groups.setdefault(entry.entitlement, []).append(entry)
    return [sorted(group, key=lambda e: e.version) for group in groups.values()]


def pubsub_message(entry: OutboxEntry) -> Mapping[str, Any]:
    """The entry as a Pub/Sub REST ``PubsubMessage`` (``data`` base64)."""
    return {
        "data": base64.b64encode(entry.data.encode()).decode(),
        "attributes": dict(entry.attributes),
        "orderingKey": entry.ordering_key,
    }


def unpublished_json(entry: OutboxEntry, now_ms: int) -> dict[str, Any]:
    """An outbox entry as the admin API shows it: which change, how long it has waited."""
    cause = json.loads(entry.data).get("data", {}).get("cause", {})
    return {
        "event_id": entry.event_id,
        "entitlement": entry.entitlement,
        "version": entry.version,
        "status": entry.status,
        "cause": {"source": cause.get("source"), "type": cause.get("type")},
        "created_at": ms_to_iso(entry.created_ms),
        "age_s": round((now_ms - entry.created_ms) / 1000, 1),
    }
