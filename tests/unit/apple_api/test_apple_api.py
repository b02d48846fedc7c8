"""The App Store Server API client through real HTTP against the local stand-in
(``fake_appstore_api``): API tokens the stand-in checks as Apple does, signed answers that go
through refundguard's real verifier, paging, errors, token caching, settings, and no secret in the
logs."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable

import pytest
from refundguard.appstore import verified
from refundguard.appstore.api import AppStoreApiClient, ConsumptionInfo
from refundguard.errors import Kind
from refundguard.storeapi import (
    CallPolicy,
    StoreAuthError,
    StoreBadAnswerError,
    StoreNotFoundError,
    StoreQuotaError,
    StoreRequestError,
    StoreUnavailableError,
)
from refundguard_dev.apple_pki import BUNDLE_ID, generate_pki
from refundguard_dev.fake_appstore_api import FakeAppStoreApi, Fault
from support import fails, sandbox_call, trusting_test_pki

TX = "2000000000000001"
OTHER_APP = "com.example.other"


# ---------------------------------------------------------------------------------------- reads


def test_transaction_info_is_verified_and_typed(
    sandbox: FakeAppStoreApi, client: AppStoreApiClient
) -> None:
    sandbox.add_transaction(
        revocationDate=1_780_000_100_000,
        revocationReason=0,
        revocationType="REFUND_PRORATED",
        revocationPercentage=40_000,
    )
    transaction = sandbox_call(client, "get_transaction_info", TX)
    assert transaction.transaction_id == TX and transaction.environment == "Sandbox"
    assert transaction.revoked and transaction.revocation_type == "REFUND_PRORATED"
    assert transaction.revocation_percentage == 40_000
    assert transaction.app_account_token == "5b1f6a0e-1a2b-4c3d-8e9f-0a1b2c3d4e5f"
    assert transaction.raw["storefront"] == "USA"


def test_transaction_history_pages_by_revision(
    sandbox: FakeAppStoreApi, client: AppStoreApiClient
) -> None:
    for i in range(1, 26):
        sandbox.add_transaction(
            transaction_id=str(int(TX) + i - 1),
            original_transaction_id=TX,
            signed_date=1_780_000_000_000 + i * 60_000,
            product_type="Auto-Renewable Subscription",
            **({"revocationDate": 1_780_000_000_000 + i * 60_000} if i == 25 else {}),
        )
    first = sandbox_call(client, "get_transaction_history", str(int(TX) + 7))
    assert len(first.transactions) == 20 and first.has_more and first.revision
    second = sandbox_call(client, "get_transaction_history", TX, revision=first.revision)
    assert len(second.transactions) == 5 and not second.has_more
    dates = [t.purchase_date_ms for t in first.transactions + second.transactions]
    assert dates == sorted(dates)
    newest = sandbox_call(client, "get_transaction_history", TX, descending=True)
    assert newest.transactions[0].transaction_id == str(int(TX) + 24)
    revoked = sandbox_call(client, "get_transaction_history", TX, revoked=True)
    assert [t.transaction_id for t in revoked.transactions] == [str(int(TX) + 24)]
    assert sandbox.requests[-1].query["sort"] == ["ASCENDING"]


def test_order_lookup_in_production(production: FakeAppStoreApi, client: AppStoreApiClient) -> None:
    production.add_transaction(transaction_id="3000000000000001")
    production.add_transaction(transaction_id="3000000000000002")
    production.add_order("MK5TTTVWJH", "3000000000000001", "3000000000000002")
    found = verified.look_up_order(client, trusting_test_pki(), "MK5TTTVWJH", bundle_id=BUNDLE_ID)
    assert found.valid and [t.transaction_id for t in found.transactions] == [
        "3000000000000001",
        "3000000000000002",
    ]
    assert {t.environment for t in found.transactions} == {"Production"}
    missing = verified.look_up_order(client, trusting_test_pki(), "NOTANORDER", bundle_id=BUNDLE_ID)
    assert not missing.valid and missing.transactions == ()


def test_notification_history_pages_and_is_verified(
    sandbox: FakeAppStoreApi, client: AppStoreApiClient
) -> None:
    sandbox.add_transaction()
    now = int(time.time() * 1000)
    for i in range(23):
        sandbox.add_notification("DID_RENEW", signed_date=now - 3_600_000 + i)
    sandbox.add_notification("REFUND", transaction_id=TX, results=["TIMED_OUT", "TIMED_OUT"])
    items, token, pages = [], None, 0
    while True:
        page = sandbox_call(
            client,
            "get_notification_history",
            start_date_ms=now - 86_400_000,
            end_date_ms=now,
            pagination_token=token,
        )
        items.extend(page.items)
        pages += 1
        token = page.pagination_token
        if not page.has_more:
            break
    assert pages == 2 and len(items) == 24
    failed = sandbox_call(
        client,
        "get_notification_history",
        start_date_ms=now - 86_400_000,
        end_date_ms=now,
        only_failures=True,
    )
    (item,) = failed.items
    assert item.notification.payload["notificationType"] == "REFUND"
    assert item.notification.transaction is not None
    assert item.notification.transaction["transactionId"] == TX
    assert [a.result for a in item.send_attempts] == ["TIMED_OUT", "TIMED_OUT"]
    error = fails(
        lambda: sandbox_call(
            client,
            "get_notification_history",
            start_date_ms=now - 40 * 86_400_000,
            end_date_ms=now,
        ),
        StoreRequestError,
    )
    assert error.details["reason"] == "4000012"  # 30 days back in Sandbox


def test_consumption_information_v2(sandbox: FakeAppStoreApi, client: AppStoreApiClient) -> None:
    sandbox.add_transaction(product_type="Consumable")
    info = ConsumptionInfo(True, "DELIVERED", False, 25_000, "GRANT_PRORATED")
    assert sandbox_call(client, "send_consumption_information", TX, info) is None
    assert sandbox.consumption[TX] == [info.to_json()]
    assert sandbox.requests[-1].method == "PUT"
    for bad in (
        ConsumptionInfo(False, "DELIVERED", False),
        ConsumptionInfo(True, "FINE", False),
        ConsumptionInfo(True, "DELIVERED", False, 100_001),
        ConsumptionInfo(True, "DELIVERED", False, refund_preference="GRANT"),
    ):
        error = fails(
            lambda b=bad: sandbox_call(client, "send_consumption_information", TX, b),
            StoreRequestError,
        )
        assert error.code == "store_bad_argument"
    assert len(sandbox.consumption[TX]) == 1


@pytest.mark.parametrize(
    ("product_type", "info", "code"),
    [
        ("Auto-Renewable Subscription", ("DELIVERED", 25_000, "GRANT_PRORATED"), "4000209"),
        ("Auto-Renewable Subscription", ("DELIVERED", 0, None), "4000209"),
        ("Consumable", ("UNDELIVERED_OTHER", 5_000, "GRANT_FULL"), "4000000"),
        ("Non-Consumable", ("DELIVERED", 0, "GRANT_PRORATED"), "4000000"),
        ("Non-Renewing Subscription", ("DELIVERED", 100_000, "GRANT_PRORATED"), "4000000"),
        ("Consumable", ("DELIVERED", None, "GRANT_PRORATED"), "4000000"),
        ("Auto-Renewable Subscription", ("DELIVERED", None, "GRANT_PRORATED"), None),
        ("Consumable", ("UNDELIVERED_QUALITY_ISSUE", 0, "GRANT_FULL"), None),
        ("Consumable", ("UNDELIVERED_QUALITY_ISSUE", None, "DECLINE"), None),
    ],
)
def test_the_stand_in_holds_apples_consumption_rules(
    sandbox: FakeAppStoreApi,
    client: AppStoreApiClient,
    product_type: str,
    info: tuple[str, int | None, str | None],
    code: str | None,
) -> None:
    """Each field valid on its own; together, Apple's documented rules refuse some (400 with
    Apple's code): what proves, in the reconciler's tests, that an accepted answer is valid."""
    sandbox.add_transaction(product_type=product_type)
    body = ConsumptionInfo(True, info[0], False, info[1], info[2])
    call = functools.partial(sandbox_call, client, "send_consumption_information", TX, body)
    if code is None:
        assert call() is None and sandbox.consumption[TX] == [body.to_json()]
        return
    error = fails(call, StoreRequestError)
    assert (error.code, error.details["reason"], error.details["upstream_status"]) == (
        "store_bad_request",
        code,
        400,
    )
    assert TX not in sandbox.consumption


# ---------------------------------------------------------------------------------------- trust


def test_answers_signed_by_another_pki_are_never_trusted(
    sandbox: FakeAppStoreApi, client: AppStoreApiClient
) -> None:
    sandbox.add_transaction()
    sandbox.add_notification("REFUND", transaction_id=TX)
    sandbox.pki = generate_pki("Impostor")
    error = fails(lambda: sandbox_call(client, "get_transaction_info", TX), StoreBadAnswerError)
    assert (error.code, error.kind) == ("store_untrusted_answer", Kind.TRANSIENT)
    assert error.details["verification"] == "invalid_chain"
    now = int(time.time() * 1000)
    history = lambda: sandbox_call(  # noqa: E731
        client, "get_notification_history", start_date_ms=now - 86_400_000, end_date_ms=now
    )
    assert fails(history, StoreBadAnswerError).code == "store_untrusted_answer"


def test_signed_data_of_another_environment_or_app_is_refused(
    sandbox: FakeAppStoreApi, client: AppStoreApiClient
) -> None:
    sandbox.add_transaction(environment="Production")
    error = fails(lambda: sandbox_call(client, "get_transaction_info", TX), StoreBadAnswerError)
    assert error.details["verification"] == "inconsistent_payload"
    sandbox.add_transaction(transaction_id="2000000000000009", bundle_id=OTHER_APP)
    sandbox.add_notification("REFUND", transaction_id="2000000000000009")
    now = int(time.time() * 1000)
    error = fails(  # the verifier is configured for BUNDLE_ID only
        lambda: verified.notification_history(
            client,
            trusting_test_pki(),
            bundle_id=OTHER_APP,
            environment="Sandbox",
            start_date_ms=now - 86_400_000,
            end_date_ms=now,
        ),
        StoreBadAnswerError,
    )
    assert error.details["verification"] == "invalid_app_identifier"


# ---------------------------------------------------------------------------------------- errors


def test_store_errors(sandbox: FakeAppStoreApi, client: AppStoreApiClient) -> None:
    missing = fails(lambda: sandbox_call(client, "get_transaction_info", TX), StoreNotFoundError)
    assert (missing.kind, missing.details["reason"]) == (Kind.NOT_FOUND, "4040010")
    invalid = fails(lambda: sandbox_call(client, "get_transaction_info", "abc"), StoreRequestError)
    assert invalid.details["reason"] == "4000006" and invalid.kind is Kind.REJECTED
    sandbox.add_transaction()
    sandbox.fail_next(Fault(status=429, retry_after="1"), Fault(status=500))
    started = time.monotonic()
    assert sandbox_call(client, "get_transaction_info", TX).transaction_id == TX
    assert time.monotonic() - started >= 1.0 and sandbox.count("/transactions/") == 5
    sandbox.fail_next(*[Fault(status=429)] * 4)
    assert fails(
        lambda: sandbox_call(client, "get_transaction_info", TX), StoreQuotaError
    ).retryable
    sandbox.fail_next(Fault(status=403))
    forbidden = fails(lambda: sandbox_call(client, "get_transaction_info", TX), StoreAuthError)
    assert forbidden.kind is Kind.FORBIDDEN and "App Store Connect" in forbidden.message
    sandbox.fail_next(Fault(body=b'{"signedTransactionInfo": 12}'))
    assert fails(lambda: sandbox_call(client, "get_transaction_info", TX), StoreBadAnswerError)


def test_apple_retryable_not_found_is_retried_then_transient(
    sandbox: FakeAppStoreApi, client: AppStoreApiClient
) -> None:
    sandbox.add_transaction()
    retryable = b'{"errorCode": 4040006, "errorMessage": "Original transaction id not found."}'
    sandbox.fail_next(Fault(status=404, body=retryable))
    assert sandbox_call(client, "get_transaction_history", TX).transactions
    sandbox.fail_next(*[Fault(status=404, body=retryable)] * 4)
    error = fails(lambda: sandbox_call(client, "get_transaction_history", TX), StoreNotFoundError)
    assert (error.code, error.kind) == ("store_not_found_yet", Kind.TRANSIENT)


def test_timeouts_and_unreachable_hosts(
    sandbox: FakeAppStoreApi, make_client: Callable[..., AppStoreApiClient]
) -> None:
    sandbox.add_transaction()
    client = make_client(policy=CallPolicy(read_timeout_s=0.3, attempts=2, base_backoff_s=0.01))
    sandbox.fail_next(Fault(delay_s=1.0), Fault(delay_s=1.0))
    error = fails(lambda: sandbox_call(client, "get_transaction_info", TX), StoreUnavailableError)
    assert error.code == "store_timeout"
    sandbox.stop()  # stopping twice (again at the fixture's end) is harmless
    error = fails(lambda: sandbox_call(client, "get_transaction_info", TX), StoreUnavailableError)
    assert error.code == "store_unreachable"
