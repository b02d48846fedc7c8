"""Outbound calls against far ends that trickle (real sockets, the stand-ins' ``trickle_s``
faults): each store-API call, token fetch, JWKS fetch and publish ends at its deadline as a whole,
retryably (headers at once then one byte at a time, the headers themselves trickled, the token
endpoint trickled), and the client works again afterwards. And the ids a store URL is built from:
over arbitrary text, the path the stand-in receives has exactly the intended segments, or the id is
refused before anything is sent (``.``/``..`` never climb the API's path)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import unquote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from refundguard import oidc
from refundguard.appstore import verified
from refundguard.appstore.api import AppStoreApiClient
from refundguard.config import EventsSettings
from refundguard.errors import Kind
from refundguard.events import OutboxEntry
from refundguard.playstore.api import PlayApiClient
from refundguard.publisher import Publisher, PublishError
from refundguard.storeapi import StoreApiError, StoreRequestError, StoreUnavailableError
from refundguard_dev import play_api_data as data
from refundguard_dev.apple_pki import BUNDLE_ID
from refundguard_dev.fake_appstore_api import FakeAppStoreApi
from refundguard_dev.fake_http import FakeServer, Fault, Reply, Request
from refundguard_dev.fake_play_api import FakePlayApi
from support import VERIFIED, trusting_test_pki

PKG = data.PACKAGE
DEADLINE_S = 1.0
MARGIN_S = 2.0  # generous: a loaded machine; a trickle unbounded takes minutes
BOUND_S = 30.0  # the test fails, not hangs, when a call is not bounded
TRICKLE = 0.2  # seconds a byte: far below every read timeout (2 s)


def bounded(call: Callable[[], Any]) -> tuple[Any, BaseException | None, float]:
    """``call()`` in a thread: (its result, its exception, seconds it took); fails the test
    if it has not returned within ``BOUND_S``."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["result"] = call()
        except BaseException as exc:
            outcome["error"] = exc

    started = time.monotonic()
    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(BOUND_S)
    assert not worker.is_alive(), f"the call was still running after {BOUND_S} s"
    return outcome.get("result"), outcome.get("error"), time.monotonic() - started


def timed_out(call: Callable[[], Any], deadline_s: float = DEADLINE_S) -> StoreApiError:
    _, error, took = bounded(call)
    assert isinstance(error, StoreUnavailableError), error
    assert error.kind is Kind.TRANSIENT and error.code == "store_timeout", error.to_json()
    assert took < deadline_s + MARGIN_S
    return error


# ---------------------------------------------------------------------------------------- Play


@pytest.mark.parametrize(
    "fault",
    [
        Fault(trickle_s=TRICKLE),  # status and headers at once, then the body byte by byte
        Fault(trickle_s=TRICKLE, trickle_head=True),  # the status line and headers too
        Fault(status=503, trickle_s=TRICKLE),  # an error trickled
    ],
    ids=["body", "head", "error"],
)
def test_a_trickled_play_answer_ends_at_the_deadline(
    play_api: FakePlayApi, play_client: PlayApiClient, fault: Fault
) -> None:
    play_api.add_product_purchase(PKG, "tok-t", data.product_purchase())
    play_client.get_product_purchase(PKG, "tok-t")  # the token, fetched before
    play_api.fail_next(fault)
    timed_out(lambda: play_client.get_product_purchase(PKG, "tok-t", deadline_s=DEADLINE_S))
    assert play_client.get_product_purchase(PKG, "tok-t").purchase_state == "PURCHASED"


def test_a_trickled_token_endpoint_ends_at_the_call_deadline(
    play_api: FakePlayApi, play_client: PlayApiClient
) -> None:
    play_api.add_product_purchase(PKG, "tok-t", data.product_purchase())
    play_api.fail_next(Fault(target="token", trickle_s=TRICKLE))
    timed_out(lambda: play_client.get_product_purchase(PKG, "tok-t", deadline_s=DEADLINE_S))
    assert play_api.token_requests >= 1
    assert play_client.get_product_purchase(PKG, "tok-t").purchase_state == "PURCHASED"


def test_a_trickled_refund_review_is_not_resent(
    play_api: FakePlayApi, play_client: PlayApiClient
) -> None:
    from refundguard.playstore.api import RefundReview

    play_api.add_order(PKG, data.order("GPA.1-2-3", "tok-r"))
    play_api.add_pending_refund_review(PKG, "GPA.1-2-3", "pending-1")
    play_api.fail_next(Fault(trickle_s=TRICKLE, trickle_head=True, path=":reviewrefund"))
    review = RefundReview("pending-1", "NEUTRAL", sample_content_provided=False)
    timed_out(lambda: play_client.review_refund(PKG, "GPA.1-2-3", review, deadline_s=DEADLINE_S))
    assert play_api.count(":reviewrefund", "POST") == 1


# ---------------------------------------------------------------------------------------- Apple


def test_a_trickled_apple_answer_ends_at_the_deadline(
    appstore_sandbox: FakeAppStoreApi, make_apple_client: Callable[..., AppStoreApiClient]
) -> None:
    client = make_apple_client()
    payload = appstore_sandbox.add_transaction()
    read = verified.__dict__[VERIFIED["get_transaction_info"]]

    def call(**kw: Any) -> Any:
        return read(
            client,
            trusting_test_pki(),
            payload["transactionId"],
            bundle_id=BUNDLE_ID,
            environment="Sandbox",
            **kw,
        )

    appstore_sandbox.fail_next(Fault(trickle_s=TRICKLE))
    timed_out(lambda: call(deadline_s=DEADLINE_S))
    assert call().transaction_id == payload["transactionId"]


