"""The Play Developer API client through real HTTP against the local stand-in (``fake_play_api``):
google-auth's real service-account token flow, the reads refundguard makes, voided-purchase paging,
refund reviews, every failure a call can meet, token caching, and no secret in the logs."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from google.auth import _helpers
from google.oauth2 import service_account
from refundguard import config
from refundguard.config import Settings
from refundguard.errors import Kind
from refundguard.playstore.api import (
    SCOPE,
    PlayApiClient,
    PlayApiSettings,
    RefundReview,
    read_play_api_settings,
)
from refundguard.storeapi import (
    CallPolicy,
    StoreApiError,
    StoreConflictError,
    StoreNotFoundError,
    StoreRequestError,
    StoreUnavailableError,
)
from refundguard_dev import play_api_data as data
from refundguard_dev.emulator import free_port
from refundguard_dev.fake_play_api import FakePlayApi, Fault
from support import fails

PKG = data.PACKAGE
FAST = CallPolicy(read_timeout_s=2, base_backoff_s=0.01, max_wait_s=3)  # as conftest's


# ---------------------------------------------------------------------------------------- reads


@pytest.mark.parametrize(
    ("state", "order_id", "completed"),
    [("PURCHASED", "GPA.1", True), ("PENDING", None, False), ("CANCELLED", None, False)],
)
def test_one_time_purchase_states(
    api: FakePlayApi, client: PlayApiClient, state: str, order_id: str | None, completed: bool
) -> None:
    api.add_product_purchase(PKG, "tok-1", data.product_purchase(state=state, order_id=order_id))
    purchase = client.get_product_purchase(PKG, "tok-1")
    assert purchase.purchase_state == state
    assert purchase.order_id == order_id
    assert purchase.obfuscated_account_id == data.ACCOUNT
    assert purchase.product_ids == (data.PRODUCT,)
    assert (purchase.purchase_completion_time_ms is not None) is completed
    assert purchase.raw["purchaseStateContext"]["purchaseState"] == state


def test_partially_refunded_multi_quantity_purchase_keeps_the_refundable_quantity(
    api: FakePlayApi, client: PlayApiClient
) -> None:
    api.add_product_purchase(PKG, "tok-q", data.product_purchase(quantity=5, refundable=3))
    (item,) = client.get_product_purchase(PKG, "tok-q").line_items
    assert (item.quantity, item.refundable_quantity) == (5, 3)


def test_subscription_latest_order_state_and_buyer(api: FakePlayApi, client: PlayApiClient) -> None:
    api.add_subscription(PKG, "sub-1", data.subscription(latest_order_id="GPA.9..3"))
    api.add_subscription(
        PKG, "sub-2", data.subscription(state="SUBSCRIPTION_STATE_CANCELED", canceled_by="user")
    )
    api.add_subscription(PKG, "sub-3", data.subscription(state="SUBSCRIPTION_STATE_EXPIRED"))
    active = client.get_subscription(PKG, "sub-1")
    assert active.state == "SUBSCRIPTION_STATE_ACTIVE" and active.grants_access
    assert active.latest_order_id == "GPA.9..3"
    assert active.obfuscated_account_id == data.ACCOUNT
    assert active.line_items[0].auto_renewing
    canceled = client.get_subscription(PKG, "sub-2")
    assert canceled.canceled_by == "user" and canceled.grants_access  # until expiry
    assert not client.get_subscription(PKG, "sub-3").grants_access


def test_order_lookup_leads_to_the_purchase_token_and_the_refund(
    api: FakePlayApi, client: PlayApiClient
) -> None:
    api.add_order(PKG, data.order("GPA.1", "tok-1"))
    api.add_order(
        PKG,
        data.order(
            "GPA.2",
            "tok-2",
            state="REFUNDED",
            subscription=True,
            refunded_at="2026-10-02T08:00:00Z",
            refund_reason="CHARGEBACK",
        ),
    )
    order = client.get_order(PKG, "GPA.1")
    assert (order.purchase_token, order.state, order.refunded) == ("tok-1", "PROCESSED", False)
    assert order.line_items[0].kind == "one_time" and order.line_items[0].quantity == 1
    both = client.batch_get_orders(PKG, ["GPA.1", "GPA.2", "GPA.1"])
    assert [o.order_id for o in both] == ["GPA.1", "GPA.2"]
    refunded = both[1]
    assert refunded.refunded and refunded.refund_reason == "CHARGEBACK"
    assert refunded.refund_time_ms == 1_790_928_000_000
    assert refunded.line_items[0].kind == "subscription"
    assert api.requests[-1].query["orderIds"] == ["GPA.1", "GPA.2"]
    error = fails(lambda: client.batch_get_orders(PKG, ["GPA.1", "GPA.404"]), StoreNotFoundError)
    assert error.kind is Kind.NOT_FOUND and error.upstream_status == 404


def test_voided_purchases_page_by_token(api: FakePlayApi, client: PlayApiClient) -> None:
    now = int(time.time() * 1000)
    for i in range(5):
        api.add_voided(PKG, data.voided(f"tok-{i}", f"GPA.{i}", voided_ms=now - 60_000 * i))
    api.add_voided(PKG, data.voided("sub", "GPA.s..0", voided_ms=now), subscription=True)
    api.add_voided(PKG, data.voided("q", "GPA.q", voided_ms=now, quantity=2, reason=7, source=2))
    rows, token, pages = [], None, 0
    while True:
        page = client.list_voided_purchases(
            PKG, start_time_ms=now - 3_600_000, max_results=3, page_token=token
        )
        rows.extend(page.rows)
        pages += 1
        token = page.next_token
        if token is None:
            break
    assert pages == 3 and len(rows) == 7
    assert api.requests[-1].query["type"] == ["1"]
    assert api.requests[-1].query["includeQuantityBasedPartialRefund"] == ["true"]
    partial = next(r for r in rows if r.purchase_token == "q")
    assert (partial.voided_quantity, partial.voided_reason, partial.voided_source) == (
        2,
        "chargeback",
        "google",
    )
    one_time_full = client.list_voided_purchases(
        PKG, include_subscriptions=False, include_partial_refunds=False
    )
    assert {r.purchase_token for r in one_time_full.rows} == {f"tok-{i}" for i in range(5)}
    assert all(r.voided_time_ms <= now for r in rows)


def test_voided_purchases_more_than_30_days_back_is_refused(client: PlayApiClient) -> None:
    old = int(time.time() * 1000) - 40 * 86_400_000
    error = fails(lambda: client.list_voided_purchases(PKG, start_time_ms=old), StoreRequestError)
    assert error.kind is Kind.REJECTED and error.upstream_status == 400


def test_refund_review_first_answer_counts_and_is_never_resent(
    api: FakePlayApi, client: PlayApiClient
) -> None:
    api.add_pending_refund_review(PKG, "GPA.7", "pending-secret-1")
    review = RefundReview("pending-secret-1", "DECLINE", True, 45_200, [{"ipAddress": "192.0.2.1"}])
    client.review_refund(PKG, "GPA.7", review)
    assert api.reviews[(PKG, "GPA.7")]["consumptionPercentageMilliunits"] == 45_200
    error = fails(lambda: client.review_refund(PKG, "GPA.7", review), StoreConflictError)
    assert error.kind is Kind.CONFLICT
    api.add_pending_refund_review(PKG, "GPA.8", "pending-secret-2")
    api.fail_next(Fault(status=503))
    error = fails(
        lambda: client.review_refund(
            PKG, "GPA.8", RefundReview("pending-secret-2", "NEUTRAL", False)
        ),
        StoreUnavailableError,
    )
    assert api.count(":reviewrefund", "POST") == 3  # not retried: it may have been applied
    assert "pending-secret-2" not in str(error) and "pending-secret-2" not in str(error.details)
    with pytest.raises(StoreRequestError, match="refund_preference"):
        RefundReview("x", "MAYBE", True).to_json()


# ---------------------------------------------------------------------------------------- tokens


def test_the_stand_in_checks_tokens_as_google_does(api: FakePlayApi, tmp_path: Path) -> None:
    import requests
    from google.auth.exceptions import RefreshError
    from google.auth.transport.requests import Request

    key_file = api.write_service_account_key(tmp_path / "sa.json")
    wrong_scope = service_account.Credentials.from_service_account_file(
        str(key_file), scopes=["https://www.googleapis.com/auth/made-up"]
    )
    with pytest.raises(RefreshError, match="invalid_scope"):
        wrong_scope.refresh(Request())
    url = f"{api.url}/androidpublisher/v3/applications/{PKG}/orders/GPA.1"
    # A token for another API (cloud-platform, IAM's) does not call the Play API.
    other = service_account.Credentials.from_service_account_file(
        str(key_file), scopes=["https://www.googleapis.com/auth/cloud-platform"]
    )
    other.refresh(Request())
    answer = requests.get(url, headers={"Authorization": f"Bearer {other.token}"}, timeout=5)
    assert answer.status_code == 403 and "insufficient authentication scopes" in answer.text
    good = service_account.Credentials.from_service_account_file(str(key_file), scopes=[SCOPE])
    good.refresh(Request())
    for headers in ({}, {"Authorization": "Bearer ya29.made-up"}):
        assert requests.get(url, headers=headers, timeout=5).status_code == 401
    api.access_tokens[good.token] = time.time() - 1  # expired
    answer = requests.get(url, headers={"Authorization": f"Bearer {good.token}"}, timeout=5)
    assert answer.status_code == 401
    assert answer.json()["error"]["status"] == "UNAUTHENTICATED"


def test_one_token_exchange_serves_many_calls(api: FakePlayApi, client: PlayApiClient) -> None:
    api.add_order(PKG, data.order("GPA.1", "tok-1"))
    api.add_product_purchase(PKG, "tok-1", data.product_purchase())
    for _ in range(3):
        client.get_order(PKG, "GPA.1")
        client.get_product_purchase(PKG, "tok-1")
    assert api.token_requests == 1 and api.count(PKG) == 6


def test_the_token_is_refreshed_shortly_before_it_expires(
    api: FakePlayApi, client: PlayApiClient
) -> None:
    api.token_lifetime_s = int(_helpers.REFRESH_THRESHOLD.total_seconds()) + 2
    api.add_order(PKG, data.order("GPA.1", "tok-1"))
    client.get_order(PKG, "GPA.1")
    client.get_order(PKG, "GPA.1")
    assert api.token_requests == 1
    time.sleep(2.5)  # now inside google-auth's refresh window, still before expiry
    client.get_order(PKG, "GPA.1")
    assert api.token_requests == 2


def test_no_secret_reaches_the_logs_or_the_errors(
    api: FakePlayApi,
    client: PlayApiClient,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    token = "purchase-token-SECRET-0123456789"
    api.add_product_purchase(PKG, token, data.product_purchase())
    api.fail_next(Fault(status=503), Fault(status=429, retry_after="0"))
    client.get_product_purchase(PKG, token)
    api.fail_next(
        *[Fault(status=500, body=f'{{"error":{{"message":"bad {token}"}}}}'.encode())] * 4
    )
    error = fails(lambda: client.get_product_purchase(PKG, token), StoreUnavailableError)
    error_texts = [str(error), repr(error.details), error.message]
    refused = PlayApiClient(
        PlayApiSettings(f"http://127.0.0.1:{free_port()}"),
        credentials=client.transport.session.credentials,
        policy=FAST,
    )
    error_texts.append(str(fails(lambda: refused.get_subscription(PKG, token), StoreApiError)))
    logged = capsys.readouterr().out + "\n".join(error_texts)
    assert "store API call failed; retrying" in logged
    assert token not in logged
    for access_token in api.access_tokens:
        assert access_token not in logged
    private_key = (tmp_path / "sa.json").read_text()
    assert "PRIVATE KEY" not in logged and private_key[200:260] not in logged


# ---------------------------------------------------------------------------------------- settings


def read(**env: str) -> tuple[PlayApiSettings | None, list[str]]:
    settings = Settings(env)
    return read_play_api_settings(settings), settings.problems


def test_settings() -> None:
    assert config.PLAY_API_ENV == (
        "PLAY_DEVELOPER_API",
        "PLAY_API_BASE_URL",
        "PLAY_API_SERVICE_ACCOUNT",
    )
    assert read() == (None, [])
    assert read(PLAY_DEVELOPER_API="on") == (PlayApiSettings(), [])
    assert read(PLAY_DEVELOPER_API="ON", PLAY_API_BASE_URL="http://127.0.0.1:8085/")[0] == (
        PlayApiSettings("http://127.0.0.1:8085")
    )
    assert read(PLAY_DEVELOPER_API="yes")[1] == ["PLAY_DEVELOPER_API must be on or off, not 'yes'"]
    for url in ("http://androidpublisher.googleapis.com", "ftp://x", "https://h/v3", "nonsense"):
        settings, problems = read(PLAY_DEVELOPER_API="on", PLAY_API_BASE_URL=url)
        assert settings is None and len(problems) == 1 and "PLAY_API_BASE_URL" in problems[0]
