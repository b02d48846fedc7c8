"""Cold-import cost, each in a fresh interpreter (best of N): refundguard's verifier vs Apple's
``appstoreserverlibrary.signed_data_verifier``, and, reported honestly, the whole Apple function
module and ``refundguard.store`` (google-cloud-firestore, imported when the handler is built).
Run: ``python bench/bench_apple_import.py [N]``."""

from __future__ import annotations

import subprocess
import sys

MODULES = [
    ("refundguard.apple.verifier", "refundguard verifier"),
    ("appstoreserverlibrary.signed_data_verifier", "Apple SignedDataVerifier"),
    ("refundguard.apple.function", "refundguard Apple function module"),
    ("refundguard.store", "refundguard.store (firestore, at handler build)"),
]

CODE = "import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"


def import_time(module: str, rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        out = subprocess.run(
            [sys.executable, "-c", CODE.format(module=module)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        best = min(best, float(out.strip()))
    return best


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 7
    results = {m: import_time(m, rounds) for m, _ in MODULES}
    for module, label in MODULES:
        print(f"  {label:48s} {results[module] * 1000:7.1f} ms   ({module})")
    ours = results["refundguard.apple.verifier"]
    apple = results["appstoreserverlibrary.signed_data_verifier"]
    print(f"ratio (Apple / refundguard verifier import): {apple / ours:.1f}x")
    print(
        f"function module vs Apple's verifier: {results['refundguard.apple.function'] * 1000:.1f}"
        f" ms vs {apple * 1000:.1f} ms"
    )


if __name__ == "__main__":
    main()
