"""The CLI's tenant commands: ``me`` (your roles), ``tenants`` (list, create, show, update,
suspend, resume, delete), ``staff`` (list, add, remove), ``entitlements`` (a tenant's, every page:
the backfill) and ``migrate`` (the upgrade's tenant-field migration, page after page, resumable
with ``--page-token``). Every text the function answers is printed through ``render.safe``.

    refundguard-admin tenants create acme --name "Acme" --play-package com.acme.app \\
        --apple-app com.acme.ios:1234567890:Production+Sandbox --play-api
    refundguard-admin tenants update acme --support-can-act yes --policy REFUND_REQUESTS=answer
    refundguard-admin staff add ann@acme.example --tenant acme --role admin
    refundguard-admin staff add svc@platform.iam.gserviceaccount.com --platform service
    refundguard-admin entitlements acme --status revoked --updated-since 2026-11-01T00:00:00Z
    refundguard-admin migrate
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any, TextIO
from urllib.parse import quote, urlencode

from .render import safe

COMMANDS = {
    "me": "who you are to the admin API: platform role and tenants (GET /me)",
    "tenants": "list, create, show, update, suspend, resume or delete tenants (/tenants)",
    "staff": "list, add or remove a tenant's staff, or platform roles (/tenants/ID/staff, /staff)",
    "entitlements": "every entitlement of a tenant, page after page: the backfill "
    "(GET /tenants/ID/entitlements)",
    "migrate": "stamp tenant=default on entitlements and refund requests written before tenants, "
    "page after page (POST /migrations/tenant-field:run)",
}
TENANT_ACTIONS = ("list", "create", "show", "update", "suspend", "resume", "delete")
STAFF_ACTIONS = ("list", "add", "remove")
#: (status, body) of one API call: ``send(method, path, body)``.
Send = Callable[[str, str, dict[str, Any] | None], tuple[int, dict[str, Any]]]


def add_arguments(name: str, sub: argparse.ArgumentParser) -> None:
    if name == "tenants":
        sub.add_argument("action", choices=TENANT_ACTIONS)
        sub.add_argument("tenant_id", nargs="?", help="the tenant (all but list)")
        sub.add_argument("--name", help="display name (create, update)")
        sub.add_argument(
            "--play-package", action="append", metavar="PACKAGE", help="a Play app (repeat)"
        )
        sub.add_argument(
            "--apple-app",
            action="append",
            metavar="BUNDLE_ID[:APP_APPLE_ID][:ENV+ENV]",
            help="an Apple app (repeat); environments Production (default) and/or Sandbox",
        )
        sub.add_argument("--play-api", choices=("yes", "no"), help="ask the Play Developer API")
        sub.add_argument("--support-can-act", choices=("yes", "no"), help="support may act")
        sub.add_argument(
            "--policy", action="append", metavar="REFUND_NAME=VALUE", help="refund policy setting"
        )
        sub.add_argument("--limit", type=int, help="tenants per page (list)")
        sub.add_argument("--yes", action="store_true", help="confirm delete")
    elif name == "staff":
        sub.add_argument("action", choices=STAFF_ACTIONS)
        sub.add_argument("email", nargs="?", help="the person (add, remove)")
        sub.add_argument("--tenant", help="the tenant whose staff this is")
        sub.add_argument("--role", choices=("admin", "support"), help="their role there (add)")
        sub.add_argument(
            "--platform", choices=("admin", "service"), help="a platform role (add; no --tenant)"
        )
    elif name == "entitlements":
        sub.add_argument("tenant_id")
        sub.add_argument("--status", help="only this status (active, revoked, ...)")
        sub.add_argument("--updated-since", metavar="ISO_TIME", help="e.g. 2026-11-01T00:00:00Z")
        sub.add_argument("--page-size", type=int, default=500, help="per request (default 500)")
    elif name == "migrate":
        sub.add_argument("--page-size", type=int, default=200, help="per request (default 200)")
        sub.add_argument("--page-token", help="resume where a stopped migration left off")


def usage_problem(args: argparse.Namespace) -> str | None:
    """The first thing wrong with the command line, or None."""
    if args.command == "tenants":
        checks = [
            (
                args.action != "list" and not args.tenant_id,
                f"tenants {args.action} needs TENANT_ID",
            ),
            (args.action == "create" and not args.name, "tenants create needs --name"),
            (
                args.action == "delete" and not args.yes,
                "tenants delete removes the tenant and frees its apps: add --yes",
            ),
        ]
    elif args.command == "staff":
        adding = args.action == "add"
        checks = [
            (args.action != "list" and not args.email, f"staff {args.action} needs EMAIL"),
            (
                adding and bool(args.tenant) == bool(args.platform),
                "staff add needs --tenant T --role R, or --platform ROLE",
            ),
            (adding and args.tenant and not args.role, "staff add --tenant needs --role"),
            (
                args.action == "list" and args.platform,
                "staff list takes --tenant T, or nothing for platform roles",
            ),
        ]
    else:
        checks = []
    return next((message for failed, message in checks if failed), None)


def _apple_app(raw: str) -> dict[str, Any]:
    parts = raw.split(":")
    app: dict[str, Any] = {"bundle_id": parts[0]}
    for part in parts[1:]:
        if part.isdigit():
            app["app_apple_id"] = int(part)
        elif part:
            app["environments"] = part.split("+")
    return app


def tenant_fields(args: argparse.Namespace) -> dict[str, Any]:
    """The fields a create or update names."""
    fields: dict[str, Any] = {}
    if args.name:
        fields["display_name"] = args.name
    if args.play_package:
        fields["play_packages"] = list(args.play_package)
    if args.apple_app:
        fields["apple_apps"] = [_apple_app(a) for a in args.apple_app]
    if args.play_api:
        fields["play_api"] = args.play_api == "yes"
    if args.support_can_act:
        fields["support_can_act"] = args.support_can_act == "yes"
    if args.policy:
        fields["policy"] = dict(p.partition("=")[::2] for p in args.policy)
    return fields


def _t(tenant_id: str) -> str:
    return f"/tenants/{quote(tenant_id, safe='')}"


def run(args: argparse.Namespace, send: Send, err: TextIO) -> tuple[int, dict[str, Any]]:
    """The command's request(s): (status, body) of the last, or the whole listing."""
    if args.command == "me":
        return send("GET", "/me", None)
    if args.command == "migrate":
        return _migrate(args, send, err)
    if args.command == "entitlements":
        query = {"limit": str(args.page_size)}
        if args.status:
            query["status"] = args.status
        if args.updated_since:
            query["updated_since"] = args.updated_since
        return _all_pages(send, f"{_t(args.tenant_id)}/entitlements", query, "entitlements")
    if args.command == "staff":
        return _staff(args, send)
    return _tenants(args, send)


