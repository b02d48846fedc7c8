"""Cold start of each function: in a fresh interpreter that has already imported what every
function needs anyway (functions-framework, google-cloud-firestore, google-auth, requests), the
time to import the function's own module (the goal: under 30 ms each), now and at git commit
452eb1b (before the store libraries and issue 20), best of N, each pair measured in turns; then
the time to build the handler as ``main.py`` does with every store API on. Run:
``python bench/bench_cold_start.py [N]``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from _baseline import baseline_functions, env_with

GOAL_MS = 30.0
BEFORE = "452eb1b"
IMPORT_ONLY = """
import time
import functions_framework, flask, google.cloud.firestore, google.auth, requests  # the floor
t0 = time.perf_counter()
import importlib
importlib.import_module({module!r})
print((time.perf_counter() - t0) * 1000, 0.0)
"""
TARGETS = {
    "play_notifications": "refundguard.play.function",
    "apple_notifications": "refundguard.apple.function",
    "admin": "refundguard.admin.function",
    "admin_console": "refundguard.console.function",
    "reconcile": "refundguard.reconcile.function",
    "events_sweep": "refundguard.sweep.function",
}
CODE = """
import time, os
import functions_framework, flask, google.cloud.firestore, google.auth, requests  # the floor
t0 = time.perf_counter()
import importlib
module = importlib.import_module({module!r})
t1 = time.perf_counter()
module.create_handler(os.environ)
t2 = time.perf_counter()
print((t1 - t0) * 1000, (t2 - t1) * 1000)
"""


def env_for(target: str, root: Path, work: Path) -> dict[str, str]:
    """Settings each function starts with (local, nothing reached: the clients connect lazily)."""
    from refundguard_dev.apple_pki import default_pki
    from refundguard_dev.fake_appstore_api import new_api_key
    from refundguard_dev.fake_play_api import FakePlayApi

    pem = work / "root.der"
    pem.write_bytes(default_pki().root_der)
    key = FakePlayApi(packages=["com.example.app"]).write_service_account_key(work / "sa.json")
    apple_key = new_api_key()
    env = {
        **os.environ,
        "GOOGLE_CLOUD_PROJECT": "demo-bench",
        "FIRESTORE_EMULATOR_HOST": "127.0.0.1:1",
        "EVENTS_TOPIC": "projects/demo-bench/topics/access-events",
        "PUBSUB_EMULATOR_HOST": "127.0.0.1:1",
        "PLAY_PACKAGE_NAMES": "com.example.app",
        "APPLE_BUNDLE_IDS": "com.example.app",
        "APPLE_ENVIRONMENTS": "Sandbox",
        "APPLE_APP_APPLE_ID": "1234567890",
        "APPLE_ROOT_CERTS": str(pem),
        "ADMIN_EMAILS": "admin@example.com",
        "ADMIN_AUDIENCES": "http://127.0.0.1:1",
        "ADMIN_CERTS_URL": "http://127.0.0.1:1/certs",
        "CONSOLE_OAUTH_CLIENT_ID": "1234-bench.apps.googleusercontent.com",
        "CONSOLE_GIS_CLIENT_URL": "http://127.0.0.1:1/gsi/client",
        "PLAY_DEVELOPER_API": "on",
        "PLAY_API_BASE_URL": "http://127.0.0.1:1",
        "GOOGLE_APPLICATION_CREDENTIALS": str(key),
        "APPLE_API_KEY_ID": apple_key.key_id,
        "APPLE_API_ISSUER_ID": apple_key.issuer_id,
        "APPLE_API_PRIVATE_KEY": apple_key.pem,
        "APPLE_API_BASE_URL": "http://127.0.0.1:1",
        "APPLE_API_SANDBOX_BASE_URL": "http://127.0.0.1:1",
    }
    env.pop("FUNCTION_TARGET", None)
    return env


def measure(module: str, env: dict[str, str], rounds: int, code: str = CODE) -> tuple[float, float]:
    best = (float("inf"), float("inf"))
    for _ in range(rounds):
        done = subprocess.run(
            [sys.executable, "-c", code.format(module=module)],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        if done.returncode != 0:
            raise SystemExit(f"{module} did not start:\n{done.stderr[-2000:]}")
        imported, built = (float(x) for x in done.stdout.split()[-2:])
        if imported + built < sum(best):
            best = (imported, built)
    return best


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    root = Path(__file__).resolve().parent.parent
    results = {}
    with tempfile.TemporaryDirectory() as tmp, baseline_functions(BEFORE) as before:
        print(f"cold start over functions-framework + firestore + google-auth, best of {rounds}:")
        print(
            f"{'function':22} {'import':>8} {'before':>8} {'build':>8}   "
            f"import goal < {GOAL_MS:.0f} ms (before: {BEFORE})"
        )
        for target, module in TARGETS.items():
            env = env_for(target, root, Path(tmp))
            old = measure(module, env_with(before), rounds, IMPORT_ONLY)[0] if before else None
            imported = measure(module, env, rounds, IMPORT_ONLY)[0]
            built = measure(module, env, rounds)[1]
            results[target] = round(imported, 1)
            verdict = "met" if imported < GOAL_MS else "NOT met"
            shown = f"{old:7.1f}" if old is not None else "      -"
            print(f"{target:22} {imported:7.1f}  {shown}  {built:7.1f}   {verdict}")
    print(json.dumps({"cold_start_import_ms": results}))


if __name__ == "__main__":
    main()
