"""Verify the same notifications (outer + inner JWS) with refundguard's verifier and with Apple's
``SignedDataVerifier`` in one run; print cold (first verification of a fresh verifier) and warm
(steady-state) costs and the ratio. Run: ``python bench/bench_apple_verify.py [N]``."""

from __future__ import annotations

import sys
import time

from appstoreserverlibrary.models.Environment import Environment
from appstoreserverlibrary.signed_data_verifier import SignedDataVerifier
from refundguard.apple.verifier import AppleVerifier
from refundguard_dev.apple_pki import APP_APPLE_ID, BUNDLE_ID, default_pki, sign_notification


def ours_factory():
    v = AppleVerifier(
        [default_pki().root_der],
        bundle_ids=[BUNDLE_ID],
        environments=["Production"],
        app_apple_id=APP_APPLE_ID,
    )
    return v.verify_notification


def apple_factory():
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


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    types = ["ONE_TIME_CHARGE", "REFUND", "REFUND_REVERSED", "DID_RENEW"]
    tokens = [
        sign_notification(
            types[i % 4],
            environment="Production",
            renewal={} if i % 2 else None,
            transaction={"original_transaction_id": str(2_000_000 + i)},
        )
        for i in range(n)
    ]
    jws = sum(2 + ("signedRenewalInfo" in t or i % 2) for i, t in enumerate(tokens)) / n
    print(
        f"{n} notifications, {jws:.1f} JWS each (outer + transaction [+ renewal]); "
        f"Python {sys.version.split()[0]}"
    )
    rows = []
    candidates = (("refundguard", ours_factory), ("app-store-server-library", apple_factory))
    for name, factory in candidates:
        rows.append((name, cold(factory, tokens[0]), warm(factory, tokens)))
    for name, c, w in rows:
        print(
            f"  {name:26s} cold {c * 1e6:9.1f} us/notification"
            f"   warm {w * 1e6:8.1f} us/notification   ({1 / w:8.0f}/s)"
        )
    (_, oc, ow), (_, ac, aw) = rows
    print(f"ratio (Apple / refundguard): cold {ac / oc:.1f}x, warm {aw / ow:.1f}x")


if __name__ == "__main__":
    main()
