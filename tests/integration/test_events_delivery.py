"""The whole path with real processes: a running Play function publishes access events through a
proxy in front of the Pub/Sub emulator, which pushes them to the sample platform consumer (a
functions-framework process; token checks off, as the emulator signs nothing). Pub/Sub is cut while
refunds commit; once it is back, a redelivery publishes its own event and the sweep function
publishes the rest: the platform applies every change exactly once, none lost."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from refundguard import logs
from refundguard_dev.emulator import free_port, free_ports
from refundguard_dev.play_messages import PACKAGE, play_request
from refundguard_dev.processes import start_function, stop
from refundguard_dev.pubsub import EmulatorPubSub
from refundguard_dev.tcp_proxy import TcpProxy

pytestmark = [pytest.mark.emulator, pytest.mark.slow]

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "platform_consumer" / "main.py"


def _wait(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


@pytest.fixture
def stack(
    emulator_env: dict[str, str], pubsub_emulator: Any, tmp_path: Path
) -> Iterator[dict[str, Any]]:
    pubsub = EmulatorPubSub(pubsub_emulator.host, emulator_env["GOOGLE_CLOUD_PROJECT"])
    name = f"delivery-{free_port()}"
    topic = pubsub.topic(name)
    proxy = TcpProxy(pubsub_emulator.host)
    events_env = {**emulator_env, "EVENTS_TOPIC": topic, "PUBSUB_EMULATOR_HOST": proxy.address}
    ports = dict(zip(("play", "sweep", "consumer"), free_ports(3), strict=True))
    db = tmp_path / "platform.sqlite3"
    processes = [
        start_function(
            "receive",
            ports["consumer"],
            {"CONSUMER_VERIFY_TOKENS": "false", "CONSUMER_DB": str(db)},
            log_path=tmp_path / "consumer.log",
            source=EXAMPLE,
        ),
        start_function(
            "play_notifications",
            ports["play"],
            {**events_env, "PLAY_PACKAGE_NAMES": PACKAGE},
            log_path=tmp_path / "play.log",
        ),
        start_function(
            "events_sweep",
            ports["sweep"],
            {**events_env, "EVENTS_SWEEP_GRACE_SECONDS": "1"},
            log_path=tmp_path / "sweep.log",
        ),
    ]
    pubsub.subscription(
        f"{name}-push", name, push_endpoint=f"http://127.0.0.1:{ports['consumer']}/"
    )
    try:
        yield {
            "proxy": proxy,
            "play": f"http://127.0.0.1:{ports['play']}/",
            "sweep": f"http://127.0.0.1:{ports['sweep']}/",
            "db": db,
            "consumer_log": tmp_path / "consumer.log",
        }
    finally:
        stop(processes)
        proxy.close()


def _platform(db: Path) -> tuple[dict[str, tuple[int, str]], int]:
    """What the platform applied: entitlement -> (version, status), and how many event ids."""
    if not db.exists():
        return {}, 0
    with sqlite3.connect(db) as conn:
        applied = {
            e: (v, s)
            for e, v, s in conn.execute("SELECT entitlement, version, status FROM applied")
        }
        seen = conn.execute("SELECT count(*) FROM seen").fetchone()[0]
    return applied, seen


def test_through_a_pubsub_cut_the_platform_gets_every_change_once(stack: dict[str, Any]) -> None:
    tokens = [f"tok-cut-{i}" for i in range(4)]
    bodies = [play_request("voided", token, message_id=f"refund-{token}") for token in tokens]
    stack["proxy"].down()
    for body, headers in bodies:
        response = requests.post(stack["play"], data=body, headers=headers, timeout=30)
        assert response.status_code == 200 and response.json()["status"] == "revoked"
    time.sleep(1.5)
    assert _platform(stack["db"]) == ({}, 0)  # nothing reached the platform, all committed

    stack["proxy"].up()
    # Play redelivers the first refund: a duplicate, whose still-unpublished event goes out now.
    body, headers = bodies[0]
    response = requests.post(stack["play"], data=body, headers=headers, timeout=30)
    assert response.json()["effect"] == "duplicate"
    _wait(lambda: _platform(stack["db"])[1] == 1, 30, "the redelivered refund's event")

    swept = requests.post(stack["sweep"], timeout=60)
    assert swept.status_code == 200 and swept.json()["published"] == len(tokens) - 1
    expected = {f"google:{t}": (1, "revoked") for t in tokens}
    _wait(lambda: _platform(stack["db"]) == (expected, len(tokens)), 30, "every event")

    assert requests.post(stack["sweep"], timeout=60).json()["published"] == 0
    time.sleep(2)  # any late redelivery would show now
    assert _platform(stack["db"]) == (expected, len(tokens))
    log = stack["consumer_log"].read_text()
    for token in tokens:
        assert log.count(f"REVOKE google:token_hash={logs.token_hash(token)}: new -> revoked") == 1
        assert token not in log  # the consumer never prints a purchase token
