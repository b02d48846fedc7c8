"""How the store-API clients fail, through the Play client against the local stand-in: each status
a retry cannot fix, 429 with ``Retry-After`` (seconds and HTTP-date) then success or exhausted, 5xx,
timeouts, refused and dropped connections, the deadline, unusable and oversized answers."""

from __future__ import annotations

import email.utils
import time
from collections.abc import Callable

import pytest
from refundguard.errors import Kind
from refundguard.playstore.api import (
    PlayApiClient,
)
from refundguard.storeapi import (
    CallPolicy,
    StoreAuthError,
    StoreBadAnswerError,
    StoreConflictError,
    StoreNotFoundError,
    StoreQuotaError,
    StoreRequestError,
    StoreUnavailableError,
)
from refundguard_dev import play_api_data as data
from refundguard_dev.emulator import free_port
from refundguard_dev.fake_play_api import DEFAULT_ACCOUNT, FakePlayApi, Fault
from support import fails

PKG = data.PACKAGE
FAST = CallPolicy(read_timeout_s=2, base_backoff_s=0.01, max_wait_s=3)  # as conftest's


# ---------------------------------------------------------------------------------------- failures


@pytest.mark.parametrize(
    ("status", "error_type", "kind"),
    [
        (400, StoreRequestError, Kind.REJECTED),
        (403, StoreAuthError, Kind.FORBIDDEN),
        (404, StoreNotFoundError, Kind.NOT_FOUND),
        (409, StoreConflictError, Kind.CONFLICT),
        (410, StoreNotFoundError, Kind.NOT_FOUND),
    ],
)
def test_statuses_a_retry_cannot_fix_fail_at_once(
    api: FakePlayApi, client: PlayApiClient, status: int, error_type: type, kind: Kind
) -> None:
    api.add_order(PKG, data.order("GPA.1", "tok-1"))
    api.fail_next(Fault(status=status))
    error = fails(lambda: client.get_order(PKG, "GPA.1"), error_type)
    assert (error.kind, error.upstream_status) == (kind, status)
    assert not error.retryable
    assert api.count("/orders/") == 1


def test_forbidden_names_the_fix(api: FakePlayApi, client: PlayApiClient) -> None:
    error = fails(lambda: client.get_order("com.example.notgranted", "GPA.1"), StoreAuthError)
    assert error.code == "store_auth" and error.http_status == 403
    assert "View financial data" in error.message
    assert error.details["reason"] == "PERMISSION_DENIED"


def test_401_refreshes_the_token_then_names_the_fix(
    api: FakePlayApi, client: PlayApiClient
) -> None:
    api.add_order(PKG, data.order("GPA.1", "tok-1"))
    api.fail_next(Fault(status=401))
    assert client.get_order(PKG, "GPA.1").order_id == "GPA.1"  # google-auth refreshed once
    tokens = api.token_requests
    api.fail_next(*[Fault(status=401)] * 3)
    error = fails(lambda: client.get_order(PKG, "GPA.1"), StoreAuthError)
    assert error.upstream_status == 401 and "Play Console" in error.message
    assert api.token_requests == tokens + 2  # google-auth's two refresh attempts


def test_a_key_the_token_endpoint_refuses_is_an_auth_error(
    api: FakePlayApi, client: PlayApiClient
) -> None:
    from cryptography.hazmat.primitives.asymmetric import rsa

    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    api.service_accounts.keys[DEFAULT_ACCOUNT] = ("kid", other.public_key())
    error = fails(lambda: client.get_order(PKG, "GPA.1"), StoreAuthError)
    assert "invalid_grant" in error.message and error.kind is Kind.FORBIDDEN
    assert api.count("/orders/") == 0


def test_429_with_retry_after_seconds_then_success(api: FakePlayApi, client: PlayApiClient) -> None:
    api.add_order(PKG, data.order("GPA.1", "tok-1"))
    api.fail_next(Fault(status=429, retry_after="1"))
    started = time.monotonic()
    assert client.get_order(PKG, "GPA.1").purchase_token == "tok-1"
    assert 1.0 <= time.monotonic() - started < 2.5
    assert api.count("/orders/") == 2


def test_429_with_retry_after_http_date_then_success(
    api: FakePlayApi, client: PlayApiClient
) -> None:
    api.add_order(PKG, data.order("GPA.1", "tok-1"))
    when = email.utils.formatdate(time.time() + 2, usegmt=True)
    api.fail_next(Fault(status=429, retry_after=when))
    started = time.monotonic()
    client.get_order(PKG, "GPA.1")
    assert 0.5 <= time.monotonic() - started < 3.5


def test_429_asking_for_longer_than_the_call_can_wait_gives_up_at_once(
    api: FakePlayApi, client: PlayApiClient
) -> None:
    api.fail_next(Fault(status=429, retry_after="120"))
    error = fails(lambda: client.get_order(PKG, "GPA.1"), StoreQuotaError)
    assert error.kind is Kind.TRANSIENT and error.code == "store_quota"
    assert error.headers == {"Retry-After": "120"}  # passed on to whoever retries later
    assert api.count("/orders/") == 1


