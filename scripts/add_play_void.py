#!/usr/bin/env python3
"""``make run`` only: add a voided purchase to the local Play Developer API stand-in, as Google
would record a refund whose notification never arrived; the reconciler's next run (or
``refundguard-admin run``) catches it. Reads ``.run/stack.json``: never posts anywhere else.

    .venv/bin/python scripts/add_play_void.py --token demo-purchase-token-0001 \\
        --order GPA.3301-0000-0000-00001
"""

from __future__ import annotations

import argparse
import json
import urllib.request

from refundguard_dev.stack import local_url


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--token", required=True, help="the purchase token that was refunded")
    parser.add_argument("--order", required=True, help="its order id (GPA....)")
    parser.add_argument("--package", default=None, help="default: the stand-in's package")
    parser.add_argument("--url", default=None, help="default: the running stack's Play stand-in")
    args = parser.parse_args()
    body = {"purchaseToken": args.token, "orderId": args.order}
    if args.package:
        body["package"] = args.package
    request = urllib.request.Request(
        f"{local_url('play_api', args.url)}/_dev/voided",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        print(json.loads(response.read())["added"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
