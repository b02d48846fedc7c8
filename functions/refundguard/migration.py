"""The upgrade to tenants: entitlements and refund requests written before tenants have no
``tenant`` field (they read back as ``default``, but a ``tenant == default`` query misses them).
``stamp_tenant`` writes ``tenant: "default"`` on up to ``limit`` documents lacking it, in document
id order, and says where to go on: idempotent (a stamped document is skipped) and resumable (the
token is the last document id looked at). A document changed while being stamped keeps what its
writer gave it."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass

from google.api_core import exceptions as gexc
from google.cloud import firestore
from google.cloud.firestore_v1.field_path import FieldPath

from .errors import rejected, transient
from .firestore_calls import CALL_ERRORS, retry
from .model import DEFAULT_TENANT
from .refund_store import REFUND_REQUESTS
from .store import ENTITLEMENTS

COLLECTIONS = (ENTITLEMENTS, REFUND_REQUESTS)
FIELD = "tenant"


@dataclass(frozen=True)
class Progress:
    updated: int
    scanned: int
    next_page_token: str | None


def encode_token(collection: int, after: str | None) -> str:
    raw = json.dumps([collection, after], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: str | None) -> tuple[int, str | None]:
    if token is None:
        return 0, None
    try:
        padded = token + "=" * (-len(token) % 4)
        collection, after = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if not (isinstance(collection, int) and 0 <= collection < len(COLLECTIONS)):
            raise ValueError
        if after is not None and not isinstance(after, str):
            raise ValueError
    except (ValueError, TypeError, UnicodeDecodeError):
        raise rejected("bad_page_token", "page_token is not one this route gave") from None
    return collection, after


def stamp_tenant(
    client: firestore.Client, *, timeout_s: float, page_token: str | None, limit: int
) -> Progress:
    """One page of the migration: the documents after the token's, ``limit`` at most."""
    index, after = decode_token(page_token)
    collection = client.collection(COLLECTIONS[index])
    query = collection.order_by(FieldPath.document_id()).limit(limit)
    if after is not None:
        query = query.start_after({FieldPath.document_id(): after})
    try:
        snaps = list(query.stream(retry=retry(timeout_s), timeout=timeout_s))
        updated = sum(_stamp(client, snap, timeout_s) for snap in snaps)
    except CALL_ERRORS as exc:
        raise transient("firestore_unavailable", "Firestore is unavailable; retry") from exc
    if len(snaps) == limit:
        token: str | None = encode_token(index, snaps[-1].id)
    elif index + 1 < len(COLLECTIONS):
        token = encode_token(index + 1, None)
    else:
        token = None
    return Progress(updated, len(snaps), token)


def _stamp(client: firestore.Client, snap: firestore.DocumentSnapshot, timeout_s: float) -> int:
    """1 when this call wrote the field; only on the version read (else read again, twice)."""
    for _ in range(3):
        if FIELD in (snap.to_dict() or {}):
            return 0
        condition = client.write_option(last_update_time=snap.update_time)
        try:
            snap.reference.update({FIELD: DEFAULT_TENANT}, option=condition, timeout=timeout_s)
            return 1
        except gexc.NotFound:
            return 0
        except gexc.FailedPrecondition:  # written meanwhile: look at it again
            snap = snap.reference.get(timeout=timeout_s)
            if not snap.exists:
                return 0
    raise transient("firestore_contention", "a document kept changing; run the page again")
