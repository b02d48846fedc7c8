"""Property-based tests of the pure pieces of the store-API clients: every JSON -> dataclass parser
answers a dataclass or ``MalformedAnswer`` (never another exception) for arbitrary JSON, reads the
documented shapes back exactly, ``Retry-After`` parsing never fails, and both stores' refund
answers take exactly the consumption shares they document."""

from __future__ import annotations

import contextlib
import datetime as dt
import email.utils
import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from refundguard.appstore import resources as apple
from refundguard.appstore.api import ConsumptionInfo
from refundguard.playstore import resources as play
from refundguard.playstore.api import RefundReview
from refundguard.storeapi import (
    MalformedAnswer,
    StoreRequestError,
    check_base_url,
    parse_retry_after,
    redact,
)
from refundguard_dev import play_api_data as data
from refundguard_dev.apple_pki import transaction_payload

# Field names the parsers look for, so that arbitrary objects reach deep into them.
KEYS = [
    "orderId", "purchaseToken", "state", "lineItems", "orders", "productId", "createTime",
    "lastEventTime", "orderHistory", "refundEvent", "eventTime", "refundReason",
    "oneTimePurchaseDetails", "subscriptionDetails", "paidAppDetails", "quantity",
    "purchaseStateContext", "purchaseState", "productLineItem", "productOfferDetails",
    "refundableQuantity", "consumptionState", "obfuscatedExternalAccountId",
    "purchaseCompletionTime", "testPurchaseContext", "subscriptionState", "expiryTime",
    "latestSuccessfulOrderId", "autoRenewingPlan", "externalAccountIdentifiers",
    "canceledStateContext", "userInitiatedCancellation", "startTime", "latestOrderId",
    "voidedPurchases", "voidedTimeMillis", "purchaseTimeMillis", "voidedSource", "voidedReason",
    "voidedQuantity", "tokenPagination", "nextPageToken", "status", "signedTransactions",
    "signedTransactionInfo", "revision", "hasMore", "notificationHistory", "signedPayload",
    "sendAttempts", "attemptDate", "sendAttemptResult", "paginationToken", "transactionId",
    "originalTransactionId", "bundleId", "environment", "revocationDate", "expiresDate",
]  # fmt: skip
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=12)
    | st.sampled_from(["2026-10-01T10:00:00Z", "123", "PURCHASED", "x.y", "", "-5"])
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=6), inner, max_size=6)
    ),
    max_leaves=30,
)

PARSERS: list[Callable[[Any], Any]] = [
    play.parse_order,
    play.parse_orders,
    play.parse_product_purchase,
    play.parse_subscription_purchase,
    play.parse_voided_page,
    apple.parse_order_lookup,
    apple.parse_transaction_info,
    apple.parse_history,
    apple.parse_notification_history,
    apple.parse_transaction,
]


@pytest.mark.parametrize("parse", PARSERS, ids=lambda p: p.__name__)
@settings(max_examples=300, deadline=None)
@given(document=json_values)
def test_arbitrary_json_parses_or_is_malformed(parse: Callable[[Any], Any], document: Any) -> None:
    json.dumps(document)  # the strategy only makes what json.loads can answer
    with contextlib.suppress(MalformedAnswer):
        parse(document)


times = st.integers(min_value=0, max_value=4_102_444_800)  # up to 2100
ids = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_", min_size=1, max_size=40)


def rfc3339(seconds: int) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).isoformat().replace("+00:00", "Z")


@settings(max_examples=100, deadline=None)
@given(order_id=ids, token=ids, state=st.sampled_from(sorted(play.ORDER_STATES)), refunded=times)
def test_orders_read_back(order_id: str, token: str, state: str, refunded: int) -> None:
    document = data.order(order_id, token, state=state, refunded_at=rfc3339(refunded))
    order = play.parse_order(json.loads(json.dumps(document)))
    assert (order.order_id, order.purchase_token, order.state) == (order_id, token, state)
    assert order.refund_time_ms == refunded * 1000
    assert play.parse_orders({"orders": [document]}) == (order,)


@settings(max_examples=100, deadline=None)
@given(
    state=st.sampled_from(["PURCHASED", "PENDING", "CANCELLED", "SOMETHING_NEW"]),
    quantity=st.integers(1, 1000),
    account=st.none() | ids,
)
def test_product_purchases_read_back(state: str, quantity: int, account: str | None) -> None:
    purchase = play.parse_product_purchase(
        data.product_purchase(state=state, quantity=quantity, account=account)
    )
    assert purchase.purchase_state == state and purchase.obfuscated_account_id == account
    assert purchase.line_items[0].quantity == quantity


