"""App Store Server API answers: pure functions reading the JSON envelopes (``OrderLookupResponse``,
``TransactionInfoResponse``, ``HistoryResponse``, ``NotificationHistoryResponse``) into the signed
strings they carry, and the dataclasses built from *verified* payloads (``appstore.verified``).
``MalformedAnswer`` when a required field is missing or of the wrong type; unknown fields are
ignored, kept in ``raw``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..storeapi import MalformedAnswer
from ..storeapi import answer_flag as _bool
from ..storeapi import answer_int as _int
from ..storeapi import answer_object as _obj
from ..storeapi import answer_text as _str
from .verifier import VerifiedNotification

ORDER_VALID, ORDER_INVALID = 0, 1  # OrderLookupStatus
MAX_SIGNED_ITEMS = 1000  # Apple pages hold 20; anything far larger is not an answer of theirs


def _signed_list(doc: Mapping[str, Any], name: str) -> tuple[str, ...]:
    value = doc.get(name)
    if value is None:
        return ()
    if not isinstance(value, list) or len(value) > MAX_SIGNED_ITEMS:
        raise MalformedAnswer(f"{name} must be a list of signed strings")
    if not all(isinstance(item, str) and item for item in value):
        raise MalformedAnswer(f"{name} must hold signed strings")
    return tuple(value)


# ---------------------------------------------------------------------------------------- envelopes


@dataclass(frozen=True)
class SignedOrderLookup:
    status: int  # ORDER_VALID | ORDER_INVALID
    signed_transactions: tuple[str, ...]


def parse_order_lookup(doc: Any) -> SignedOrderLookup:
    doc = _obj(doc, "order lookup")
    status = _int(doc, "status", required=True)
    if status not in (ORDER_VALID, ORDER_INVALID):
        raise MalformedAnswer(f"status {status} is neither 0 (valid) nor 1 (invalid)")
    signed = _signed_list(doc, "signedTransactions")
    if status == ORDER_VALID and not signed:
        raise MalformedAnswer("a valid order came without signedTransactions")
    return SignedOrderLookup(status, signed if status == ORDER_VALID else ())


def parse_transaction_info(doc: Any) -> str:
    return _str(_obj(doc, "transaction info"), "signedTransactionInfo", required=True) or ""


@dataclass(frozen=True)
class SignedHistoryPage:
    signed_transactions: tuple[str, ...]
    revision: str | None
    has_more: bool


def parse_history(doc: Any) -> SignedHistoryPage:
    doc = _obj(doc, "transaction history")
    page = SignedHistoryPage(
        _signed_list(doc, "signedTransactions"), _str(doc, "revision"), _bool(doc, "hasMore")
    )
    if page.has_more and not page.revision:
        raise MalformedAnswer("hasMore without a revision")
    return page


@dataclass(frozen=True)
class SendAttempt:
    attempt_date_ms: int | None
    result: str | None  # SUCCESS, TIMED_OUT, ... (SendAttemptResult)


@dataclass(frozen=True)
class SignedNotificationItem:
    signed_payload: str
    send_attempts: tuple[SendAttempt, ...]


@dataclass(frozen=True)
class SignedNotificationPage:
    items: tuple[SignedNotificationItem, ...]
    pagination_token: str | None
    has_more: bool


def parse_notification_history(doc: Any) -> SignedNotificationPage:
    doc = _obj(doc, "notification history")
    raw_items = doc.get("notificationHistory") or []
    if not isinstance(raw_items, list) or len(raw_items) > MAX_SIGNED_ITEMS:
        raise MalformedAnswer("notificationHistory must be a list")
    items = []
    for raw in raw_items:
        item = _obj(raw, "notificationHistory[]")
        attempts_raw = item.get("sendAttempts") or []
        if not isinstance(attempts_raw, list):
            raise MalformedAnswer("sendAttempts must be a list")
        attempts = []
        for raw_attempt in attempts_raw:
            attempt = _obj(raw_attempt, "sendAttempts[]")
            attempts.append(
                SendAttempt(_int(attempt, "attemptDate"), _str(attempt, "sendAttemptResult"))
            )
        items.append(
            SignedNotificationItem(
                _str(item, "signedPayload", required=True) or "", tuple(attempts)
            )
        )
    page = SignedNotificationPage(tuple(items), _str(doc, "paginationToken"), _bool(doc, "hasMore"))
    if page.has_more and not page.pagination_token:
        raise MalformedAnswer("hasMore without a paginationToken")
    return page


def parse_test_notification_token(doc: Any) -> str:
    """``SendTestNotificationResponse``: its ``testNotificationToken``."""
    doc = _obj(doc, "test notification")
    return _str(doc, "testNotificationToken", required=True) or ""


@dataclass(frozen=True)
class TestNotificationStatus:
    """``CheckTestNotificationResponse``: the TEST notification Apple sent (signed, still to
    verify) and its send attempts (up to six), oldest first."""

    signed_payload: str | None
    send_attempts: tuple[SendAttempt, ...]

    @property
    def delivered(self) -> bool:
        return any(a.result == "SUCCESS" for a in self.send_attempts)


def parse_test_notification_status(doc: Any) -> TestNotificationStatus:
    doc = _obj(doc, "test notification status")
    raw = doc.get("sendAttempts") or []
    if not isinstance(raw, list) or len(raw) > MAX_SIGNED_ITEMS:
        raise MalformedAnswer("sendAttempts must be a list")
    attempts = []
    for item in raw:
        attempt = _obj(item, "sendAttempts[]")
        attempts.append(
            SendAttempt(_int(attempt, "attemptDate"), _str(attempt, "sendAttemptResult"))
        )
    return TestNotificationStatus(_str(doc, "signedPayload"), tuple(attempts))


# ---------------------------------------------------------------------------------------- verified


@dataclass(frozen=True)
class Transaction:
    """A verified ``JWSTransactionDecodedPayload``: the fields refundguard acts on."""

    transaction_id: str
    original_transaction_id: str
    bundle_id: str
    product_id: str
    environment: str
    type: str | None  # Auto-Renewable Subscription | Non-Consumable | Consumable | ...
    purchase_date_ms: int | None
    expires_date_ms: int | None
    app_account_token: str | None  # the buyer, when the app set it
    in_app_ownership_type: str | None  # PURCHASED | FAMILY_SHARED
    quantity: int | None
    revocation_date_ms: int | None
    revocation_reason: int | None  # 0 other, 1 app issue
    revocation_type: str | None  # REFUND_FULL | REFUND_PRORATED | FAMILY_REVOKE
    revocation_percentage: int | None  # milliunits, with REFUND_PRORATED
    signed_date_ms: int | None
    raw: Mapping[str, Any] = field(repr=False, compare=False)

    @property
    def revoked(self) -> bool:
        return self.revocation_date_ms is not None


def parse_transaction(payload: Any) -> Transaction:
    doc = _obj(payload, "transaction")
    return Transaction(
        transaction_id=_str(doc, "transactionId", required=True) or "",
        original_transaction_id=_str(doc, "originalTransactionId", required=True) or "",
        bundle_id=_str(doc, "bundleId", required=True) or "",
        product_id=_str(doc, "productId", required=True) or "",
        environment=_str(doc, "environment", required=True) or "",
        type=_str(doc, "type"),
        purchase_date_ms=_int(doc, "purchaseDate"),
        expires_date_ms=_int(doc, "expiresDate"),
        app_account_token=_str(doc, "appAccountToken"),
        in_app_ownership_type=_str(doc, "inAppOwnershipType"),
        quantity=_int(doc, "quantity"),
        revocation_date_ms=_int(doc, "revocationDate"),
        revocation_reason=_int(doc, "revocationReason"),
        revocation_type=_str(doc, "revocationType"),
        revocation_percentage=_int(doc, "revocationPercentage"),
        signed_date_ms=_int(doc, "signedDate"),
        raw=doc,
    )


@dataclass(frozen=True)
class OrderLookup:
    valid: bool
    transactions: tuple[Transaction, ...]


@dataclass(frozen=True)
class TransactionHistoryPage:
    transactions: tuple[Transaction, ...]
    revision: str | None  # pass back as ``revision`` for the next page
    has_more: bool


@dataclass(frozen=True)
class NotificationHistoryItem:
    notification: VerifiedNotification
    send_attempts: tuple[SendAttempt, ...]


@dataclass(frozen=True)
class NotificationHistoryPage:
    items: tuple[NotificationHistoryItem, ...]
    pagination_token: str | None
    has_more: bool
