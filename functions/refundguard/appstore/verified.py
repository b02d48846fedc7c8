"""The App Store Server API's signed answers, verified: the thin client (``api``) returns them as
Apple signed them, and these check each with an ``AppleVerifier`` (and that it is the app's and
environment's asked for) before anything of it is used. Signed data that fails is
``store_untrusted_answer``, and nothing of it is used."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ..storeapi import APPLE, MalformedAnswer, StoreBadAnswerError, bad_answer
from . import resources
from .verifier import PRODUCTION, AppleVerificationError, AppleVerifier

if TYPE_CHECKING:
    from .api import AppStoreApiClient


def transactions(
    verifier: AppleVerifier,
    operation: str,
    signed: Iterable[str],
    *,
    bundle_id: str,
    environment: str,
) -> tuple[resources.Transaction, ...]:
    """Each signed transaction verified and parsed, all of ``bundle_id`` in ``environment``."""
    out = []
    for token in signed:
        try:
            transaction = resources.parse_transaction(verifier.verify_jws(token))
        except AppleVerificationError as err:
            raise untrusted(operation, err.status.code) from None
        except MalformedAnswer as exc:
            raise bad_answer(APPLE, operation, str(exc)) from None
        if transaction.bundle_id != bundle_id or transaction.environment != environment:
            raise untrusted(operation, "inconsistent_payload")
        out.append(transaction)
    return tuple(out)


def look_up_order(
    api: AppStoreApiClient,
    verifier: AppleVerifier,
    order_id: str,
    *,
    bundle_id: str,
    deadline_s: float | None = None,
) -> resources.OrderLookup:
    """Look Up Order ID (``api.look_up_order``), its transactions verified."""
    envelope = api.look_up_order(order_id, bundle_id=bundle_id, deadline_s=deadline_s)
    found = transactions(
        verifier,
        "lookup",
        envelope.signed_transactions,
        bundle_id=bundle_id,
        environment=PRODUCTION,
    )
    return resources.OrderLookup(envelope.status == resources.ORDER_VALID, found)


def transaction_info(
    api: AppStoreApiClient,
    verifier: AppleVerifier,
    transaction_id: str,
    *,
    bundle_id: str,
    environment: str,
    deadline_s: float | None = None,
) -> resources.Transaction:
    """Get Transaction Info (``api.get_transaction_info``), verified, of that transaction."""
    signed = api.get_transaction_info(
        transaction_id, bundle_id=bundle_id, environment=environment, deadline_s=deadline_s
    )
    (transaction,) = transactions(
        verifier, "transactions.get", [signed], bundle_id=bundle_id, environment=environment
    )
    if transaction.transaction_id != transaction_id:
        raise untrusted("transactions.get", "another_transaction")
    return transaction


def transaction_history(
    api: AppStoreApiClient,
    verifier: AppleVerifier,
    transaction_id: str,
    *,
    bundle_id: str,
    environment: str,
    **query: Any,
) -> resources.TransactionHistoryPage:
    """One page of Get Transaction History (``api.get_transaction_history``), verified."""
    page = api.get_transaction_history(
        transaction_id, bundle_id=bundle_id, environment=environment, **query
    )
    found = transactions(
        verifier,
        "history",
        page.signed_transactions,
        bundle_id=bundle_id,
        environment=environment,
    )
    return resources.TransactionHistoryPage(found, page.revision, page.has_more)


def notification_history(
    api: AppStoreApiClient, verifier: AppleVerifier, **query: Any
) -> resources.NotificationHistoryPage:
    """One page of Get Notification History (``api.get_signed_notification_history``'s
    arguments), each notification verified; one that fails fails the page (the reconciler
    verifies one by one instead, and quarantines what fails)."""
    op = "notifications.history"
    page = api.get_signed_notification_history(**query)
    bundle_id, environment = query["bundle_id"], query["environment"]
    items = []
    for item in page.items:
        try:
            notification = verifier.verify_notification(item.signed_payload)
        except AppleVerificationError as err:
            raise untrusted(op, err.status.code) from None
        if notification.bundle_id != bundle_id or notification.environment != environment:
            raise untrusted(op, "inconsistent_payload")
        items.append(resources.NotificationHistoryItem(notification, item.send_attempts))
    return resources.NotificationHistoryPage(tuple(items), page.pagination_token, page.has_more)


def untrusted(operation: str, why: str) -> StoreBadAnswerError:
    return StoreBadAnswerError(
        f"apple API {operation} answered signed data that does not verify ({why}); nothing of it "
        "was used",
        store=APPLE,
        operation=operation,
        code="store_untrusted_answer",
        verification=why,
    )
