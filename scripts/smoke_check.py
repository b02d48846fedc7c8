#!/usr/bin/env python3
"""Post-deploy smoke check: does each deployed function answer as it should? It only calls the
URLs you give it (or ``--from-terraform``: infra/'s outputs), and writes nothing anywhere.

    scripts/smoke_check.py --from-terraform                # after terraform apply, as an admin
    scripts/smoke_check.py --admin-url URL --apple-url URL [--console-url URL] [--token T]

Checks: the Apple endpoint refuses an unsigned body with 400 (it runs and verifies; nothing is
written); the admin function refuses a call without a token (401/403) and, with your admin ID
token (``--token``, ``$REFUNDGUARD_ID_TOKEN``, or ``--impersonate-service-account`` /
``$REFUNDGUARD_IMPERSONATE`` as the CLI), answers ``GET /events/unpublished`` and
``GET /reconciliation/runs`` (the last run's state shown); the console, when deployed, serves its
page with a Content-Security-Policy. Each check prints one line, OK or FAIL with the reason; the
exit code is the number of failures (0: all passed). ``--apple-test Sandbox|Production`` also has
Apple send a TEST notification and reports its delivery (``refundguard-admin apple-test``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

TIMEOUT_S = 20.0


@dataclass
class Answer:
    status: int
    body: Any
    headers: dict[str, str]


def http(method: str, url: str, *, token: str | None = None, body: Any = None) -> Answer:
    import requests

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        response = requests.request(
            method, url, headers=headers, json=body, timeout=TIMEOUT_S, allow_redirects=False
        )
    except requests.RequestException as exc:
        return Answer(0, f"{type(exc).__name__}: {str(exc)[:200]}", {})
    try:
        parsed: Any = response.json()
    except ValueError:
        parsed = response.text[:200]
    return Answer(response.status_code, parsed, {k.lower(): v for k, v in response.headers.items()})


def terraform_outputs(chdir: str = "infra") -> dict[str, str]:
    done = subprocess.run(
        ["terraform", f"-chdir={chdir}", "output", "-json"],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"terraform output failed: {done.stderr.strip()[:300]}")
    return {k: v.get("value") for k, v in json.loads(done.stdout).items() if v.get("value")}


def checks(
    args: argparse.Namespace, token: Callable[[], str]
) -> list[tuple[str, Callable[[], str | None]]]:
    """(name, check) pairs; a check returns None when it passed, else why it failed."""
    found: list[tuple[str, Callable[[], str | None]]] = []
    apple, admin, console = args.apple_url, args.admin_url, args.console_url

    def expect(answer: Answer, statuses: tuple[int, ...]) -> str | None:
        if answer.status in statuses:
            return None
        return f"HTTP {answer.status or 'unreachable'}: {str(answer.body)[:200]}"

    if apple:
        found.append(
            (
                f"apple_notifications refuses an unsigned body ({apple})",
                lambda: expect(http("POST", apple, body={"signedPayload": "smoke-check"}), (400,)),
            )
        )
    if admin:
        base = admin.rstrip("/")
        found.append(
            (
                "admin refuses a call without a token",
                lambda: expect(http("GET", f"{base}/events/unpublished"), (401, 403)),
            )
        )

        def unpublished() -> str | None:
            answer = http("GET", f"{base}/events/unpublished", token=token())
            problem = expect(answer, (200,))
            if problem is None and isinstance(answer.body, dict):
                on, count = answer.body.get("events_on"), answer.body.get("count")
                print(f"    events on: {on}, waiting: {count}")
            return problem

        def runs() -> str | None:
            answer = http("GET", f"{base}/reconciliation/runs?limit=1", token=token())
            problem = expect(answer, (200,))
            if problem is None and isinstance(answer.body, dict):
                last = (answer.body.get("runs") or [{}])[0]
                state, at = last.get("state", "none yet"), last.get("started_at", "")
                print(f"    last reconciliation run: {state} {at}")
            return problem

        found.append(("admin answers your admin token: GET /events/unpublished", unpublished))
        found.append(("admin: GET /reconciliation/runs", runs))
        if args.apple_test:

            def apple_test() -> str | None:
                body = {"environment": args.apple_test}
                answer = http("POST", f"{base}/apple/notifications:test", token=token(), body=body)
                problem = expect(answer, (200,))
                if problem is None:
                    print(
                        f"    token {answer.body.get('test_notification_token')}: follow it with "
                        f"refundguard-admin apple-test-status TOKEN --environment {args.apple_test}"
                    )
                return problem

            found.append((f"Apple sends a TEST notification ({args.apple_test})", apple_test))
    if console:

        def page() -> str | None:
            answer = http("GET", console.rstrip("/") + "/")
            problem = expect(answer, (200,))
            if problem is None and "content-security-policy" not in answer.headers:
                return "no Content-Security-Policy header"
            return problem

        found.append((f"admin console serves its page ({console})", page))
    return found


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="scripts/smoke_check.py",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    parser.add_argument("--from-terraform", action="store_true", help="URLs from infra/'s outputs")
    parser.add_argument("--apple-url", help="terraform output apple_notifications_url")
    parser.add_argument("--admin-url", help="terraform output admin_url")
    parser.add_argument("--console-url", help="terraform output console_url (if deployed)")
    parser.add_argument("--token", help="an admin ID token (default: $REFUNDGUARD_ID_TOKEN)")
    parser.add_argument("--impersonate-service-account", dest="impersonate", metavar="SA_EMAIL")
    parser.add_argument("--apple-test", choices=("Production", "Sandbox"), help="also Apple's test")
    args = parser.parse_args(argv)
    if args.from_terraform:
        outputs = terraform_outputs()
        args.apple_url = args.apple_url or outputs.get("apple_notifications_url")
        args.admin_url = args.admin_url or outputs.get("admin_url")
        args.console_url = args.console_url or outputs.get("console_url")
    if not (args.apple_url or args.admin_url or args.console_url):
        parser.error(
            "give the URLs to check (--apple-url, --admin-url, --console-url) or --from-terraform"
        )
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    cached: list[str] = []

    def token() -> str:
        if not cached:
            from refundguard_admin.tokens import get_id_token

            cached.append(
                get_id_token(
                    args.admin_url.rstrip("/"),
                    token=args.token or os.environ.get("REFUNDGUARD_ID_TOKEN"),
                    impersonate=args.impersonate or os.environ.get("REFUNDGUARD_IMPERSONATE"),
                )
            )
        return cached[0]

    failures = 0
    for name, check in checks(args, token):
        try:
            problem = check()
        except Exception as exc:  # a token that cannot be had, ...: this check fails, go on
            problem = f"{type(exc).__name__}: {str(exc)[:200]}"
        print(
            f"{'OK  ' if problem is None else 'FAIL'} {name}" + (f": {problem}" if problem else "")
        )
        failures += problem is not None
    print(f"{'all passed' if not failures else f'{failures} failed'}", file=sys.stderr)
    return min(failures, 100)


if __name__ == "__main__":
    raise SystemExit(main())