def _all_pages(
    send: Send, path: str, query: dict[str, str], key: str
) -> tuple[int, dict[str, Any]]:
    found: list[Any] = []
    token = None
    while True:
        page = {**query, **({"page_token": token} if token else {})}
        status, body = send("GET", f"{path}?{urlencode(page)}" if page else path, None)
        if status != 200:
            return status, body
        found += body.get(key) or []
        token = body.get("next_page_token")
        if not token:
            return 200, {key: found, "next_page_token": None}


def _tenants(args: argparse.Namespace, send: Send) -> tuple[int, dict[str, Any]]:
    action = args.action
    if action == "list":
        query = {"limit": str(args.limit)} if args.limit else {}
        return _all_pages(send, "/tenants", query, "tenants")
    path = _t(args.tenant_id)
    if action == "create":
        return send("POST", "/tenants", {"id": args.tenant_id, **tenant_fields(args)})
    if action == "show":
        return send("GET", path, None)
    if action == "delete":
        return send("DELETE", path, None)
    status, current = send("GET", path, None)  # its version: a change made on it, or a 409
    if status != 200:
        return status, current
    fields = tenant_fields(args) if action == "update" else {}
    if action in ("suspend", "resume"):
        fields["status"] = "suspended" if action == "suspend" else "active"
    version = (current.get("tenant") or {}).get("version")
    return send("PATCH", path, {"version": version, **fields})


def _staff(args: argparse.Namespace, send: Send) -> tuple[int, dict[str, Any]]:
    email = quote(args.email or "", safe="@")
    if args.tenant:
        path = f"{_t(args.tenant)}/staff"
        if args.action == "list":
            return send("GET", path, None)
        if args.action == "add":
            return send("PUT", f"{path}/{email}", {"role": args.role})
        return send("DELETE", f"{path}/{email}", None)
    if args.action == "list":
        return send("GET", "/staff", None)
    if args.action == "add":
        return send("PUT", f"/staff/{email}", {"platform": args.platform})
    return send("DELETE", f"/staff/{email}", None)


