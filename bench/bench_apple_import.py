"""Cold-import cost, each in a fresh interpreter (best of N): refundguard's verifier now and at git
commit 43c6dde ("before", see ``_baseline``) vs Apple's ``signed_data_verifier``, and, reported
honestly, the whole Apple function module and ``refundguard.store`` (google-cloud-firestore,
imported when the handler is built). Run: ``python bench/bench_apple_import.py [N]``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from _baseline import BASELINE, baseline_functions, env_with

VERIFIER = "refundguard.appstore.verifier"
OLD_VERIFIER = "refundguard.apple.verifier"
APPLE = "appstoreserverlibrary.signed_data_verifier"
MODULES = [
    (VERIFIER, "refundguard verifier now (PyJWT)"),
    (APPLE, "Apple SignedDataVerifier"),
    ("refundguard.apple.function", "refundguard Apple function module"),
    ("refundguard.store", "refundguard.store (firestore, at handler build)"),
]

CODE = (
    "import time; t = time.perf_counter(); import {module} as m; "
    "print(time.perf_counter() - t, m.__file__)"
)


def import_time(module: str, rounds: int, env: dict[str, str] | None = None) -> tuple[float, str]:
    best, path = float("inf"), ""
    for _ in range(rounds):
        out = subprocess.run(
            [sys.executable, "-c", CODE.format(module=module)],
            check=True,
            capture_output=True,
            text=True,
            env=env,
        ).stdout
        seconds, path = out.split(maxsplit=1)
        best = min(best, float(seconds))
    return best, path.strip()


def before(rounds: int) -> float | None:
    with baseline_functions() as functions:
        if functions is None:
            return None
        # The verifier lived in refundguard.apple before the store libraries (refundguard.appstore).
        old = VERIFIER if (functions / "refundguard" / "appstore").is_dir() else OLD_VERIFIER
        seconds, path = import_time(old, rounds, env_with(functions))
        if not Path(path).is_relative_to(functions):
            raise SystemExit(f"'before' imported {path}, not {BASELINE}'s verifier")
        return seconds


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 7
    old = before(rounds)
    results = {m: import_time(m, rounds)[0] for m, _ in MODULES}
    if old is not None:
        label = f"refundguard verifier before ({BASELINE})"
        print(f"  {label:48s} {old * 1000:7.1f} ms   ({VERIFIER})")
    for module, label in MODULES:
        print(f"  {label:48s} {results[module] * 1000:7.1f} ms   ({module})")
    ours, apple = results[VERIFIER], results[APPLE]
    print(f"ratio (Apple / refundguard verifier now): {apple / ours:.1f}x")
    if old is not None:
        print(f"ratio (Apple / refundguard verifier before): {apple / old:.1f}x")
    print(
        f"function module vs Apple's verifier: {results['refundguard.apple.function'] * 1000:.1f}"
        f" ms vs {apple * 1000:.1f} ms"
    )


if __name__ == "__main__":
    main()
