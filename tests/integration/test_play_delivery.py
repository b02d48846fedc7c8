"""The real delivery path: the Pub/Sub emulator pushes RTDN messages, published through its API,
to a running Play function (a functions-framework process) that writes to the Firestore emulator
through a proxy a test can cut. Through an outage, Pub/Sub's own redelivery brings every message to
exactly one history entry once Firestore is back."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from refundguard.model import Status, StoreName
from refundguard_dev.emulator import free_port
from refundguard_dev.play_messages import PACKAGE, developer_notification
from refundguard_dev.processes import start_function, stop
from refundguard_dev.tcp_proxy import TcpProxy

pytestmark = [pytest.mark.emulator, pytest.mark.slow]

PROJECT = "demo-refundguard-test"


class PubSub:
    """The few REST calls of the Pub/Sub API this test needs (the emulator speaks REST)."""

    def __init__(self, host: str) -> None:
        self.base = f"http://{host}/v1/projects/{PROJECT}"

    def topic(self, name: str) -> None:
        requests.put(f"{self.base}/topics/{name}", timeout=10).raise_for_status()

    def push_subscription(self, name: str, topic: str, endpoint: str) -> None:
        body = {
            "topic": f"projects/{PROJECT}/topics/{topic}",
            "pushConfig": {"pushEndpoint": endpoint},
            "ackDeadlineSeconds": 10,
            "retryPolicy": {"minimumBackoff": "1s", "maximumBackoff": "2s"},
        }
        requests.put(f"{self.base}/subscriptions/{name}", json=body, timeout=10).raise_for_status()

    def publish(self, topic: str, notes: list[dict[str, Any]]) -> list[str]:
        messages = [{"data": base64.b64encode(json.dumps(n).encode()).decode()} for n in notes]
        response = requests.post(
            f"{self.base}/topics/{topic}:publish", json={"messages": messages}, timeout=10
        )
        response.raise_for_status()
        return list(response.json()["messageIds"])


@pytest.fixture
def delivery(
    emulator_env: dict[str, str], pubsub_emulator: Any, tmp_path: Any
) -> Iterator[tuple[PubSub, TcpProxy, str]]:
    proxy = TcpProxy(emulator_env["FIRESTORE_EMULATOR_HOST"])
    port = free_port()
    env = {
        **emulator_env,
        "FIRESTORE_EMULATOR_HOST": proxy.address,
        "FIRESTORE_DEADLINE_SECONDS": "3",
        "PLAY_PACKAGE_NAMES": PACKAGE,
    }
    process = start_function("play_notifications", port, env, log_path=tmp_path / "play.log")
    pubsub = PubSub(pubsub_emulator.host)
    topic = f"rtdn-{port}"
    pubsub.topic(topic)
    pubsub.push_subscription(f"push-{port}", topic, f"http://127.0.0.1:{port}/")
    try:
        yield pubsub, proxy, topic
    finally:
        stop([process])
        proxy.close()


def _notes(tokens: list[str], kind: str = "voided") -> list[dict[str, Any]]:
    return [
        developer_notification(
            kind,
            package=PACKAGE,
            token=token,
            event_time_ms=1_700_000_000_000,
            notification_type=None,
            product="course.premium",
            order_id=f"GPA.{token}",
        )
        for token in tokens
    ]


def _wait(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.25)


def test_published_notifications_reach_the_ledger(delivery: Any, store: Any) -> None:
    pubsub, _, topic = delivery
    tokens = [f"tok-push-{i}" for i in range(3)]
    pubsub.publish(topic, _notes(tokens))

    def revoked() -> bool:
        entitlements = [store.get(StoreName.GOOGLE, t) for t in tokens]
        return all(e is not None and e.status is Status.REVOKED for e in entitlements)

    _wait(revoked, 60, "three refunds to be applied")


def test_through_a_firestore_outage_every_message_lands_exactly_once(
    delivery: Any, store: Any, tmp_path: Any
) -> None:
    pubsub, proxy, topic = delivery
    proxy.down()
    tokens = ["tok-outage-1", "tok-outage-2"]
    message_ids = pubsub.publish(topic, _notes(tokens))

    def refused(message_id: str) -> bool:
        lines = (tmp_path / "play.log").read_text().splitlines()
        return any(
            f'"message_id":"{message_id}"' in line and '"http_status":503' in line for line in lines
        )

    # Every message is pushed and refused (503) while Firestore is away. The emulator pushes two
    # at a time and retries a refused push after about 1 s and 3 s, then only after many minutes
    # (production Pub/Sub follows the subscription's retry policy), so Firestore comes back after
    # the first refusal of each.
    _wait(lambda: all(refused(m) for m in message_ids), 30, "a refused push of every message")
    assert all(store.get(StoreName.GOOGLE, t) is None for t in tokens)
    proxy.up()

    def all_applied() -> bool:
        return all(store.get(StoreName.GOOGLE, t) is not None for t in tokens)

    _wait(all_applied, 90, "every message to be applied after the outage")
    time.sleep(3)  # let any late redelivery arrive
    for token, message_id in zip(tokens, message_ids, strict=True):
        history = store.history(StoreName.GOOGLE, token)
        # One entry, keyed by the voided order (as the reconciler keys it), from that message.
        assert [h.event_id for h in history] == [f"void:GPA.{token}"], history
        assert history[0].details["messageId"] == message_id
        assert store.get(StoreName.GOOGLE, token).status is Status.REVOKED
