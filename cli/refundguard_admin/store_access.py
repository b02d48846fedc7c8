"""The CLI's commands of a tenant's store access: ``apple-key`` (upload a tenant's App Store
Server API key from its ``.p8`` file, or delete one), ``check-access`` (may refundguard read the
tenant's store accounts? each store's state and the fix) and ``play-account`` (the service account
a creator invites in their Play Console, and its permissions). The key is read from its file and
sent in the request body only: never on a command line, in a URL or printed.

    refundguard-admin play-account
    refundguard-admin apple-key put acme --key-id 2X9R4HXF34 \\
        --issuer-id 57246542-96fe-1a63-e053-0824d011072a --p8 SubscriptionKey_2X9R4HXF34.p8
    refundguard-admin check-access acme
    refundguard-admin apple-key delete acme OLDKEY0001
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import quote

from .render import safe

COMMANDS = {
    "apple-key": "upload a tenant's App Store Server API key (.p8) or delete one "
    "(PUT|DELETE /tenants/ID/apple-key)",
    "check-access": "may refundguard read the tenant's store accounts? each store's state and "
    "the fix (POST /tenants/ID:check-access)",
    "play-account": "the service account to invite in a Play Console, and its permissions "
    "(GET /play/service-account)",
}
MAX_P8_BYTES = 8 * 1024
Send = Callable[[str, str, dict[str, Any] | None], tuple[int, dict[str, Any]]]


def add_arguments(name: str, sub: argparse.ArgumentParser) -> None:
    if name == "apple-key":
        sub.add_argument("action", choices=("put", "delete"))
        sub.add_argument("tenant_id")
        sub.add_argument("key_id", nargs="?", help="the key to delete (delete)")
        sub.add_argument("--key-id", dest="new_key_id", help="the key's id (put)")
        sub.add_argument("--issuer-id", help="your App Store Connect issuer id (put)")
        sub.add_argument("--p8", type=Path, help="the downloaded SubscriptionKey_*.p8 file (put)")
    elif name == "check-access":
        sub.add_argument("tenant_id")


def usage_problem(args: argparse.Namespace) -> str | None:
    if args.command != "apple-key":
        return None
    if args.action == "delete":
        return None if args.key_id else "apple-key delete needs TENANT_ID KEY_ID"
    if not (args.new_key_id and args.issuer_id and args.p8):
        return "apple-key put needs --key-id, --issuer-id and --p8 FILE"
    return None


def _t(tenant_id: str) -> str:
    return f"/tenants/{quote(tenant_id, safe='')}"


def _read_p8(path: Path) -> str:
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_P8_BYTES + 1)
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror}") from None
    if len(data) > MAX_P8_BYTES:
        raise ValueError(f"{path} is not a .p8 key (larger than {MAX_P8_BYTES} bytes)")
    try:
        return data.decode()
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not a .p8 key (not text)") from None


def run(args: argparse.Namespace, send: Send, err: TextIO) -> tuple[int, dict[str, Any]]:
    if args.command == "play-account":
        return send("GET", "/play/service-account", None)
    if args.command == "check-access":
        return send("POST", f"{_t(args.tenant_id)}:check-access", None)
    path = f"{_t(args.tenant_id)}/apple-key"
    if args.action == "delete":
        return send("DELETE", f"{path}/{quote(args.key_id, safe='')}", None)
    try:
        pem = _read_p8(args.p8)
    except ValueError as exc:
        return 400, {"error": "bad_p8_file", "message": str(exc)}
    body = {"key_id": args.new_key_id, "issuer_id": args.issuer_id, "private_key": pem}
    return send("PUT", path, body)


def render(args: argparse.Namespace, body: dict[str, Any]) -> str:
    if args.command == "play-account":
        permissions = ", ".join(safe(p) for p in body.get("permissions") or [])
        text = (
            f"Invite {safe(body.get('email'))} in the creator's Play Console (Users and "
            f"permissions > Invite new users) with: {permissions}."
        )
        return f"{text}\nNote: {safe(body['note'])}" if body.get("note") else text
    if args.command == "check-access":
        lines = []
        for store in ("google", "apple"):
            check = body.get(store) or {}
            lines.append(f"{store:<7}{safe(check.get('state'))}: {safe(check.get('fix'))}")
            details = check.get("details") or {}
            apps = details.get("packages") or details.get("apps") or {}
            for app, state in sorted(apps.items()):
                lines.append(f"         {safe(app)}: {safe(state)}")
        return "\n".join(lines)
    tenant = body.get("tenant") or {}
    keys = [
        f"{safe(k.get('key_id'))} (added {safe(k.get('added_at'))})"
        for k in tenant.get("apple_keys") or []
        if isinstance(k, dict)
    ]
    used = f"; in use: {keys[0]}" if keys else ""
    return f"Tenant {safe(tenant.get('id'))}: Apple keys {', '.join(keys) or '-'}{used}"
