#!/usr/bin/env python3
"""Print an ID token from ``make run``'s local issuer for the local admin function.

TOKEN=$(.venv/bin/python scripts/dev_admin_token.py)                 # admin@example.com
TOKEN=$(.venv/bin/python scripts/dev_admin_token.py --email x@y.z)  # someone else (403)
"""

from __future__ import annotations

import argparse

from refundguard_dev.dev_issuer import mint
from refundguard_dev.stack import running_stack


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--email", help="default: the first admin of the running `make run`")
    parser.add_argument("--audience", help="default: the running admin function's URL")
    args = parser.parse_args()
    stack = running_stack()
    email = args.email or (stack.admin_emails[0] if stack.admin_emails else None)
    if email is None or "*" in email:
        raise SystemExit("ADMIN_EMAILS names no single email: pass --email you@example.com")
    print(mint(email, args.audience or stack.url("admin")))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
