"""Fixtures: the real Firestore emulator (started once per session, wiped between tests) and the
functions-framework app of each entry point, exactly as production loads it.

The emulator is the Google Cloud SDK's Java one. Where it cannot be found, the tests that need it
are skipped with a loud reason and the summary says so in capitals; with
REFUNDGUARD_REQUIRE_EMULATOR=1 (set by ``.ci/run``) a missing emulator is an error instead, so CI
can never pass without it.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
FUNCTIONS_DIR = ROOT / "functions"
MAIN_PY = FUNCTIONS_DIR / "main.py"
PROJECT = "demo-refundguard-test"
DEFAULT_JAR = Path(
    "/usr/lib/google-cloud-sdk/platform/cloud-firestore-emulator/cloud-firestore-emulator.jar"
)
_emulator_missing: list[str] = []


def find_emulator_jar() -> Path | None:
    candidates = []
    if os.environ.get("FIRESTORE_EMULATOR_JAR"):
        candidates.append(Path(os.environ["FIRESTORE_EMULATOR_JAR"]))
    candidates.append(DEFAULT_JAR)
    gcloud = shutil.which("gcloud")
    if gcloud:
        sdk = Path(os.path.realpath(gcloud)).parent.parent
        candidates.append(sdk / "platform/cloud-firestore-emulator/cloud-firestore-emulator.jar")
    return next((c for c in candidates if c.is_file()), None)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class FirestoreEmulator:
    def __init__(self, process: subprocess.Popen[bytes], host: str, log_path: Path) -> None:
        self.process = process
        self.host = host
        self.project = PROJECT
        self.log_path = log_path

    def wipe(self) -> None:
        url = (
            f"http://{self.host}/emulator/v1/projects/{self.project}/databases/(default)/documents"
        )
        urllib.request.urlopen(urllib.request.Request(url, method="DELETE"), timeout=30).read()

    def env(self) -> dict[str, str]:
        return {
            "FIRESTORE_EMULATOR_HOST": self.host,
            "GOOGLE_CLOUD_PROJECT": self.project,
            "FIRESTORE_DATABASE": "(default)",
        }


def start_emulator(jar: Path, log_path: Path, *, timeout_s: float = 90) -> FirestoreEmulator:
    port = free_port()
    host = f"127.0.0.1:{port}"
    java = os.environ.get("JAVA", "java")
    log = open(log_path, "wb")  # noqa: SIM115 - kept open for the emulator's lifetime
    process = subprocess.Popen(
        [
            java,
            "-Duser.language=en",
            "-cp",
            str(jar),
            "com.google.cloud.datastore.emulator.firestore.CloudFirestore",
            "start",
            "--host=127.0.0.1",
            f"--port={port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"Firestore emulator exited early; see {log_path}")
        try:
            if urllib.request.urlopen(f"http://{host}/", timeout=1).read().strip() == b"Ok":
                return FirestoreEmulator(process, host, log_path)
        except OSError:
            time.sleep(0.25)
    stop_process(process)
    raise RuntimeError(f"Firestore emulator did not answer within {timeout_s}s; see {log_path}")


def stop_process(process: subprocess.Popen[Any]) -> None:
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


@pytest.fixture(scope="session")
def firestore_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FirestoreEmulator]:
    jar = find_emulator_jar()
    if jar is None or shutil.which(os.environ.get("JAVA", "java")) is None:
        reason = (
            "FIRESTORE EMULATOR NOT FOUND: install the Google Cloud SDK's cloud-firestore-emulator "
            f"(expected {DEFAULT_JAR}) and Java; or set FIRESTORE_EMULATOR_JAR"
        )
        if os.environ.get("REFUNDGUARD_REQUIRE_EMULATOR") == "1":
            pytest.fail(reason + " (REFUNDGUARD_REQUIRE_EMULATOR=1)", pytrace=False)
        _emulator_missing.append(reason)
        pytest.skip(reason)
    emulator = start_emulator(jar, tmp_path_factory.mktemp("emulator") / "firestore.log")
    try:
        yield emulator
    finally:
        stop_process(emulator.process)


@pytest.fixture
def emulator_env(
    firestore_emulator: FirestoreEmulator, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    """A wiped emulator, and the process environment pointing the Firestore client at it."""
    firestore_emulator.wipe()
    env = firestore_emulator.env()
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


@pytest.fixture
def store(emulator_env: dict[str, str]) -> Any:
    from refundguard.store import EntitlementStore

    return EntitlementStore.from_env(emulator_env)


@pytest.fixture
def make_client(monkeypatch: pytest.MonkeyPatch) -> Callable[..., Any]:
    """``make_client("play_notifications", PLAY_PACKAGE_NAMES="...")``: a Flask test client of
    functions-framework's app for that entry point, loading ``functions/main.py`` as production
    does, with the given environment variables set (on top of ``emulator_env``)."""
    import functions_framework

    def build(target: str, **env: str) -> Any:
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        monkeypatch.delenv("FUNCTION_TARGET", raising=False)
        app = functions_framework.create_app(target=target, source=str(MAIN_PY))
        return app.test_client()

    return build


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _emulator_missing:
        skipped = len(terminalreporter.stats.get("skipped", []))
        terminalreporter.write_sep("!", "FIRESTORE EMULATOR MISSING", red=True, bold=True)
        terminalreporter.write_line(
            f"{skipped} test(s) were SKIPPED, the emulator-backed ones among them: this run does "
            "NOT show that refundguard works against Firestore.",
            red=True,
            bold=True,
        )
        terminalreporter.write_line(_emulator_missing[0], red=True)


sys.path.insert(0, str(FUNCTIONS_DIR))
