"""The Play function as a real ``functions-framework`` process over real HTTP, as `make run` runs
it, against the real Firestore emulator."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import pytest
from refundguard.model import Status, StoreName
from refundguard_dev.play_messages import PACKAGE, play_request
from refundguard_dev.processes import start_function, stop

pytestmark = [pytest.mark.emulator, pytest.mark.slow]


def test_voided_purchase_over_http_revokes_in_the_emulator(
    emulator_env: dict[str, str], store: Any, tmp_path: Any
) -> None:
    from refundguard_dev.emulator import free_port

    port = free_port()
    process = start_function(
        "play_notifications",
        port,
        {**emulator_env, "PLAY_PACKAGE_NAMES": PACKAGE},
        log_path=tmp_path / "play.log",
    )
    try:
        body, headers = play_request("voided", "tok-http", message_id="http-1")
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/", data=body, headers=headers, method="POST"
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status == 200
            assert json.loads(response.read())["effect"] == "applied"
    finally:
        stop([process])
    entitlement = store.get(StoreName.GOOGLE, "tok-http")
    assert entitlement is not None and entitlement.status is Status.REVOKED
    log_lines = [
        json.loads(line)
        for line in (tmp_path / "play.log").read_text().splitlines()
        if line.startswith("{")
    ]
    assert any(
        line.get("message_id") == "http-1" and line.get("effect") == "applied" for line in log_lines
    )
