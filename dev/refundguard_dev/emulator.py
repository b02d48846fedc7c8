"""The Google Cloud SDK's Firestore emulator as a child process: find, start, wipe, stop."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

DEFAULT_JAR = Path(
    "/usr/lib/google-cloud-sdk/platform/cloud-firestore-emulator/cloud-firestore-emulator.jar"
)


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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"Firestore emulator exited early; see {log_path}")
        try:
            if urllib.request.urlopen(f"http://{host}/", timeout=1).read().strip() == b"Ok":
                return FirestoreEmulator(process, host, log_path, project)
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


def bench_emulator() -> FirestoreEmulator:
    """A Firestore emulator for a benchmark, with its log in a temporary directory."""
    import tempfile

    jar = find_emulator_jar()
    if jar is None:
        raise SystemExit("Firestore emulator not found: install the Google Cloud SDK emulator")
    return start_emulator(jar, Path(tempfile.mkdtemp()) / "firestore.log")
