"""Verify the same kind of notifications (outer + inner JWS) with refundguard's verifier now, with
the hand-written one of git commit 43c6dde ("before", in a subprocess, see ``_baseline``) and with
Apple's ``SignedDataVerifier``, in one run; print cold (first verification of a fresh verifier) and
warm (steady-state) costs and the ratios. Run: ``python bench/bench_apple_verify.py [N]``."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from _baseline import BASELINE, baseline_functions, env_with
from refundguard_dev.apple_pki import APP_APPLE_ID, BUNDLE_ID, default_pki, sign_notification

ONLY_OURS = "--only-ours"  # the subprocess mode: measure refundguard's verifier, print JSON


def ours_factory():
    from refundguard.appstore.verifier import AppleVerifier

    v = AppleVerifier(
        [default_pki().root_der],
        bundle_ids=[BUNDLE_ID],
        environments=["Production"],
        app_apple_id=APP_APPLE_ID,
    )
    return v.verify_notification


def apple_factory():
    from appstoreserverlibrary.models.Environment import Environment
    from appstoreserverlibrary.signed_data_verifier import SignedDataVerifier

    v = SignedDataVerifier(
        [default_pki().root_der], False, Environment.PRODUCTION, BUNDLE_ID, APP_APPLE_ID
    )

    def verify(token: str) -> object:
        decoded = v.verify_and_decode_notification(token)
        v.verify_and_decode_signed_transaction(decoded.data.signedTransactionInfo)
        if decoded.data.signedRenewalInfo:
            v.verify_and_decode_renewal_info(decoded.data.signedRenewalInfo)
        return decoded

    return verify


def cold(factory, token: str, rounds: int = 30) -> float:
    best = float("inf")
    for _ in range(rounds):
        verify = factory()
        t0 = time.perf_counter()
        verify(token)
        best = min(best, time.perf_counter() - t0)
    return best


def warm(factory, tokens: list[str], repeat: int = 5) -> float:
    verify = factory()
    for token in tokens[:5]:
        verify(token)
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for token in tokens:
            verify(token)
        best = min(best, (time.perf_counter() - t0) / len(tokens))
    return best


def notifications(n: int) -> list[str]:
    types = ["ONE_TIME_CHARGE", "REFUND", "REFUND_REVERSED", "DID_RENEW"]
    return [
        sign_notification(
            types[i % 4],
            environment="Production",
            renewal={} if i % 2 else None,
            transaction={"original_transaction_id": str(2_000_000 + i)},
        )
        for i in range(n)
    ]


def only_ours(n: int) -> None:
    """Subprocess mode: whatever ``refundguard`` PYTHONPATH gives, measured; one JSON line."""
    import refundguard.appstore.verifier as module

    tokens = notifications(n)
    result = {"cold": cold(ours_factory, tokens[0]), "warm": warm(ours_factory, tokens)}
    print(json.dumps(result | {"module": module.__file__}))


def before(n: int) -> tuple[float, float] | None:
    """(cold, warm) of the verifier at BASELINE, measured in a subprocess; None if unavailable."""
    with baseline_functions() as functions:
        if functions is None:
            return None
        out = subprocess.run(
            [sys.executable, __file__, ONLY_OURS, str(n)],
            check=True,
            capture_output=True,
            text=True,
            env=env_with(functions),
        ).stdout
        result = json.loads(out.strip().splitlines()[-1])
        if not Path(result["module"]).is_relative_to(functions):
            raise SystemExit(f"'before' measured {result['module']}, not {BASELINE}'s verifier")
        return result["cold"], result["warm"]


def row(name: str, c: float, w: float) -> None:
    print(
        f"  {name:34s} cold {c * 1e6:9.1f} us/notification"
        f"   warm {w * 1e6:8.1f} us/notification   ({1 / w:8.0f}/s)"
    )


def main() -> None:
    if sys.argv[1:2] == [ONLY_OURS]:
        only_ours(int(sys.argv[2]))
        return
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    tokens = notifications(n)
    jws = sum(2 + ("signedRenewalInfo" in t or i % 2) for i, t in enumerate(tokens)) / n
    print(
        f"{n} notifications, {jws:.1f} JWS each (outer + transaction [+ renewal]); "
        f"Python {sys.version.split()[0]}"
    )
    old = before(n)
    oc, ow = cold(ours_factory, tokens[0]), warm(ours_factory, tokens)
    ac, aw = cold(apple_factory, tokens[0]), warm(apple_factory, tokens)
    if old is not None:
        row(f"refundguard before ({BASELINE})", *old)
    row("refundguard now (PyJWT)", oc, ow)
    row("app-store-server-library", ac, aw)
    print(f"ratio (Apple / refundguard now): cold {ac / oc:.1f}x, warm {aw / ow:.1f}x")
    if old is not None:
        print(
            f"ratio (Apple / refundguard before): cold {ac / old[0]:.1f}x, warm {aw / old[1]:.1f}x"
        )
        print(f"now vs before: cold {oc / old[0]:.2f}x, warm {ow / old[1]:.2f}x the time")


if __name__ == "__main__":
    main()