@settings(max_examples=100, deadline=None)
@given(expiries=st.lists(st.tuples(times, ids), min_size=1, max_size=4))
def test_the_latest_order_is_the_line_item_expiring_last(expiries: list[tuple[int, str]]) -> None:
    document = data.subscription()
    document["lineItems"] = [
        {"productId": "p", "expiryTime": rfc3339(t), "latestSuccessfulOrderId": o}
        for t, o in expiries
    ]
    latest = max(expiries, key=lambda e: e[0])
    parsed = play.parse_subscription_purchase(document)
    assert parsed.line_items[-1].expiry_time_ms is not None
    assert parsed.latest_order_id in {o for t, o in expiries if t == latest[0]}


@settings(max_examples=100, deadline=None)
@given(
    voided=st.integers(0, 2**62),
    reason=st.integers(0, 20),
    source=st.integers(0, 5),
    as_string=st.booleans(),
)
def test_voided_rows_read_back(voided: int, reason: int, source: int, as_string: bool) -> None:
    row = data.voided("tok", "GPA.1", voided_ms=voided, reason=reason, source=source)
    if not as_string:
        row["voidedTimeMillis"] = voided
    page = play.parse_voided_page({"voidedPurchases": [row], "tokenPagination": {}})
    (parsed,) = page.rows
    assert parsed.voided_time_ms == voided and page.next_token is None
    assert parsed.voided_reason == play.VOIDED_REASONS.get(reason, f"reason_{reason}")
    assert parsed.voided_source == play.VOIDED_SOURCES.get(source, f"source_{source}")


@settings(max_examples=100, deadline=None)
@given(
    tx=st.text(alphabet="0123456789", min_size=1, max_size=19),
    revoked=st.none() | st.integers(0, 2**50),
    environment=st.sampled_from(["Sandbox", "Production"]),
)
def test_transactions_read_back(tx: str, revoked: int | None, environment: str) -> None:
    extra = {"revocationDate": revoked} if revoked is not None else {}
    payload = transaction_payload(original_transaction_id=tx, environment=environment, **extra)
    parsed = apple.parse_transaction(payload)
    assert (parsed.transaction_id, parsed.environment, parsed.revoked) == (
        tx,
        environment,
        revoked is not None,
    )


@pytest.mark.parametrize("value", ["--5", "²", "١٢٣", "-", "1e3", " 5", "99999999999999999999"])
def test_odd_int64_strings_are_malformed(value: str) -> None:
    row = {"purchaseToken": "t", "voidedTimeMillis": value}
    with pytest.raises(MalformedAnswer):
        play.parse_voided_page({"voidedPurchases": [row]})


def test_apple_envelopes() -> None:
    assert apple.parse_order_lookup({"status": 1}) == apple.SignedOrderLookup(1, ())
    with pytest.raises(MalformedAnswer):
        apple.parse_order_lookup({"status": 0, "signedTransactions": []})
    with pytest.raises(MalformedAnswer):
        apple.parse_history({"hasMore": True, "signedTransactions": []})
    page = apple.parse_notification_history(
        {"notificationHistory": [{"signedPayload": "a.b.c"}], "hasMore": False}
    )
    assert page.items[0].signed_payload == "a.b.c" and page.items[0].send_attempts == ()


# ---------------------------------------------------------------------------------------- helpers


@given(st.text(max_size=40))
def test_retry_after_never_fails(value: str) -> None:
    parsed = parse_retry_after(value)
    assert parsed is None or parsed >= 0


def test_retry_after_forms() -> None:
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    now = 1_800_000_000.0
    assert parse_retry_after(email.utils.formatdate(now + 30, usegmt=True), now=now) == 30.0
    assert parse_retry_after(email.utils.formatdate(now - 30, usegmt=True), now=now) == 0.0


def test_base_urls_and_redaction() -> None:
    assert check_base_url("https://api.storekit.apple.com/", setting="X") == (
        "https://api.storekit.apple.com"
    )
    assert check_base_url("http://[::1]:8080", setting="X") == "http://[::1]:8080"
    assert redact("token abc in abc", ["abc"]).count("abc") == 0


def _bodies(percent: Any) -> list[Callable[[], dict[str, Any]]]:
    return [
        ConsumptionInfo(True, "DELIVERED", False, percent).to_json,
        RefundReview("pending-token", "NEUTRAL", False, percent).to_json,
    ]


@given(st.integers(min_value=0, max_value=100_000))
def test_a_consumption_share_in_milliunits_is_sent_as_it_is(percent: int) -> None:
    apple, google = (body() for body in _bodies(percent))
    assert apple["consumptionPercentage"] == percent
    assert google["consumptionPercentageMilliunits"] == percent


@given(
    st.one_of(
        st.integers(max_value=-1),
        st.integers(min_value=100_001),
        st.booleans(),
        st.floats(min_value=0, max_value=100_000),
        st.text(max_size=6),
    )
)
def test_any_other_consumption_share_is_refused_before_sending(percent: Any) -> None:
    for body in _bodies(percent):
        with pytest.raises(StoreRequestError, match="consumption_percentage"):
            body()
