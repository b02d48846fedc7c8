"""Firestore unreachable: 5xx so Pub/Sub retries, nothing written, and the retry lands once."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from refundguard.model import Status, StoreName
from refundguard_dev.play_messages import PACKAGE, play_request, post, raw_push
from refundguard_dev.tcp_proxy import TcpProxy


def redeliver_until_acknowledged(
    client: Any, body: bytes, headers: dict[str, str] | None = None, *, attempts: int = 60
) -> Any:
    """What Pub/Sub does: retry with backoff until a 2xx. gRPC itself waits a little before it
    reconnects to a Firestore that came back, so the first tries may still answer 503."""
    for _ in range(attempts):
        response = post(client, body, headers)
        if response.status_code < 300:
            return response
        assert response.status_code == 503
        time.sleep(0.5)
    raise AssertionError("never acknowledged")


pytestmark = pytest.mark.emulator


@pytest.fixture
def proxy(emulator_env: dict[str, str]) -> Iterator[TcpProxy]:
    p = TcpProxy(emulator_env["FIRESTORE_EMULATOR_HOST"])
    yield p
    p.close()


@pytest.fixture
def client(store: Any, proxy: TcpProxy, make_client: Any) -> Any:
    # `store` is built first, so that it talks to the emulator directly, not through the proxy.
    return make_client(
        "play_notifications",
        PLAY_PACKAGE_NAMES=PACKAGE,
        FIRESTORE_EMULATOR_HOST=proxy.address,
        FIRESTORE_DEADLINE_SECONDS="2",
    )


def test_firestore_down_answers_503_writes_nothing_and_the_retry_lands_once(
    client: Any, proxy: TcpProxy, store: Any
) -> None:
    assert (
        post(
            client, *play_request("one-time", "tok-down", time_ms=1_000, notification_type=1)
        ).status_code
        == 200
    )
    void = play_request("voided", "tok-down", time_ms=2_000, message_id="m-void")

    proxy.down()
    response = post(client, *void)
    assert response.status_code == 503  # Pub/Sub retries with backoff
    assert response.get_json()["error"] == "firestore_unavailable"
    assert response.headers["Retry-After"]
    # `store` talks to the emulator directly: nothing of the failed attempt is there.
    assert store.get(StoreName.GOOGLE, "tok-down").status is Status.ACTIVE
    assert len(store.history(StoreName.GOOGLE, "tok-down")) == 1

    proxy.up()
    assert redeliver_until_acknowledged(client, *void).get_json()["effect"] == "applied"
    assert post(client, *void).get_json()["effect"] == "duplicate"
    assert store.get(StoreName.GOOGLE, "tok-down").status is Status.REVOKED
    assert len(store.history(StoreName.GOOGLE, "tok-down")) == 2


def test_poison_message_is_not_acknowledged_while_quarantine_cannot_be_written(
    client: Any, proxy: TcpProxy, store: Any
) -> None:
    proxy.down()
    response = post(client, raw_push("!!not base64!!", "poison-down"))
    assert response.status_code == 503  # kept by Pub/Sub until it can be quarantined
    proxy.up()
    response = redeliver_until_acknowledged(client, raw_push("!!not base64!!", "poison-down"))
    assert response.status_code == 200 and response.get_json()["effect"] == "quarantined"
    assert len(list(store._client.collection("quarantine").stream())) == 1
