"""Fixtures of the integration layer (the real emulators): an admin's Google-signed ID tokens and
the local key server that publishes their keys, and an events topic on the Pub/Sub emulator that
sees every message a function publishes."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from typing import Any

import pytest
from refundguard_dev.emulator import PubSubEmulator
from refundguard_dev.id_tokens import CertServer, TestSigner, bearer, cert_server
from refundguard_dev.pubsub import EmulatorPubSub, Received
from support import check_event

ADMIN = "admin@example.com"


@pytest.fixture(scope="session")
def signer() -> TestSigner:
    """Signs ID tokens as Google would (its keys served by ``certs``)."""
    return TestSigner("key-admin")


@pytest.fixture(scope="session")
def certs(signer: TestSigner) -> Iterator[CertServer]:
    with cert_server(signer) as server:
        yield server


@pytest.fixture
def auth(signer: TestSigner) -> dict[str, str]:
    """The Authorization header of the allow-listed admin ``ADMIN``."""
    return bearer(signer.token(ADMIN))


class PlatformEvents:
    """A fresh events topic on the Pub/Sub emulator with a pull subscription that sees every
    message published to it (what a platform would receive), and the settings pointing at it.
    Every message received is checked against the published contract (``check_event``)."""

    def __init__(self, pubsub: EmulatorPubSub, name: str, host: str) -> None:
        self.pubsub = pubsub
        self.name = name
        self.topic = pubsub.topic(name)
        self.subscription = f"{name}-all"
        pubsub.subscription(self.subscription, name)
        self.env = {"EVENTS_TOPIC": self.topic, "PUBSUB_EMULATOR_HOST": host}

    def received(self, *, settle_s: float = 0.5) -> list[Received]:
        """Every message published since the last call (pulled and acknowledged), each checked
        against docs/events.schema.json."""
        received = self.pubsub.drain(self.subscription, settle_s=settle_s)
        for message in received:
            check_event(
                message.event, attributes=message.attributes, ordering_key=message.ordering_key
            )
        return received


_topics = itertools.count(1)


@pytest.fixture
def platform_events(
    emulator_env: dict[str, str], pubsub_emulator: PubSubEmulator, monkeypatch: pytest.MonkeyPatch
) -> PlatformEvents:
    """Events on: ``EVENTS_TOPIC`` (a topic of its own) and ``PUBSUB_EMULATOR_HOST`` set in the
    process environment, so functions built by ``make_client`` publish there."""
    if pubsub_emulator.process.poll() is not None:
        pytest.exit(f"THE PUB/SUB EMULATOR EXITED; its log: {pubsub_emulator.log_path}", 3)
    pubsub = EmulatorPubSub(pubsub_emulator.host, emulator_env["GOOGLE_CLOUD_PROJECT"])
    events = PlatformEvents(pubsub, f"events-{os.getpid()}-{next(_topics)}", pubsub_emulator.host)
    for name, value in events.env.items():
        monkeypatch.setenv(name, value)
    return events


@pytest.fixture
def events_store(emulator_env: dict[str, str], platform_events: PlatformEvents) -> Any:
    """An EntitlementStore with events on (publishing to ``platform_events``)."""
    from refundguard.store import EntitlementStore

    return EntitlementStore.from_env({**emulator_env, **platform_events.env})
