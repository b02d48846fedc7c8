"""Admin CLI for the ``admin`` function: ``show``, ``order``, ``regrant``, ``revoke``, (``ops``)
``runs``, ``run``, ``refund-requests``, ``apple-test``, ``apple-test-status``, and (``tenancy``)
``me``, ``tenants``, ``staff``, ``entitlements`` (backfill), ``migrate``, and (``store_access``)
``apple-key``, ``check-access``, ``play-account``.

    refundguard-admin --url URL show google PURCHASE_TOKEN
    refundguard-admin --url URL order GPA.3372-4150-9088-12345
    refundguard-admin --url URL regrant apple 2000000123456789 --reason "paid by invoice"
    refundguard-admin --url URL revoke --order GPA.3372-4150-9088-12345 --reason "chargeback"
    refundguard-admin --url URL revoke google PURCHASE_TOKEN --reason "chargeback" --json
    refundguard-admin --url URL run && refundguard-admin --url URL runs --limit 5
    refundguard-admin --url URL refund-requests --state pending
    refundguard-admin --url URL apple-test --environment Sandbox
    refundguard-admin --url URL regrant google PURCHASE_TOKEN --tenant acme --reason "invoice"
    refundguard-admin --url URL tenants suspend acme
    refundguard-admin --url URL staff add ann@acme.example --tenant acme --role admin
    refundguard-admin --url URL apple-key put acme --key-id K --issuer-id I --p8 KEY.p8
    refundguard-admin --url URL check-access acme

``--order`` resolves the order through ``GET /orders/{order_id}`` and acts on its one
entitlement (refused when the order has several: name the store and purchase id then).

(install with ``pip install ./cli``; ``python -m refundguard_admin`` works as well).
``--url`` defaults to ``$REFUNDGUARD_ADMIN_URL``. The ID token: see ``tokens`` (recommended: your
own admin service account, ``--impersonate-service-account``).

A POST always carries an ``Idempotency-Key`` (``--idempotency-key``, default: a new one per
invocation), so the CLI's own retries after a network error or a 5xx never act twice.

Exit codes: 0 success; 1 the function answered an error (4xx/5xx); 2 usage; 3 no ID token could be
obtained; 4 the function could not be reached.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TextIO
from urllib.parse import quote

from . import ops, store_access, tenancy
from .render import render, render_entitlement, render_event, render_order, safe
from .tokens import TokenError, get_id_token

__all__ = ["main", "render", "render_entitlement", "render_event", "render_order", "safe"]

EXIT_OK = 0
EXIT_API_ERROR = 1
EXIT_USAGE = 2
EXIT_NO_TOKEN = 3
EXIT_UNREACHABLE = 4

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


class CliError(Exception):
    def __init__(self, exit_code: int, message: str) -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.message = message


# ---------------------------------------------------------------------------------------- HTTP


@dataclass(frozen=True)
class Reply:
    status: int
    body: dict[str, Any]
    replayed: bool


def call(
    method: str,
    url: str,
    token: str,
    *,
    body: dict[str, Any] | None = None,
    idempotency_key: str | None = None,
    timeout_s: float = 30.0,
    attempts: int = 3,
    backoff_s: float = 1.0,
) -> Reply:
    """One API call, retried on network errors and 429/5xx (POSTs are idempotent by their key)."""
    import requests

    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    if idempotency_key is not None:
        headers["Idempotency-Key"] = idempotency_key
    last_error = ""
    for attempt in range(1, attempts + 1):
        try:
            response = requests.request(
                method, url, headers=headers, json=body, timeout=timeout_s, allow_redirects=False
            )
        except requests.RequestException as exc:
            last_error = f"{type(exc).__name__}: {str(exc)[:300]}"
        else:
            if response.status_code not in RETRY_STATUSES or attempt == attempts:
                try:
                    parsed = response.json()
                except ValueError:
                    parsed = {"error": "not_json", "message": response.text[:500]}
                if not isinstance(parsed, dict):
                    parsed = {"error": "not_json", "message": str(parsed)[:500]}
                replayed = response.headers.get("Idempotent-Replayed") == "true"
                return Reply(response.status_code, parsed, replayed)
            last_error = f"HTTP {response.status_code}"
        if attempt < attempts:
            time.sleep(backoff_s * 2 ** (attempt - 1))
    raise CliError(EXIT_UNREACHABLE, f"could not reach {url}: {last_error}")


def order_url(base: str, order_id: str) -> str:
    """``.../orders/{order_id}``, the id quoted whole (it never adds a path segment)."""
    return f"{base.rstrip('/')}/orders/{quote(order_id, safe='')}"


def entitlements_url(base: str, method: str) -> str:
    """``.../entitlements:lookup`` and friends: the purchase id travels in the body, so it never
    reaches a URL (and Cloud Run's request logs)."""
    return f"{base.rstrip('/')}/entitlements:{method}"


# ---------------------------------------------------------------------------------------- main


def build_parser() -> argparse.ArgumentParser:
    def add_common(parser: argparse.ArgumentParser, default: Any) -> None:
        parser.add_argument(
            "--url",
            default=default,
            help="the admin function's URL (default: $REFUNDGUARD_ADMIN_URL)",
        )
        parser.add_argument(
            "--audience", default=default, help="ID token audience (default: the URL)"
        )
        parser.add_argument(
            "--token",
            default=default,
            help="an ID token to send (default: $REFUNDGUARD_ID_TOKEN, else "
            "obtained from your Google credentials)",
        )
        parser.add_argument(
            "--impersonate-service-account",
            dest="impersonate",
            default=default,
            metavar="SA_EMAIL",
            help="get the ID token by impersonating this service account "
            "(default: $REFUNDGUARD_IMPERSONATE)",
        )
        parser.add_argument(
            "--json", action="store_true", default=default, help="print the function's JSON answer"
        )
        parser.add_argument(
            "--timeout", type=float, default=default, help="seconds per HTTP attempt (default 30)"
        )

    parser = argparse.ArgumentParser(
        prog="refundguard-admin",
        description="Look up, re-grant or revoke an entitlement, see and start reconciliation "
        "runs and list refund requests through the admin function.",
    )
    add_common(parser, None)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, help_text in (
        ("show", "the entitlement and its history"),
        ("order", "the entitlement(s) of a store order id (Google GPA.*, Apple's)"),
        ("regrant", "give access back (with --reason)"),
        ("revoke", "take access away (with --reason)"),
        *ops.COMMANDS.items(),
        *tenancy.COMMANDS.items(),
        *store_access.COMMANDS.items(),
    ):
        sub = commands.add_parser(name, help=help_text)
        # SUPPRESS: an option given before the command is not overwritten by the sub-parser
        add_common(sub, argparse.SUPPRESS)
        if name == "order":
            sub.add_argument("order_id", help="Google GPA.… or Apple order id")
            continue
        if name in ops.COMMANDS:
            ops.add_arguments(name, sub)
            continue
        if name in tenancy.COMMANDS | store_access.COMMANDS:
            _family(name).add_arguments(name, sub)
            continue
        optional = {"nargs": "?"} if name != "show" else {}
        sub.add_argument("store", help="google, apple or apple-sandbox", **optional)
        sub.add_argument(
            "purchase_id", help="Google purchase token or Apple original transaction id", **optional
        )
        if name != "show":
            sub.add_argument(
                "--order",
                metavar="ORDER_ID",
                help="act on the entitlement of this order id instead of STORE PURCHASE_ID",
            )
            sub.add_argument("--reason", required=True, help="why (kept in the history)")
            sub.add_argument(
                "--tenant",
                help="whose a purchase never seen becomes (when you are staff of several; "
                "platform admins: default 'default')",
            )
            sub.add_argument(
                "--idempotency-key",
                help="reuse to make a retried command safe (default: a new key)",
            )
    return parser


def main(
    argv: Sequence[str] | None = None, *, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    args = build_parser().parse_args(argv)
    url = args.url or os.environ.get("REFUNDGUARD_ADMIN_URL", "").strip()
    if not url:
        print("error: --url (or REFUNDGUARD_ADMIN_URL) is required", file=err)
        return EXIT_USAGE
    problem = _usage_problem(args)
    if problem:
        print(f"error: {problem}", file=err)
        return EXIT_USAGE
    try:
        reply = _call(args, url, err)
    except CliError as exc:
        print(f"error: {safe(exc.message)}", file=err)
        return exc.exit_code
    if reply.status not in (200, 201, 202):
        return _failed(reply, out, err, args.json)
    print(_text(args, reply), file=out)
    return EXIT_OK


def _call(args: argparse.Namespace, url: str, err: TextIO) -> Reply:
    """The command's request(s); CliError when no token can be had or nothing answers."""
    timeout = args.timeout or 30.0
    try:
        token = get_id_token(
            args.audience or url.rstrip("/"),
            token=args.token or os.environ.get("REFUNDGUARD_ID_TOKEN"),
            impersonate=args.impersonate or os.environ.get("REFUNDGUARD_IMPERSONATE"),
        )
    except TokenError as exc:
        raise CliError(EXIT_NO_TOKEN, str(exc)) from exc
    if args.command in tenancy.COMMANDS | store_access.COMMANDS:
        base = url.rstrip("/")

        def send(method: str, path: str, body: dict[str, Any] | None) -> tuple[int, Any]:
            answer = call(method, base + path, token, body=body, timeout_s=timeout)
            return answer.status, answer.body

        status, body = _family(args.command).run(args, send, err)
        return Reply(status, body, False)
    if args.command in ops.COMMANDS:
        method, path = ops.request_of(args)
        base = url.rstrip("/")
        reply = call(method, base + path, token, body=ops.body_of(args), timeout_s=timeout)
        if args.command == "apple-test" and reply.status == 200 and args.wait > 0:

            def get(status_path: str) -> tuple[int, dict[str, Any]]:
                answer = call("GET", base + status_path, token, timeout_s=timeout)
                return answer.status, answer.body

            status, body = ops.follow_test(reply.body, args, get)
            reply = Reply(status, body, False)
        return reply
    if args.command == "order":
        return call("GET", order_url(url, args.order_id), token, timeout_s=timeout)
    target = {"store": args.store, "purchase_id": args.purchase_id}
    if args.command == "show":
        return call("POST", entitlements_url(url, "lookup"), token, body=target, timeout_s=timeout)
    if args.order:
        found = call("GET", order_url(url, args.order), token, timeout_s=timeout)
        if found.status != 200:
            return found
        target = one_target(found.body, args.order)
        print(
            f"order {safe(args.order)}: {safe(target['store'])} {safe(target['purchase_id'])}",
            file=err,
        )
    return call(
        "POST",
        entitlements_url(url, args.command),
        token,
        body={**target, "reason": args.reason, **({"tenant": args.tenant} if args.tenant else {})},
        idempotency_key=args.idempotency_key or f"cli-{uuid.uuid4()}",
        timeout_s=timeout,
    )


def _text(args: argparse.Namespace, reply: Reply) -> str:
    if args.json:  # ASCII JSON: every control or format character arrives escaped
        return json.dumps(reply.body, indent=2, ensure_ascii=True)
    if args.command in tenancy.COMMANDS | store_access.COMMANDS:
        return _family(args.command).render(args, reply.body)
    if args.command in ops.COMMANDS:
        return ops.render(args.command, reply.body)
    if args.command == "order":
        return render_order(reply.body)
    return render(args.command, reply.body, reply.replayed)


def _family(command: str) -> Any:
    """The module of a tenant command: ``tenancy`` or ``store_access``."""
    return store_access if command in store_access.COMMANDS else tenancy


def _usage_problem(args: argparse.Namespace) -> str | None:
    if args.command in tenancy.COMMANDS | store_access.COMMANDS:
        return _family(args.command).usage_problem(args)
    if args.command in ("show", "order", *ops.COMMANDS):
        return None
    if not args.reason.strip():
        return "--reason must not be blank"
    named = args.store is not None and args.purchase_id is not None
    if args.order and (args.store is not None or args.purchase_id is not None):
        return "give either --order ORDER_ID or STORE PURCHASE_ID, not both"
    if not args.order and not named:
        return "give STORE PURCHASE_ID, or --order ORDER_ID"
    return None


def _failed(reply: Reply, out: TextIO, err: TextIO, as_json: bool) -> int:
    if as_json:
        print(json.dumps(reply.body, indent=2, ensure_ascii=True), file=out)
    code, message = safe(reply.body.get("error")), safe(reply.body.get("message"))
    print(f"error: HTTP {reply.status} {code}: {message}", file=err)
    return EXIT_API_ERROR


def one_target(body: dict[str, Any], order_id: str) -> dict[str, str]:
    """The one entitlement of an order look-up, as an action's target; CliError when the order
    has none or several (then the caller names the store and purchase id)."""
    targets = []
    for result in body.get("results") or []:
        ent = result.get("entitlement") if isinstance(result, dict) else None
        if not isinstance(ent, dict):
            continue
        store, environment = str(ent.get("store")), str(ent.get("environment"))
        namespace = store if environment == "Production" else f"{store}-{environment.lower()}"
        targets.append({"store": namespace, "purchase_id": str(ent.get("purchase_id"))})
    if len(targets) == 1:
        return targets[0]
    if not targets:
        raise CliError(EXIT_API_ERROR, f"order {order_id} has no entitlement")
    listed = "; ".join(f"{t['store']} {t['purchase_id']}" for t in targets)
    raise CliError(
        EXIT_USAGE,
        f"order {order_id} has {len(targets)} entitlements ({listed}): name one as "
        "STORE PURCHASE_ID instead of --order",
    )