# ---------------------------------------------------------------------------------------- others


class _Fixed(FakeServer):
    """A server answering one fixed JSON document to every request."""

    def __init__(self, body: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__()
        self.body, self.headers = body, headers or {}
        self.connections = 0  # TCP connections accepted
        accept = self._httpd.process_request

        def counted(request: Any, address: Any) -> None:
            self.connections += 1
            accept(request, address)

        self._httpd.process_request = counted  # type: ignore[method-assign]

    def handle(self, request: Request) -> Reply:
        return Reply(200, self.body, dict(self.headers))


@pytest.fixture
def jwks_server() -> Iterator[_Fixed]:
    from refundguard_dev.id_tokens import TestSigner

    with _Fixed({"keys": [TestSigner("kid-trickle").jwk]}) as server:
        yield server


def test_a_trickled_jwks_fetch_ends_at_its_timeout(jwks_server: _Fixed) -> None:
    jwks_server.fail_next(Fault(trickle_s=TRICKLE))
    _, error, took = bounded(lambda: oidc.http_fetch(jwks_server.url, DEADLINE_S))
    assert error is not None and took < DEADLINE_S + MARGIN_S
    keys = oidc.KeySet(jwks_server.url, timeout_s=DEADLINE_S)
    jwks_server.fail_next(Fault(trickle_s=TRICKLE))
    _, error, took = bounded(lambda: keys.key("kid-trickle"))
    assert getattr(error, "code", None) == "keys_unavailable" and took < DEADLINE_S + MARGIN_S
    assert keys.key("kid-trickle") is not None  # the next fetch works


def test_a_trickled_publish_ends_within_its_timeouts() -> None:
    with _Fixed({"messageIds": ["1"]}) as pubsub:
        settings = EventsSettings("projects/p/topics/t", f"127.0.0.1:{pubsub.port}")
        publisher = Publisher(settings, timeout_s=(0.5, 0.5))
        entry = OutboxEntry("e1", "google:tok", 1, "ACTIVE", "google:tok", "{}", 1)
        pubsub.fail_next(Fault(trickle_s=TRICKLE))
        _, error, took = bounded(lambda: publisher.publish([entry]))
        assert isinstance(error, PublishError) and took < 1.0 + MARGIN_S
        assert publisher.publish([entry]) == ["1"]


def test_a_connection_back_in_its_pool_is_not_shut_by_the_deadline_of_its_last_call() -> None:
    from refundguard import outbound

    with _Fixed({"ok": True}) as server:
        session = outbound.session()
        with outbound.deadline(0.2) as guard:
            assert session.get(server.url, timeout=2).json() == {"ok": True}
            time.sleep(0.4)  # the deadline passes after the answer, the block still open
        assert guard.expired
        assert session.get(server.url, timeout=2).json() == {"ok": True}
        session.close()
        assert server.connections == 1  # the first connection, kept alive and reused


# ---------------------------------------------------------------------------------------- ids

TRICKY = st.one_of(
    st.text(max_size=12),
    st.text(alphabet="./%2eE?#;:~", min_size=1, max_size=6),
    st.sampled_from([".", "..", "...", "%2e", "%2E%2E", ".%2e", "a/../b", "../x", "/", "?x"]),
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(value=TRICKY)
def test_a_play_url_has_exactly_the_intended_segments_or_the_id_is_refused(
    play_api: FakePlayApi, play_client: PlayApiClient, value: str
) -> None:
    calls = {
        "/purchases/productsv2/tokens/": lambda: play_client.get_product_purchase(PKG, value),
        "/orders/": lambda: play_client.get_order(PKG, value),
    }
    for prefix, call in calls.items():
        sent_before = len(play_api.requests)
        try:
            call()
        except StoreRequestError as err:
            if err.code == "store_bad_argument":
                assert [r for r in play_api.requests[sent_before:] if r.path != "/token"] == []
                continue
        except StoreApiError:
            pass  # the stand-in does not know it: what matters is what was asked
        (sent,) = [r for r in play_api.requests[sent_before:] if r.path != "/token"]
        intended = f"/androidpublisher/v3/applications/{PKG}{prefix}".split("/")[:-1]
        assert [unquote(s) for s in sent.raw_path.split("/")] == [*intended, value]


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(value=TRICKY)
def test_an_apple_url_has_exactly_the_intended_segments_or_the_id_is_refused(
    appstore_sandbox: FakeAppStoreApi,
    make_apple_client: Callable[..., AppStoreApiClient],
    value: str,
) -> None:
    client = make_apple_client()
    sent_before = len(appstore_sandbox.requests)
    try:
        client.get_transaction_info(value, bundle_id=BUNDLE_ID, environment="Sandbox")
    except StoreRequestError as err:
        if err.code == "store_bad_argument":
            assert appstore_sandbox.requests[sent_before:] == []
            return
    except StoreApiError:
        pass
    (sent,) = appstore_sandbox.requests[sent_before:]
    segments = [unquote(s) for s in sent.raw_path.split("/")]
    assert segments == ["", "inApps", "v1", "transactions", value]


@pytest.mark.parametrize("value", [".", "..", "...."])
def test_dot_ids_are_refused_before_any_request(
    play_api: FakePlayApi, play_client: PlayApiClient, value: str
) -> None:
    for call in (
        lambda: play_client.get_product_purchase(PKG, value),
        lambda: play_client.get_subscription(PKG, value),
        lambda: play_client.get_order(PKG, value),
    ):
        with pytest.raises(StoreRequestError) as info:
            call()
        assert info.value.code == "store_bad_argument" and "dots" in info.value.message
    assert play_api.requests == []
