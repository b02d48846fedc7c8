#!/usr/bin/env python3
"""``make run``: the Firestore emulator and the three functions, locally, until Ctrl-C.

Ports (override with environment variables of the same names):

    FIRESTORE_PORT=8090  the Firestore emulator (http://127.0.0.1:8090)
    PLAY_PORT=8081       play_notifications
    APPLE_PORT=8082      apple_notifications
    ADMIN_PORT=8083      admin

Each function runs in its own ``functions-framework`` process, exactly as Cloud Functions runs it,
with the environment printed at start. Ctrl-C (or SIGTERM) stops everything this script started.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUN_DIR = ROOT / ".run"
FUNCTIONS = ROOT / "functions"
PROJECT = "demo-refundguard"
EMULATOR_JAR = Path(
    os.environ.get(
        "FIRESTORE_EMULATOR_JAR",
        "/usr/lib/google-cloud-sdk/platform/cloud-firestore-emulator/cloud-firestore-emulator.jar",
    )
)


def port(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def wait_http(
    url: str,
    *,
    timeout_s: float,
    process: subprocess.Popen[bytes] | None = None,
    accept_any_status: bool = True,
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process for {url} exited with {process.returncode}")
        try:
            urllib.request.urlopen(url, timeout=1).read()
            return
        except urllib.error.HTTPError:
            if accept_any_status:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout_s}s")


def start_emulator(firestore_port: int, log_path: Path) -> subprocess.Popen[bytes]:
    if not EMULATOR_JAR.is_file():
        raise SystemExit(
            f"Firestore emulator not found at {EMULATOR_JAR}: install the Google Cloud "
            "SDK's cloud-firestore-emulator component (and Java), or set "
            "FIRESTORE_EMULATOR_JAR"
        )
    process = subprocess.Popen(
        [
            "java",
            "-Duser.language=en",
            "-cp",
            str(EMULATOR_JAR),
            "com.google.cloud.datastore.emulator.firestore.CloudFirestore",
            "start",
            "--host=127.0.0.1",
            f"--port={firestore_port}",
        ],
        stdout=log_path.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    wait_http(f"http://127.0.0.1:{firestore_port}/", timeout_s=90, process=process)
    return process


def start_function(
    target: str, function_port: int, env: Mapping[str, str], log_path: Path | None = None
) -> subprocess.Popen[bytes]:
    """One ``functions-framework`` process serving ``target`` from functions/main.py."""
    binary = Path(sys.executable).parent / "functions-framework"
    command = [
        str(binary) if binary.exists() else "functions-framework",
        "--source",
        str(FUNCTIONS / "main.py"),
        "--target",
        target,
        "--host",
        "127.0.0.1",
        "--port",
        str(function_port),
    ]
    output = log_path.open("wb") if log_path else None
    process = subprocess.Popen(
        command,
        env={**os.environ, **env, "FUNCTION_TARGET": target},
        cwd=FUNCTIONS,
        stdout=output,
        stderr=subprocess.STDOUT if output else None,
        start_new_session=True,
    )
    wait_http(f"http://127.0.0.1:{function_port}/", timeout_s=60, process=process)
    return process


def stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


def local_env(firestore_port: int) -> dict[str, str]:
    """The environment every local function gets: the emulator, a demo project, sample apps."""
    return {
        "FIRESTORE_EMULATOR_HOST": f"127.0.0.1:{firestore_port}",
        "GOOGLE_CLOUD_PROJECT": PROJECT,
        "FIRESTORE_DATABASE": "(default)",
        "FIRESTORE_DEADLINE_SECONDS": "20",
        "PLAY_PACKAGE_NAMES": os.environ.get("PLAY_PACKAGE_NAMES", "com.example.courses"),
    }


def main() -> int:
    RUN_DIR.mkdir(exist_ok=True)
    firestore_port = port("FIRESTORE_PORT", 8090)
    ports = {
        "play_notifications": port("PLAY_PORT", 8081),
        "apple_notifications": port("APPLE_PORT", 8082),
        "admin": port("ADMIN_PORT", 8083),
    }
    env = local_env(firestore_port)
    extra = local_apple_and_admin_env()
    processes: list[subprocess.Popen[bytes]] = []

    def shutdown(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, shutdown)
    try:
        print(
            f"Starting the Firestore emulator on 127.0.0.1:{firestore_port} "
            f"(log: {RUN_DIR / 'firestore.log'})",
            flush=True,
        )
        processes.append(start_emulator(firestore_port, RUN_DIR / "firestore.log"))
        for target, function_port in ports.items():
            print(f"Starting {target} on http://127.0.0.1:{function_port}/", flush=True)
            processes.append(start_function(target, function_port, {**env, **extra}))
        token = "demo-purchase-token-0001"
        print(
            f"""
refundguard is running locally (Ctrl-C stops everything).

  Firestore emulator   http://127.0.0.1:{firestore_port}   (project {PROJECT})
  play_notifications   http://127.0.0.1:{ports["play_notifications"]}/
  apple_notifications  http://127.0.0.1:{ports["apple_notifications"]}/
  admin                http://127.0.0.1:{ports["admin"]}/

Send a voided-purchase (refund) notification to the Play function:

  curl -s -X POST http://127.0.0.1:{ports["play_notifications"]}/ \\
    -H 'Content-Type: application/json' \\
    -d "$(python3 scripts/send_play_notification.py voided --token {token} --print)"

or any other type:  python3 scripts/send_play_notification.py --help

Then read the entitlement from the emulator:

  curl -s 'http://127.0.0.1:{firestore_port}/v1/projects/{PROJECT}/databases/(default)/documents/entitlements/google:{token}'
""",
            flush=True,
        )
        while all(p.poll() is None for p in processes):
            time.sleep(0.5)
        failed = [p.args for p in processes if p.poll() is not None]
        print(f"a process exited unexpectedly: {failed}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nStopping...", flush=True)
        return 0
    finally:
        stop(processes)


def local_apple_and_admin_env() -> dict[str, str]:
    """Apple and admin settings for local use (filled in by their modules when present)."""
    return {}


if __name__ == "__main__":
    raise SystemExit(main())
