"""What an admin request asks for, pure: its body (and a list's limit), and a re-grant or revoke
as a ``LedgerEvent`` at the moment it is made (idempotent when the caller sends an
``Idempotency-Key``)."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import rejected
from ..model import LedgerEvent, Source, Status, StoreName, namespace

if TYPE_CHECKING:
    from ..oidc import Caller

MAX_REASON_CHARS = 500
MAX_IDEMPOTENCY_KEY_CHARS = 255
_IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,%d}" % MAX_IDEMPOTENCY_KEY_CHARS)  # noqa: UP031


@dataclass(frozen=True)
class Action:
    name: str
    event_type: str
    status: Status


ACTIONS: dict[str, Action] = {
    "regrant": Action("regrant", "ADMIN_REGRANT", Status.ACTIVE),
    "revoke": Action("revoke", "ADMIN_REVOKE", Status.REVOKED),
}


@dataclass(frozen=True)
class Target:
    """Which entitlement: the store namespace (``google``, ``apple``, ``apple-sandbox``) and id."""

    store: str
    purchase_id: str


def parse_body(
    body: Mapping[str, Any], *, target: Target | None, reason: bool
) -> tuple[Target, str | None]:
    """The request body: ``store`` and ``purchase_id`` unless the path gave them (``target``),
    and ``reason`` for an action. Unknown fields are refused."""
    expected = ({"reason", "tenant"} if reason else set()) | (
        set() if target else {"store", "purchase_id"}
    )
    unknown = sorted(set(body) - expected)
    if unknown:
        raise rejected(
            "unknown_field", f"unknown field(s) in the request body: {', '.join(unknown)[:200]}"
        )
    if target is None:
        store, purchase_id = body.get("store"), body.get("purchase_id")
        if not isinstance(store, str) or not isinstance(purchase_id, str):
            raise rejected(
                "missing_target", '"store" and "purchase_id" are required strings in the body'
            )
        target = Target(store, purchase_id)
    return target, parse_reason(body) if reason else None


def parse_reason(body: Mapping[str, Any]) -> str:
    reason = body.get("reason")
    if reason is None:
        raise rejected(
            "missing_reason", 'a "reason" is required, e.g. {"reason": "refunded by mistake"}'
        )
    if not isinstance(reason, str):
        raise rejected("bad_reason", '"reason" must be a string')
    reason = reason.strip()
    if not reason:
        raise rejected("missing_reason", '"reason" must not be blank')
    if len(reason) > MAX_REASON_CHARS:
        raise rejected("reason_too_long", f'"reason" must be at most {MAX_REASON_CHARS} characters')
    return reason


def parse_limit(raw: str | None, *, default: int, high: int) -> int:
    """A list's ``?limit=``: a whole number from 1 to ``high``; ``default`` when absent."""
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit() and 1 <= int(raw) <= high):
        raise rejected("bad_limit", f"limit must be a whole number from 1 to {high}")
    return int(raw)


def parse_idempotency_key(headers: Mapping[str, str]) -> str | None:
    raw = headers.get("Idempotency-Key")
    if raw is None:
        return None
    key = raw.strip().strip('"')  # the IETF draft sends it as a quoted string
    if not _IDEMPOTENCY_KEY.fullmatch(key):
        raise rejected(
            "bad_idempotency_key",
            f"Idempotency-Key must be 1-{MAX_IDEMPOTENCY_KEY_CHARS} visible ASCII characters",
        )
    return key


def idempotent_event_id(actor: str, store_namespace: str, purchase_id: str, key: str) -> str:
    """The same (admin, store, purchase, key) is the same event: a retry is a ledger duplicate."""
    material = json.dumps(["refundguard-admin-v1", actor, store_namespace, purchase_id, key])
    return "idem-" + hashlib.sha256(material.encode()).hexdigest()


def action_event(
    *,
    caller: Caller,
    action: Action,
    store: StoreName,
    environment: str,
    purchase_id: str,
    reason: str,
    key: str | None,
    now_ms: int,
    new_event_id: str,
    tenant: str | None = None,
) -> LedgerEvent:
    """A re-grant or revoke, made now by ``caller``; with a key, its id is derived from it.
    ``tenant``: whose a purchase never seen becomes (an existing one keeps its own)."""
    event_id = new_event_id
    if key is not None:
        event_id = idempotent_event_id(
            caller.email, namespace(store, environment), purchase_id, key
        )
    return LedgerEvent(
        store=store,
        purchase_id=purchase_id,
        event_id=event_id,
        source=Source.ADMIN,
        type=action.event_type,
        event_time_ms=now_ms,
        effect=action.status,
        environment=environment,
        actor=caller.email,
        reason=reason,
        details={"idempotency_key": key} if key is not None else {},
        tenant=tenant,
    )
