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

from refundguard_dev.apple_pki import sign_notification
from refundguard_dev.local import APPLE_ROOT_DER, local_apple_pki
from refundguard_dev.stack import local_url


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("type", nargs="?", default="TEST", help="notificationType (default TEST)")
    parser.add_argument("--subtype")
    parser.add_argument("--url", help="default: the Apple function of the running `make run`")
    parser.add_argument("--transaction-id", default="2000000000000001")
    parser.add_argument("--bundle-id", default="com.example.refundguard")
    parser.add_argument("--environment", default="Sandbox")
    parser.add_argument("--write-root", action="store_true", help="only create the PKI and root")
    args = parser.parse_args()

    pki = local_apple_pki()
    if args.write_root:
        print(f"APPLE_ROOT_CERTS={APPLE_ROOT_DER}")
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
        local_url("apple_notifications", args.url),
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
