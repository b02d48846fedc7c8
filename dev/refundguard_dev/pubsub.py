"""The few Pub/Sub REST calls the tests, the benchmarks and ``make run`` make on the Pub/Sub
emulator (it speaks REST on ``http://HOST/v1/...``): topics, pull and push subscriptions, publish,
pull. Never pointed anywhere but the emulator."""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass
from typing import Any

import requests


@dataclass(frozen=True)
class Received:
    """One pulled message: the CloudEvent refundguard published, decoded, and its envelope."""

    message_id: str
    ordering_key: str
    attributes: dict[str, str]
    event: dict[str, Any]

    @property
    def data(self) -> dict[str, Any]:
        return self.event["data"]


class EmulatorPubSub:
    def __init__(self, host: str, project: str) -> None:
        self.host = host
        self.project = project
        self.base = f"http://{host}/v1/projects/{project}"
        self._http = requests.Session()

    def topic_path(self, name: str) -> str:
        return f"projects/{self.project}/topics/{name}"

    def topic(self, name: str) -> str:
        response = self._http.put(f"{self.base}/topics/{name}", timeout=10)
        if response.status_code != 409:  # already there
            response.raise_for_status()
        return self.topic_path(name)

    def subscription(
        self,
        name: str,
        topic: str,
        *,
        push_endpoint: str | None = None,
        ordering: bool = True,
        ack_deadline_s: int = 10,
        dead_letter: tuple[str, int] | None = None,
    ) -> str:
        """``dead_letter``: (topic name, max delivery attempts) for a push subscription."""
        body: dict[str, Any] = {
            "topic": self.topic_path(topic),
            "ackDeadlineSeconds": ack_deadline_s,
            "enableMessageOrdering": ordering,
        }
        if push_endpoint:
            body["pushConfig"] = {"pushEndpoint": push_endpoint}
            body["retryPolicy"] = {"minimumBackoff": "1s", "maximumBackoff": "2s"}
        if dead_letter is not None:
            topic_name, attempts = dead_letter
            body["deadLetterPolicy"] = {
                "deadLetterTopic": self.topic_path(topic_name),
                "maxDeliveryAttempts": attempts,
            }
        response = self._http.put(f"{self.base}/subscriptions/{name}", json=body, timeout=10)
        if response.status_code != 409:
            response.raise_for_status()
        return f"projects/{self.project}/subscriptions/{name}"

    def publish(
        self, topic: str, payloads: list[bytes], attributes: dict[str, str] | None = None
    ) -> list[str]:
        messages: list[dict[str, Any]] = [{"data": base64.b64encode(p).decode()} for p in payloads]
        for message in messages if attributes else []:
            message["attributes"] = attributes
        response = self._http.post(
            f"{self.base}/topics/{topic}:publish", json={"messages": messages}, timeout=10
        )
        response.raise_for_status()
        return list(response.json()["messageIds"])

    def pull_raw(self, subscription: str, *, max_messages: int = 500) -> list[dict[str, Any]]:
        """What the subscription holds now, acknowledged, as Pub/Sub's ``message`` objects (any
        data, e.g. a dead-lettered work message)."""
        response = self._http.post(
            f"{self.base}/subscriptions/{subscription}:pull",
            json={"maxMessages": max_messages, "returnImmediately": True},
            timeout=10,
        )
        response.raise_for_status()
        received = response.json().get("receivedMessages", [])
        if received:
            ack = {"ackIds": [r["ackId"] for r in received]}
            self._http.post(
                f"{self.base}/subscriptions/{subscription}:acknowledge", json=ack, timeout=10
            ).raise_for_status()
        return [r["message"] for r in received]

    def pull(self, subscription: str, *, max_messages: int = 500) -> list[Received]:
        """What the subscription holds now, acknowledged (returns at once when empty)."""
        response = self._http.post(
            f"{self.base}/subscriptions/{subscription}:pull",
            json={"maxMessages": max_messages, "returnImmediately": True},
            timeout=10,
        )
        response.raise_for_status()
        received = response.json().get("receivedMessages", [])
        if received:
            ack = {"ackIds": [r["ackId"] for r in received]}
            self._http.post(
                f"{self.base}/subscriptions/{subscription}:acknowledge", json=ack, timeout=10
            ).raise_for_status()
        return [
            Received(
                message_id=r["message"]["messageId"],
                ordering_key=r["message"].get("orderingKey", ""),
                attributes=r["message"].get("attributes", {}),
                event=json.loads(base64.b64decode(r["message"].get("data", ""))),
            )
            for r in received
        ]

    def drain(
        self, subscription: str, *, settle_s: float = 0.5, timeout_s: float = 10
    ) -> list[Received]:
        """Everything published so far: pulls until nothing more arrives for ``settle_s``."""
        found: list[Received] = []
        deadline = time.monotonic() + timeout_s
        quiet_since = time.monotonic()
        while time.monotonic() < deadline:
            batch = self.pull(subscription)
            if batch:
                found.extend(batch)
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since >= settle_s:
                break
            else:
                time.sleep(0.05)
        return found
