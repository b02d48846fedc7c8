"""Sign an App Store Server Notification V2 with a local test PKI and POST it to a local function.

The first run creates the PKI under ``.run/apple-test-pki/`` (git-ignored) and writes its root to
``.run/apple-test-root.der``. ``make run`` does this and starts the Apple function (port 8082) with
that root, ``APPLE_ENVIRONMENTS=Sandbox`` and ``APPLE_BUNDLE_IDS=com.example.refundguard``; to run
the function by hand instead::

    APPLE_BUNDLE_IDS=com.example.refundguard APPLE_ENVIRONMENTS=Sandbox \
    APPLE_ROOT_CERTS=$PWD/.run/apple-test-root.der \
    functions-framework --source functions/main.py --target apple_notifications --port 8082

then send, e.g.::

    python scripts/send_apple_notification.py ONE_TIME_CHARGE
    python scripts/send_apple_notification.py REFUND --transaction-id 2000000000000001
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests")]

from apple_pki import ApplePKI, Issued, generate_pki, sign_notification  # noqa: E402
from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import serialization  # noqa: E402

RUN = ROOT / ".run"
PKI_DIR = RUN / "apple-test-pki"
ROOT_DER = RUN / "apple-test-root.der"


def _save(pki: ApplePKI) -> None:
    PKI_DIR.mkdir(parents=True, exist_ok=True)
    chain = (("root", pki.root), ("intermediate", pki.intermediate), ("leaf", pki.leaf))
    for name, issued in chain:
        (PKI_DIR / f"{name}.crt").write_bytes(issued.pem)
        key = issued.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        (PKI_DIR / f"{name}.key").write_bytes(key)
    ROOT_DER.write_bytes(pki.root_der)


def _load() -> ApplePKI:
    parts = []
    for name in ("root", "intermediate", "leaf"):
        cert = x509.load_pem_x509_certificate((PKI_DIR / f"{name}.crt").read_bytes())
        key = serialization.load_pem_private_key((PKI_DIR / f"{name}.key").read_bytes(), None)
        parts.append(Issued(cert, key))  # type: ignore[arg-type]
    return ApplePKI(*parts)


def test_pki() -> ApplePKI:
    if not (PKI_DIR / "leaf.key").exists():
        _save(generate_pki("RefundGuard Local"))
        print(f"created a test PKI; root: {ROOT_DER}", file=sys.stderr)
    return _load()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("type", nargs="?", default="TEST", help="notificationType (default TEST)")
    parser.add_argument("--subtype")
    parser.add_argument("--url", default="http://127.0.0.1:8082/", help="default: make run's")
    parser.add_argument("--transaction-id", default="2000000000000001")
    parser.add_argument("--bundle-id", default="com.example.refundguard")
    parser.add_argument("--environment", default="Sandbox")
    parser.add_argument("--write-root", action="store_true", help="only create the PKI and root")
    args = parser.parse_args()

    pki = test_pki()
    if args.write_root:
        print(f"APPLE_ROOT_CERTS={ROOT_DER}")
        return 0
    now_ms = time.time_ns() // 1_000_000
    token = sign_notification(
        args.type,
        args.subtype,
        pki=pki,
        environment=args.environment,
        bundle_id=args.bundle_id,
        signed_date=now_ms,
        transaction={"original_transaction_id": args.transaction_id, "bundle_id": args.bundle_id},
    )
    request = urllib.request.Request(
        args.url,
        data=json.dumps({"signedPayload": token}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            print(response.status, response.read().decode().strip())
    except urllib.error.HTTPError as err:
        print(err.code, err.read().decode().strip())
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
