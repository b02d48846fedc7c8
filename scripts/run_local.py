#!/usr/bin/env python3
"""``make run``: the Firestore emulator and the three functions, locally, until Ctrl-C.

Ports (override with environment variables of the same names):

    FIRESTORE_PORT=8090  the Firestore emulator (http://127.0.0.1:8090)
    PLAY_PORT=8081       play_notifications
    APPLE_PORT=8082      apple_notifications
    ADMIN_PORT=8083      admin
    ADMIN_CERTS_PORT=8084  the local ID-token certificates the admin function trusts

Each function runs in its own ``functions-framework`` process, exactly as Cloud Functions runs it,
with the environment printed at start. Ctrl-C (or SIGTERM) stops everything this script started.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUN_DIR = ROOT / ".run"
FUNCTIONS = ROOT / "functions"
PROJECT = "demo-refundguard"
sys.path[:0] = [str(FUNCTIONS), str(ROOT / "scripts")]
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


def wait_port(port_number: int, *, timeout_s: float, process: subprocess.Popen[bytes]) -> None:
    """Wait until something listens on the port (a TCP connect: no request for it to log)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"process for port {port_number} exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port_number), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"nothing listened on port {port_number} within {timeout_s}s")


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
    wait_port(function_port, timeout_s=60, process=process)
    return process


def stop(processes: list[subprocess.Popen[bytes]], *, ignore_signals: bool = False) -> None:
    if ignore_signals:  # a second Ctrl-C while stopping must not leave processes behind
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
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
    certs_port = port("ADMIN_CERTS_PORT", 8084)
    extra = {**local_apple_env(), **local_admin_env(ports["admin"], certs_port)}
    processes: list[subprocess.Popen[bytes]] = []

    def shutdown(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, shutdown)
    try:
        if extra["ADMIN_CERTS_URL"].startswith("http://127.0.0.1:"):
            serve_dev_certs(certs_port)
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
        py = os.path.relpath(sys.executable)
        play, apple, admin = (
            ports[t] for t in ("play_notifications", "apple_notifications", "admin")
        )
        print(
            f"""
refundguard is running locally (Ctrl-C stops everything).

  Firestore emulator   http://127.0.0.1:{firestore_port}   (project {PROJECT})
  play_notifications   http://127.0.0.1:{play}/
  apple_notifications  http://127.0.0.1:{apple}/   (Sandbox, trusting the local test root in .run/)
  admin                http://127.0.0.1:{admin}/   (local ID tokens for {extra["ADMIN_EMAILS"]})

Refund a purchase through the Play function (a voided-purchase notification):

  curl -s -X POST http://127.0.0.1:{play}/ -H 'Content-Type: application/json' \\
    -d "$(python3 scripts/send_play_notification.py voided --token {token} --print)"

Read the entitlement from the emulator:

  curl -s 'http://127.0.0.1:{firestore_port}/v1/projects/{PROJECT}/databases/(default)/documents/entitlements/google:{token}'

or through the admin function, then give the access back:

  TOKEN=$({py} scripts/dev_admin_token.py)
  curl -s -H "Authorization: Bearer $TOKEN" http://127.0.0.1:{admin}/entitlements/google/{token}
  curl -s -X POST -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \\
    -d '{{"reason": "refund was a mistake"}}' http://127.0.0.1:{admin}/entitlements/google/{token}/regrant

Apple (signed with the local test PKI):  {py} scripts/send_apple_notification.py REFUND
Any Play notification type:              python3 scripts/send_play_notification.py --help
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
        stop(processes, ignore_signals=True)


def local_apple_env() -> dict[str, str]:
    """The Apple function trusts a throw-away local root (never Apple's) and accepts Sandbox only:
    ``scripts/send_apple_notification.py`` signs notifications with that PKI."""
    from send_apple_notification import ROOT_DER, test_pki

    test_pki()
    return {
        "APPLE_BUNDLE_IDS": "com.example.refundguard",
        "APPLE_ENVIRONMENTS": "Sandbox",
        "APPLE_APP_APPLE_ID": "",
        "APPLE_ROOT_CERTS": str(ROOT_DER),
    }


def local_admin_env(admin_port: int, certs_port: int) -> dict[str, str]:
    """The admin function trusts a local stand-in for Google's ID-token certificates, served by
    this process (``scripts/dev_admin_token.py`` mints tokens for it), and allows
    ``ADMIN_EMAILS`` (default ``admin@example.com``). Set ``ADMIN_CERTS_URL`` to Google's to use
    real ``gcloud`` tokens instead (see docs/admin.md)."""
    from refundguard.admin.local import local_env

    env = local_env(admin_port)
    if not os.environ.get("ADMIN_CERTS_URL"):
        env["ADMIN_CERTS_URL"] = f"http://127.0.0.1:{certs_port}/oauth2/v1/certs"
    if not os.environ.get("ADMIN_EMAILS"):
        env["ADMIN_EMAILS"] = "admin@example.com"
    return env


def serve_dev_certs(certs_port: int) -> ThreadingHTTPServer:
    from dev_admin_token import certs_json

    body = certs_json()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Cache-Control", "public, max-age=3600")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", certs_port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


if __name__ == "__main__":
    raise SystemExit(main())
