"""Verify the same kind of notifications (outer + inner JWS) with refundguard's verifier now, with
the hand-written one of git commit 43c6dde ("before", in a subprocess, see ``_baseline``) and with
Apple's ``SignedDataVerifier``, in one run; print cold (first verification of a fresh verifier) and
warm (steady-state) costs beside the floor, and the ratios beside their goals (issue 20).
Run: ``python bench/bench_apple_verify.py [N]``."""

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
    try:
        from refundguard.appstore.verifier import AppleVerifier
    except ModuleNotFoundError:  # BASELINE's layout
        from refundguard.apple.verifier import AppleVerifier

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


def floor_factory():
    """The floor: per JWS, what no verifier can skip. Split the three segments and base64url-decode
    them (C), JSON-decode header and payload, load the leaf key from ``x5c[0]``, one P-256 ECDSA
    verify. No chain, no rules, no claims: 2 verifies for a notification, 3 with renewal info."""
    import base64

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    def b64url(segment: str) -> bytes:
        return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))

    def verify_jws(token: str) -> dict:
        header_b64, payload_b64, signature_b64 = token.split(".")
        header = json.loads(b64url(header_b64))
        payload = json.loads(b64url(payload_b64))
        raw = b64url(signature_b64)
        leaf = x509.load_der_x509_certificate(base64.b64decode(header["x5c"][0]))
        signature = encode_dss_signature(
            int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
        )
        leaf.public_key().verify(
            signature, f"{header_b64}.{payload_b64}".encode(), ec.ECDSA(hashes.SHA256())
        )
        return payload

    def verify(token: str) -> dict:
        payload = verify_jws(token)
        data = payload["data"]
        verify_jws(data["signedTransactionInfo"])
        if data.get("signedRenewalInfo"):
            verify_jws(data["signedRenewalInfo"])
        return payload

    return verify


def cold(factories: dict, token: str, rounds: int = 30) -> dict[str, float]:
    """Best first verification by a fresh verifier, each factory in turn every round."""
    best = dict.fromkeys(factories, float("inf"))
    for _ in range(rounds):
        for name, factory in factories.items():
            verify = factory()
            t0 = time.perf_counter()
            verify(token)
            best[name] = min(best[name], time.perf_counter() - t0)
    return best


def warm(factories: dict, tokens: list[str], repeat: int = 7) -> dict[str, float]:
    """Best mean time a notification over ``tokens``, after warming up; the verifiers take turns
    every round, so a noisy neighbour slows them alike."""
    verifiers = {name: factory() for name, factory in factories.items()}
    for verify in verifiers.values():
        for token in tokens[:5]:
            verify(token)
    best = dict.fromkeys(factories, float("inf"))
    for _ in range(repeat):
        for name, verify in verifiers.items():
            t0 = time.perf_counter()
            for token in tokens:
                verify(token)
            best[name] = min(best[name], (time.perf_counter() - t0) / len(tokens))
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
    verify = ours_factory()
    module = sys.modules[verify.__self__.__module__]

    tokens = notifications(n)
    factories = {"ours": ours_factory}
    result = {"cold": cold(factories, tokens[0])["ours"], "warm": warm(factories, tokens)["ours"]}
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
        f"  {name:42s} cold {c * 1e6:9.1f} us/notification"
        f"   warm {w * 1e6:8.1f} us/notification   ({1 / w:8.0f}/s)"
    )


def goal(name: str, ratio: float, target: str) -> None:
    """One ratio beside its goal (issue 20): ``<= x`` or ``>= x``."""
    bound = float(target[2:].rstrip("x"))
    met = ratio <= bound if target.startswith("<=") else ratio >= bound
    print(f"  {name:44s} {ratio:6.2f}x   goal {target:7s} {'met' if met else 'NOT MET'}")


def main() -> None:
    if sys.argv[1:2] == [ONLY_OURS]:
        only_ours(int(sys.argv[2]))
        return
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    tokens = notifications(n)
    jws = sum(2 + ("signedRenewalInfo" in t or i % 2) for i, t in enumerate(tokens)) / n
    print(
        f"{n} notifications, {jws:.1f} JWS each (outer + transaction [+ renewal]); "
        f"Python {sys.version.split()[0]}"
    )
    old = before(n)
    factories = {"floor": floor_factory, "ours": ours_factory, "apple": apple_factory}
    c, w = cold(factories, tokens[0]), warm(factories, tokens)
    if old is not None:
        row(f"refundguard before ({BASELINE})", *old)
    row("floor (decode, leaf key from x5c, verify)", c["floor"], w["floor"])
    row("refundguard now (PyJWT)", c["ours"], w["ours"])
    row("app-store-server-library", c["apple"], w["apple"])
    print("ratios measured in this run:")
    goal("refundguard warm / floor warm", w["ours"] / w["floor"], "<=1.5x")
    goal("Apple's library / refundguard, warm", w["apple"] / w["ours"], ">=10x")
    goal("Apple's library / refundguard, cold", c["apple"] / c["ours"], ">=3x")
    if old is not None:
        print(
            f"  (Apple / refundguard before: cold {c['apple'] / old[0]:.1f}x, "
            f"warm {w['apple'] / old[1]:.1f}x; now vs before, in separate processes: "
            f"cold {c['ours'] / old[0]:.2f}x, warm {w['ours'] / old[1]:.2f}x the time)"
        )


if __name__ == "__main__":
    main()
