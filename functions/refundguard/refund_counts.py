"""Refunds per tenant and UTC day, counted where they are applied:
``refund_days/{tenant}:{day}:{shard}`` = ``{tenant, day, refunds, products: {product id: n}}``,
incremented (a field transform, no read) in the same commit as the revocation
(``store.EntitlementStore.apply``), so a count is exact and never counts a redelivery twice. A
day's count is the sum of its ``SHARDS`` documents (the shard is a hash of the entitlement id): a
refund wave of one tenant spreads over them instead of queueing on one document. Read by the
refund-spike alert (``alert_checks``). What counts (``counted``): a Production purchase revoked
by a store refund (Google ``VOIDED_PURCHASE`` or ``SUBSCRIPTION_REVOKED``, Apple ``REFUND``), on
the UTC day of the store's event time."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from google.cloud import firestore

from .model import PRODUCTION, Effect, Entitlement, HistoryEntry, Source, Status
from .serializer import ms_to_iso

if TYPE_CHECKING:
    from google.cloud.firestore_v1.batch import WriteBatch

REFUND_DAYS = "refund_days"
REFUND_TYPES = {
    Source.GOOGLE: frozenset({"VOIDED_PURCHASE", "SUBSCRIPTION_REVOKED"}),
    Source.APPLE: frozenset({"REFUND"}),
}
#: A product id stored as a map key: Firestore refuses ``__x__`` names and very long ones.
_RESERVED = re.compile(r"__.*__")
MAX_PRODUCT_KEY = 300
SHARDS = 8


@dataclass(frozen=True)
class RefundCount:
    tenant: str
    day: str  # YYYY-MM-DD, UTC
    product: str | None
    shard: int = 0

    @property
    def doc_id(self) -> str:
        return doc_id(self.tenant, self.day, self.shard)


def day_of(ms: int) -> str:
    """The UTC day of a time, ``YYYY-MM-DD``."""
    return ms_to_iso(ms)[:10]


def doc_id(tenant: str, day: str, shard: int) -> str:
    return f"{tenant}:{day}:{shard}"


def counted(entitlement: Entitlement, history: HistoryEntry) -> RefundCount | None:
    """The count a change adds to, or None: only an applied revocation by a store refund of a
    Production purchase that had not been revoked already."""
    if (
        history.effect is not Effect.APPLIED
        or history.status_after is not Status.REVOKED
        or history.status_before is Status.REVOKED
        or entitlement.environment != PRODUCTION
        or history.type.split(".")[0] not in REFUND_TYPES.get(history.source, ())
    ):
        return None
    product = entitlement.product_id
    if not product or len(product) > MAX_PRODUCT_KEY or _RESERVED.fullmatch(product):
        product = None
    digest = hashlib.sha256(entitlement.document_id.encode()).digest()
    shard = int.from_bytes(digest[:4], "big") % SHARDS
    return RefundCount(entitlement.tenant, day_of(history.event_time_ms), product, shard)


def add(client: firestore.Client, batch: WriteBatch, count: RefundCount) -> None:
    """Add one refund to ``count``'s document in ``batch`` (created by the first refund)."""
    fields: dict[str, object] = {
        "tenant": count.tenant,
        "day": count.day,
        "refunds": firestore.Increment(1),
    }
    if count.product is not None:
        fields["products"] = {count.product: firestore.Increment(1)}
    batch.set(client.collection(REFUND_DAYS).document(count.doc_id), fields, merge=True)
