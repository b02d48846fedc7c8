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
import subprocess
import sys
import time

from refundguard_dev.emulator import find_emulator_jar, start_emulator
from refundguard_dev.local import (
    PROJECT,
    RUN_DIR,
    common_env,
    local_admin_env,
    local_apple_env,
    serve_dev_certs,
)
from refundguard_dev.processes import start_function, stop


def port(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def main() -> int:
    RUN_DIR.mkdir(exist_ok=True)
    firestore_port = port("FIRESTORE_PORT", 8090)
    ports = {
        "play_notifications": port("PLAY_PORT", 8081),
        "apple_notifications": port("APPLE_PORT", 8082),
        "admin": port("ADMIN_PORT", 8083),
    }
    env = common_env(firestore_port)
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
        jar = find_emulator_jar()
        if jar is None:
            raise SystemExit(
                "Firestore emulator not found: install the Google Cloud SDK's "
                "cloud-firestore-emulator component (and Java), or set FIRESTORE_EMULATOR_JAR"
            )
        emulator = start_emulator(
            jar, RUN_DIR / "firestore.log", project=PROJECT, port=firestore_port
        )
        processes.append(emulator.process)
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


if __name__ == "__main__":
    raise SystemExit(main())