def test_429_exhausted_after_the_attempts(api: FakePlayApi, client: PlayApiClient) -> None:
    api.fail_next(*[Fault(status=429, retry_after="0")] * 4)
    error = fails(lambda: client.get_order(PKG, "GPA.1"), StoreQuotaError)
    assert error.retryable and api.count("/orders/") == FAST.attempts


def test_403_rate_limit_is_a_quota_error_not_an_auth_error(
    api: FakePlayApi, client: PlayApiClient
) -> None:
    api.add_order(PKG, data.order("GPA.1", "tok-1"))
    body = b'{"error":{"code":403,"message":"Rate","errors":[{"reason":"userRateLimitExceeded"}]}}'
    api.fail_next(Fault(status=403, body=body))
    assert client.get_order(PKG, "GPA.1").order_id == "GPA.1"


@pytest.mark.parametrize("status", [500, 503])
def test_5xx_then_success(api: FakePlayApi, client: PlayApiClient, status: int) -> None:
    api.add_order(PKG, data.order("GPA.1", "tok-1"))
    api.fail_next(Fault(status=status))
    assert client.get_order(PKG, "GPA.1").order_id == "GPA.1"
    assert api.count("/orders/") == 2


def test_5xx_exhausted_is_transient(api: FakePlayApi, client: PlayApiClient) -> None:
    api.fail_next(*[Fault(status=503, retry_after="0")] * 4)
    error = fails(lambda: client.get_order(PKG, "GPA.1"), StoreUnavailableError)
    assert (error.kind, error.code, error.upstream_status) == (
        Kind.TRANSIENT,
        "store_unavailable",
        503,
    )


def test_timeouts_are_retried_then_transient(
    api: FakePlayApi, make_client: Callable[..., PlayApiClient]
) -> None:
    api.add_order(PKG, data.order("GPA.1", "tok-1"))
    client = make_client(policy=CallPolicy(read_timeout_s=0.3, attempts=2, base_backoff_s=0.01))
    client.get_order(PKG, "GPA.1")  # the token first, so that only the API call is slow
    api.fail_next(Fault(delay_s=1.0))
    assert client.get_order(PKG, "GPA.1").order_id == "GPA.1"  # the retry answered in time
    api.fail_next(Fault(delay_s=1.0), Fault(delay_s=1.0))
    error = fails(lambda: client.get_order(PKG, "GPA.1"), StoreUnavailableError)
    assert error.code == "store_timeout" and error.retryable


def test_the_deadline_bounds_the_whole_call(api: FakePlayApi, client: PlayApiClient) -> None:
    api.fail_next(*[Fault(status=503, retry_after="1")] * 4)
    started = time.monotonic()
    fails(lambda: client.get_order(PKG, "GPA.1", deadline_s=1.5), StoreUnavailableError)
    assert time.monotonic() - started < 1.5


def test_connection_refused_and_dropped_connections(
    api: FakePlayApi, client: PlayApiClient, make_client: Callable[..., PlayApiClient]
) -> None:
    refused = make_client(f"http://127.0.0.1:{free_port()}")
    error = fails(lambda: refused.get_order(PKG, "GPA.1"), StoreUnavailableError)
    assert error.code == "store_unreachable" and error.retryable
    api.add_order(PKG, data.order("GPA.1", "tok-1"))
    api.fail_next(Fault(drop=True))
    assert client.get_order(PKG, "GPA.1").order_id == "GPA.1"


@pytest.mark.parametrize(
    "fault",
    [
        Fault(body=b"<html>502 Bad Gateway</html>", content_type="text/html"),
        Fault(body=b'{"orderId": "GPA.1", "state": "PROCESSED"'),
        Fault(body=b'["not", "an", "object"]'),
        Fault(body=b'{"orderId": "GPA.1", "state": "PROCESSED"}'),  # no purchaseToken
        Fault(body=b'{"orderId": 7, "purchaseToken": "t", "state": "PROCESSED"}'),
    ],
)
def test_unusable_answers_are_transient_and_not_retried(
    api: FakePlayApi, client: PlayApiClient, fault: Fault
) -> None:
    api.fail_next(fault)
    error = fails(lambda: client.get_order(PKG, "GPA.1"), StoreBadAnswerError)
    assert (error.kind, error.code) == (Kind.TRANSIENT, "store_bad_answer")
    assert api.count("/orders/") == 1


@pytest.mark.parametrize("chunked", [False, True])
def test_oversized_answers_are_refused(
    api: FakePlayApi, make_client: Callable[..., PlayApiClient], chunked: bool
) -> None:
    client = make_client(max_response_bytes=100_000)
    api.fail_next(Fault(oversize=300_000, chunked=chunked))
    error = fails(lambda: client.get_order(PKG, "GPA.1"), StoreBadAnswerError)
    assert "100000 bytes" in error.message


def test_bad_arguments_never_reach_google(api: FakePlayApi, client: PlayApiClient) -> None:
    for call in (
        lambda: client.get_order("not a package", "GPA.1"),
        lambda: client.get_order(PKG, "GPA 1"),
        lambda: client.get_product_purchase(PKG, ""),
        lambda: client.batch_get_orders(PKG, []),
        lambda: client.list_voided_purchases(PKG, max_results=1001),
    ):
        assert fails(call, StoreRequestError).code == "store_bad_argument"
    assert len(api.requests) == 0
