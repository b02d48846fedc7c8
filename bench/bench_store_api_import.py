"""Cold-start cost of the store-API clients, each in a fresh interpreter (best of N): importing
``refundguard.playstore.api`` / ``refundguard.appstore.api``, and building a Play client (which
imports google-auth's requests transport), against ``google.auth.transport.requests`` alone and,
when an interpreter with google-api-python-client is given, ``googleapiclient.discovery`` and its
``build("androidpublisher", "v3")``. Ratios come from this one run. No network is used.

    .venv/bin/python bench/bench_store_api_import.py [N]
    BENCH_GOOGLEAPICLIENT_PYTHON=/tmp/gapi-venv/bin/python .venv/bin/python bench/...

google-api-python-client is not a dependency of refundguard: install it into a throw-away venv
(``python3 -m venv /tmp/gapi && /tmp/gapi/bin/pip install google-api-python-client``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile

TIMED = "{setup}; import time; t = time.perf_counter(); {code}; print(time.perf_counter() - t)"
LOADED = "import google.auth.transport.requests"  # what a function talking to Google has already
BUILD_PLAY = (
    "from google.auth.credentials import AnonymousCredentials; "
    "from refundguard.playstore.api import PlayApiClient; "
    "PlayApiClient(credentials=AnonymousCredentials())"
)
BUILD_APPLE = (
    "from cryptography.hazmat.primitives.asymmetric import ec; "
    "from refundguard.appstore.api import AppStoreApiClient; "
    "from refundguard.appstore.credentials import AppleApiSettings; "
    "AppStoreApiClient(AppleApiSettings('K', 'I', ec.generate_private_key(ec.SECP256R1())))"
)
GAPI_BUILD = (
    "from google.auth.credentials import AnonymousCredentials; "
    "from googleapiclient.discovery import build; "
    "build('androidpublisher', 'v3', credentials=AnonymousCredentials(), static_discovery=True)"
)
# (label, setup not timed, code timed)
OURS = [
    ("import refundguard.playstore.api", "pass", "import refundguard.playstore.api"),
    ("import refundguard.appstore.api", "pass", "import refundguard.appstore.api"),
    ("import google.auth.transport.requests", "pass", LOADED),
    ("build PlayApiClient (imports included)", "pass", BUILD_PLAY),
    ("  same, google-auth+requests already loaded", LOADED, BUILD_PLAY),
    ("  same, refundguard.store (Firestore) loaded", "import refundguard.store", BUILD_PLAY),
    ("build AppStoreApiClient (test PKI incl.)", "pass", BUILD_APPLE),
]
THEIRS = [
    ("import googleapiclient.discovery", "pass", "import googleapiclient.discovery"),
    ("build('androidpublisher','v3') (imports incl.)", "pass", GAPI_BUILD),
    ("  same, google-auth+requests already loaded", LOADED, GAPI_BUILD),
]


def timed(python: str, setup: str, code: str, rounds: int, env: dict[str, str]) -> float:
    """Best of ``rounds`` after one warm-up run that writes the bytecode caches."""
    best = float("inf")
    for attempt in range(rounds + 1):
        out = subprocess.run(
            [python, "-c", TIMED.format(setup=setup, code=code)],
            check=True,
            capture_output=True,
            text=True,
            env=env,
        ).stdout
        if attempt == 0:
            continue
        best = min(best, float(out.strip().splitlines()[-1]))
    return best


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 7
    gapi_python = os.environ.get("BENCH_GOOGLEAPICLIENT_PYTHON")
    # Installed libraries ship compiled bytecode; give refundguard's modules the same chance
    # (cached under a temporary prefix, so nothing is written into the source tree).
    cache = tempfile.mkdtemp(prefix="bench-pycache-")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = cache
    try:
        ours = {label: timed(sys.executable, *steps, rounds, env) for label, *steps in OURS}
        theirs = {}
        if gapi_python:
            theirs = {label: timed(gapi_python, *steps, rounds, env) for label, *steps in THEIRS}
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    print("refundguard (this venv):")
    for label, value in ours.items():
        print(f"  {label:48s} {value * 1000:8.1f} ms")
    play = ours["import refundguard.playstore.api"]
    transport = ours["import google.auth.transport.requests"]
    print(f"ratio google.auth.transport.requests / play.api import: {transport / play:.1f}x")
    if not gapi_python:
        print("googleapiclient comparison skipped: set BENCH_GOOGLEAPICLIENT_PYTHON (docstring)")
        return
    print(f"google-api-python-client ({gapi_python}):")
    for label, value in theirs.items():
        print(f"  {label:48s} {value * 1000:8.1f} ms")
    pairs = [
        ("googleapiclient.discovery / play.api import", THEIRS[0][0], OURS[0][0]),
        ("build('androidpublisher') / PlayApiClient build", THEIRS[1][0], OURS[3][0]),
        ("the same, google-auth+requests already loaded", THEIRS[2][0], OURS[4][0]),
    ]
    for name, their_label, our_label in pairs:
        print(f"ratio {name:48s} {theirs[their_label] / ours[our_label]:5.1f}x")


if __name__ == "__main__":
    main()
