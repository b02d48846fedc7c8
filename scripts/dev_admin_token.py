#!/usr/bin/env python3
"""Print an ID token from ``make run``'s local issuer for the local admin function.

TOKEN=$(.venv/bin/python scripts/dev_admin_token.py)                 # admin@example.com
TOKEN=$(.venv/bin/python scripts/dev_admin_token.py --email x@y.z)  # someone else (403)
"""

from __future__ import annotations

import argparse

from refundguard_dev.dev_issuer import DEFAULT_AUDIENCE, DEFAULT_EMAIL, mint


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--email", default=DEFAULT_EMAIL)
    parser.add_argument("--audience", default=DEFAULT_AUDIENCE)
    args = parser.parse_args()
    print(mint(args.email, args.audience))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
