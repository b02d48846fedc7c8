"""Admin CLI for the ``admin`` function: ``show``, ``regrant``, ``revoke``.

    refundguard-admin --url URL show google PURCHASE_TOKEN
    refundguard-admin --url URL regrant apple 2000000123456789 --reason "paid by invoice"
    refundguard-admin --url URL revoke google PURCHASE_TOKEN --reason "chargeback" --json

(install with ``pip install ./cli``; ``python -m refundguard_admin`` works as well).
``--url`` defaults to ``$REFUNDGUARD_ADMIN_URL``. The ID token comes from, in order:

1. ``--token`` / ``$REFUNDGUARD_ID_TOKEN`` (a token you already have);
2. ``--impersonate-service-account SA`` / ``$REFUNDGUARD_IMPERSONATE``: your Google credentials
   (Application Default Credentials) impersonate SA for an ID token whose audience is ``--audience``
   (default: the URL) and which carries SA's email (you need roles/iam.serviceAccountTokenCreator);
3. ``google.oauth2.id_token.fetch_id_token``: a service-account key in
   ``$GOOGLE_APPLICATION_CREDENTIALS``, an impersonated-service-account ADC file, or the metadata
   server when running on Google Cloud;
4. ``gcloud auth print-identity-token``: the active gcloud *user* account; such a token's audience
   is gcloud's own OAuth client id, which ``ADMIN_AUDIENCES`` must then list (see docs/admin.md).

A POST always carries an ``Idempotency-Key`` (``--idempotency-key``, default: a new one per
invocation), so the CLI's own retries after a network error or a 5xx never act twice.

Exit codes: 0 success; 1 the function answered an error (4xx/5xx); 2 usage; 3 no ID token could be
obtained; 4 the function could not be reached.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import unicodedata
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TextIO

EXIT_OK = 0
EXIT_API_ERROR = 1
EXIT_USAGE = 2
EXIT_NO_TOKEN = 3
EXIT_UNREACHABLE = 4

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"


class CliError(Exception):
    def __init__(self, exit_code: int, message: str) -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.message = message


# ---------------------------------------------------------------------------------------- tokens


def _token_by_impersonation(service_account: str, audience: str) -> str:
    import google.auth
    from google.auth import impersonated_credentials
    from google.auth.transport.requests import Request

    source, _ = google.auth.default(scopes=[CLOUD_PLATFORM_SCOPE])
    target = impersonated_credentials.Credentials(
        source_credentials=source,
        target_principal=service_account,
        target_scopes=[CLOUD_PLATFORM_SCOPE],
        lifetime=300,
    )
    credentials = impersonated_credentials.IDTokenCredentials(
        target, target_audience=audience, include_email=True
    )
    credentials.refresh(Request())
    return str(credentials.token)


def _token_from_environment(audience: str) -> str:
    import google.oauth2.id_token
    from google.auth.transport.requests import Request

    return str(google.oauth2.id_token.fetch_id_token(Request(), audience))


def _token_from_gcloud() -> str:
    gcloud = shutil.which("gcloud")
    if gcloud is None:
        raise OSError("gcloud is not installed")
    completed = subprocess.run(  # noqa: S603 - fixed arguments, no shell
        [gcloud, "auth", "print-identity-token"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    token = completed.stdout.strip()
    if completed.returncode != 0 or not token:
        raise OSError(completed.stderr.strip()[-300:] or "gcloud printed no token")
    return token


def get_id_token(
    audience: str,
    *,
    token: str | None = None,
    impersonate: str | None = None,
    err: TextIO = sys.stderr,
) -> str:
    """An ID token for ``audience`` from the first source that works (see the module docstring)."""
    if token:
        return token.strip()
    if impersonate:
        try:
            return _token_by_impersonation(impersonate, audience)
        except Exception as exc:
            raise CliError(
                EXIT_NO_TOKEN,
                f"could not impersonate {impersonate}: {type(exc).__name__}: {str(exc)[:300]}",
            ) from exc
    failures: list[str] = []
    try:
        return _token_from_environment(audience)
    except Exception as exc:
        failures.append(f"google-auth: {type(exc).__name__}: {str(exc)[:200]}")
    try:
        found = _token_from_gcloud()
    except (OSError, subprocess.SubprocessError) as exc:
        failures.append(f"gcloud: {str(exc)[:300]}")
    else:
        print(
            "note: using the active gcloud user account's ID token (its audience is gcloud's "
            "client id; ADMIN_AUDIENCES must list it)",
            file=err,
        )
        return found
    raise CliError(
        EXIT_NO_TOKEN,
        "could not obtain an ID token; use --token, --impersonate-service-account, a "
        "service-account key in GOOGLE_APPLICATION_CREDENTIALS, or 'gcloud auth login'. "
        + "; ".join(failures),
    )


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


def entitlements_url(base: str, method: str) -> str:
    """``.../entitlements:lookup`` and friends: the purchase id travels in the body, so it never
    reaches a URL (and Cloud Run's request logs)."""
    return f"{base.rstrip('/')}/entitlements:{method}"


# Characters that can rewrite a terminal or reorder what it shows: C0 and C1 controls, DEL, and
# Unicode format characters (bidi overrides and isolates, zero-width, line/paragraph separators).
def safe(value: Any) -> str:
    """Store-supplied text made harmless for a terminal: every control or format character is
    shown as an escape (``\\x1b``, ``\\u202e``), never sent raw."""
    text = str(value)
    if text.isprintable() and text.isascii():
        return text
    out = []
    for char in text:
        if char.isprintable() and unicodedata.category(char) != "Cf":
            out.append(char)
        elif ord(char) < 0x100:
            out.append(f"\\x{ord(char):02x}")
        elif ord(char) < 0x10000:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(f"\\U{ord(char):08x}")
    return "".join(out)


# ---------------------------------------------------------------------------------------- output


def _short(purchase_id: str, width: int = 48) -> str:
    text = safe(purchase_id)
    return text if len(text) <= width else text[: width - 1] + "…"


def render_entitlement(ent: dict[str, Any]) -> list[str]:
    access = "yes" if ent.get("access") else "NO"
    rows = [
        ("purchase", f"{ent.get('store')} {_short(str(ent.get('purchase_id')))}"),
        ("status", f"{ent.get('status')} (access: {access})"),
        ("environment", ent.get("environment")),
        ("product", ent.get("product_id") or "-"),
        ("user", ent.get("user_id") or "-"),
        ("updated", ent.get("updated_at")),
        (
            "last event",
            f"{ent.get('last_source') or '-'} {ent.get('last_event_type') or ''} "
            f"at {ent.get('last_event_time_at') or '-'}",
        ),
    ]
    return [f"  {name:<12} {safe(value)}" for name, value in rows]


def render_event(entry: dict[str, Any]) -> str:
    line = (
        f"  {safe(entry.get('event_time_at'))}  {safe(entry.get('source')):<6} "
        f"{safe(entry.get('type')):<28} {safe(entry.get('effect')):<8} "
        f"{safe(entry.get('status_before') or '-')} -> {safe(entry.get('status_after'))}"
    )
    if entry.get("actor"):
        line += f"  by {safe(entry['actor'])}"
    if entry.get("reason"):
        line += f": {safe(json.dumps(entry['reason'], ensure_ascii=False))}"
    return line


def render(command: str, body: dict[str, Any], replayed: bool) -> str:
    ent = body.get("entitlement") or {}
    lines: list[str] = []
    if command == "show":
        lines.append("Entitlement")
        lines += render_entitlement(ent)
        history = body.get("history") or []
        total = ent.get("history_count", len(history))
        lines.append(f"History (newest first, {len(history)} of {total}):")
        lines += [render_event(e) for e in history] or ["  (none)"]
    else:
        done = {"regrant": "Re-granted", "revoke": "Revoked"}[command]
        suffix = (
            " (replayed: this Idempotency-Key was already used; nothing new written)"
            if replayed
            else ""
        )
        lines.append(
            f"{done}: now {safe(ent.get('status'))} (effect: {safe(body.get('effect'))}){suffix}"
        )
        lines += render_entitlement(ent)
        if body.get("event"):
            lines.append("Event:")
            lines.append(render_event(body["event"]))
    return "\n".join(lines)


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
        description="Look up, re-grant or revoke an entitlement through the admin function.",
    )
    add_common(parser, None)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, help_text in (
        ("show", "the entitlement and its history"),
        ("regrant", "give access back (with --reason)"),
        ("revoke", "take access away (with --reason)"),
    ):
        sub = commands.add_parser(name, help=help_text)
        # SUPPRESS: an option given before the command is not overwritten by the sub-parser
        add_common(sub, argparse.SUPPRESS)
        sub.add_argument("store", help="google, apple or apple-sandbox")
        sub.add_argument(
            "purchase_id", help="Google purchase token or Apple original transaction id"
        )
        if name != "show":
            sub.add_argument("--reason", required=True, help="why (kept in the history)")
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
    if args.command != "show" and not args.reason.strip():
        print("error: --reason must not be blank", file=err)
        return EXIT_USAGE
    try:
        token = get_id_token(
            args.audience or url.rstrip("/"),
            token=args.token or os.environ.get("REFUNDGUARD_ID_TOKEN"),
            impersonate=args.impersonate or os.environ.get("REFUNDGUARD_IMPERSONATE"),
            err=err,
        )
        target = {"store": args.store, "purchase_id": args.purchase_id}
        if args.command == "show":
            reply = call(
                "POST",
                entitlements_url(url, "lookup"),
                token,
                body=target,
                timeout_s=args.timeout or 30.0,
            )
        else:
            reply = call(
                "POST",
                entitlements_url(url, args.command),
                token,
                body={**target, "reason": args.reason},
                idempotency_key=args.idempotency_key or f"cli-{uuid.uuid4()}",
                timeout_s=args.timeout or 30.0,
            )
    except CliError as exc:
        print(f"error: {safe(exc.message)}", file=err)
        return exc.exit_code
    if args.json:  # ASCII JSON: every control or format character arrives escaped
        print(json.dumps(reply.body, indent=2, ensure_ascii=True), file=out)
    if reply.status != 200:
        code, message = safe(reply.body.get("error")), safe(reply.body.get("message"))
        print(f"error: HTTP {reply.status} {code}: {message}", file=err)
        return EXIT_API_ERROR
    if not args.json:
        print(render(args.command, reply.body, reply.replayed), file=out)
    return EXIT_OK
