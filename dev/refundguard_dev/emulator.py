"""The Google Cloud SDK's Firestore emulator as a child process: find, start, wipe, stop."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from contextlib import ExitStack
from pathlib import Path
from typing import Any

DEFAULT_JAR = Path(
    "/usr/lib/google-cloud-sdk/platform/cloud-firestore-emulator/cloud-firestore-emulator.jar"
)
PUBSUB_LIB = Path("/usr/lib/google-cloud-sdk/platform/pubsub-emulator/lib")


def find_emulator_jar() -> Path | None:
    """``$FIRESTORE_EMULATOR_JAR``, the apt package's path, or the one beside ``gcloud``."""
    candidates = []
    if os.environ.get("FIRESTORE_EMULATOR_JAR"):
        candidates.append(Path(os.environ["FIRESTORE_EMULATOR_JAR"]))
    candidates.append(DEFAULT_JAR)
    gcloud = shutil.which("gcloud")
    if gcloud:
        sdk = Path(os.path.realpath(gcloud)).parent.parent
        candidates.append(sdk / "platform/cloud-firestore-emulator/cloud-firestore-emulator.jar")
    return next((c for c in candidates if c.is_file()), None)


def find_pubsub_jar() -> Path | None:
    """``$PUBSUB_EMULATOR_JAR``, the apt package's, or the one beside ``gcloud``."""
    dirs = [PUBSUB_LIB]
    gcloud = shutil.which("gcloud")
    if gcloud:
        dirs.append(Path(os.path.realpath(gcloud)).parent.parent / "platform/pubsub-emulator/lib")
    candidates = (
        [Path(os.environ["PUBSUB_EMULATOR_JAR"])] if "PUBSUB_EMULATOR_JAR" in os.environ else []
    )
    for folder in dirs:
        candidates += (
            sorted(folder.glob("cloud-pubsub-emulator-*-all.jar")) if folder.is_dir() else []
        )
    return next((c for c in candidates if c.is_file()), None)


def free_port() -> int:
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """``count`` distinct free ports: every socket is held open until all are chosen, so the
    kernel cannot hand the same port out twice (closing each before the next may)."""
    with ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in socks]


class FirestoreEmulator:
    def __init__(
        self, process: subprocess.Popen[bytes], host: str, log_path: Path, project: str
    ) -> None:
        self.process = process
        self.host = host
        self.project = project
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


def start_emulator(
    jar: Path,
    log_path: Path,
    *,
    project: str = "demo-refundguard-test",
    port: int | None = None,
    timeout_s: float = 90,
) -> FirestoreEmulator:
    port = port or free_port()
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
    _wait_ok(process, host, log_path, "Firestore", timeout_s)
    return FirestoreEmulator(process, host, log_path, project)


class PubSubEmulator:
    """The Pub/Sub emulator; its REST API is on ``http://{host}/v1/...``."""

    def __init__(self, process: subprocess.Popen[bytes], host: str, log_path: Path) -> None:
        self.process = process
        self.host = host
        self.log_path = log_path

    def env(self) -> dict[str, str]:
        return {"PUBSUB_EMULATOR_HOST": self.host}


def start_pubsub_emulator(
    jar: Path, log_path: Path, *, port: int | None = None, timeout_s: float = 90
) -> PubSubEmulator:
    port = port or free_port()
    host = f"127.0.0.1:{port}"
    log = open(log_path, "wb")  # noqa: SIM115 - kept open for the emulator's lifetime
    process = subprocess.Popen(
        [os.environ.get("JAVA", "java"), "-jar", str(jar), "--host=127.0.0.1", f"--port={port}"],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    _wait_ok(process, host, log_path, "Pub/Sub", timeout_s)
    return PubSubEmulator(process, host, log_path)


def _wait_ok(
    process: subprocess.Popen[bytes], host: str, log_path: Path, name: str, timeout_s: float
) -> None:
    try:
        _wait_ready(process, host, log_path, name, timeout_s)
    except BaseException:  # a signal while it starts (Ctrl-C, a test's SIGTERM): stop it too
        stop_process(process)
        raise


def _wait_ready(
    process: subprocess.Popen[bytes], host: str, log_path: Path, name: str, timeout_s: float
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the {name} emulator exited early; see {log_path}")
        try:
            if urllib.request.urlopen(f"http://{host}/", timeout=1).read().strip() == b"Ok":
                return
        except OSError:
            time.sleep(0.25)
    raise RuntimeError(f"the {name} emulator did not answer within {timeout_s}s; see {log_path}")


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


def bench_emulator() -> FirestoreEmulator:
    """A Firestore emulator for a benchmark, with its log in a temporary directory."""
    import tempfile

    jar = find_emulator_jar()
    if jar is None:
        raise SystemExit("Firestore emulator not found: install the Google Cloud SDK emulator")
    return start_emulator(jar, Path(tempfile.mkdtemp()) / "firestore.log")