def _migrate(args: argparse.Namespace, send: Send, err: TextIO) -> tuple[int, dict[str, Any]]:
    token = args.page_token
    updated = scanned = pages = 0
    while True:
        body: dict[str, Any] = {"limit": args.page_size}
        if token:
            body["page_token"] = token
        status, answer = send("POST", "/migrations/tenant-field:run", body)
        if status != 200:
            if token:
                print(f"stopped; resume with --page-token {safe(token)}", file=err)
            return status, answer
        pages += 1
        updated += int(answer.get("updated") or 0)
        scanned += int(answer.get("scanned") or 0)
        token = answer.get("next_page_token")
        if not token:
            return 200, {"updated": updated, "scanned": scanned, "pages": pages}


# ---------------------------------------------------------------------------------------- text


def _tenant_lines(tenant: dict[str, Any]) -> list[str]:
    apple = [
        f"{safe(a.get('bundle_id'))} ({safe(a.get('app_apple_id') or '-')}, "
        f"{'+'.join(safe(e) for e in a.get('environments') or [])})"
        for a in tenant.get("apple_apps") or []
        if isinstance(a, dict)
    ]
    keys = [safe(k.get("key_id")) for k in tenant.get("apple_keys") or [] if isinstance(k, dict)]
    policy = tenant.get("policy") or {}
    return [
        f"Tenant {safe(tenant.get('id'))}: {safe(tenant.get('display_name'))} "
        f"({safe(tenant.get('status'))}, version {safe(tenant.get('version'))})",
        f"  play packages    {', '.join(safe(p) for p in tenant.get('play_packages') or []) or '-'}"
        + (" (Play Developer API on)" if tenant.get("play_api") else ""),
        f"  apple apps       {', '.join(apple) or '-'}",
        f"  apple keys       {', '.join(keys) or '-'}",
        f"  support can act  {'yes' if tenant.get('support_can_act') else 'no'}",
        "  policy           "
        + (", ".join(f"{safe(k)}={safe(v)}" for k, v in sorted(policy.items())) or "-"),
    ]


def _render_me(args: argparse.Namespace, body: dict[str, Any]) -> str:
    lines = [f"{safe(body.get('email'))}: platform role {safe(body.get('platform_role') or '-')}"]
    for t in body.get("tenants") or []:
        lines.append(
            f"  {safe(t.get('id')):<24} {safe(t.get('role')):<15} {safe(t.get('status')):<10} "
            f"{safe(t.get('display_name'))}"
        )
    return "\n".join(lines)


def _render_migrate(args: argparse.Namespace, body: dict[str, Any]) -> str:
    return (
        f"Migration done: {safe(body.get('updated'))} document(s) stamped tenant=default, "
        f"{safe(body.get('scanned'))} looked at, in {safe(body.get('pages'))} page(s)."
    )


def _render_entitlements(args: argparse.Namespace, body: dict[str, Any]) -> str:
    found = body.get("entitlements") or []
    lines = [f"Entitlements of {safe(args.tenant_id)} (oldest change first, {len(found)}):"]
    for e in found:
        lines.append(
            f"  {safe(e.get('updated_at'))}  {safe(e.get('status')):<9} "
            f"{safe(e.get('store'))} {safe(e.get('purchase_id'))}"
        )
    return "\n".join(lines)


def _render_staff(args: argparse.Namespace, body: dict[str, Any]) -> str:
    if "staff" in body:
        staff = body["staff"] or []
        lines = [f"Staff ({len(staff)}):"]
        for s in staff:
            role = s.get("role") or s.get("platform_role")
            lines.append(f"  {safe(s.get('email')):<40} {safe(role)}")
        return "\n".join(lines if staff else [*lines, "  (none)"])
    if body.get("removed"):
        return f"Removed {safe(body.get('email'))}."
    role = body.get("role") or body.get("platform_role")
    return f"{safe(body.get('email'))} is now {safe(role)}."


def _render_tenants(args: argparse.Namespace, body: dict[str, Any]) -> str:
    if "tenants" in body:
        tenants = body["tenants"] or []
        lines = [f"Tenants ({len(tenants)}):"]
        for t in tenants:
            lines.append(
                f"  {safe(t.get('id')):<24} {safe(t.get('status')):<10} "
                f"{safe(t.get('display_name'))}"
            )
        return "\n".join(lines if tenants else [*lines, "  (none)"])
    if "deleted" in body:
        return f"Deleted tenant {safe(body['deleted'])}; its entitlements stay, naming it."
    return "\n".join(_tenant_lines(body.get("tenant") or {}))


_RENDER = {
    "me": _render_me,
    "migrate": _render_migrate,
    "entitlements": _render_entitlements,
    "staff": _render_staff,
    "tenants": _render_tenants,
}


def render(args: argparse.Namespace, body: dict[str, Any]) -> str:
    return _RENDER[args.command](args, body)
