"""The CLI's operations commands: ``runs`` (the last reconciliation runs), ``run`` (start one
now), ``refund-requests`` (the stores' refund questions, pending first), ``apple-test`` (Apple
sends a TEST notification to the deployment; then its delivery is followed) and
``apple-test-status``. Every text the function answers is printed through ``render.safe``."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

from .render import safe

COMMANDS = {
    "runs": "the last reconciliation runs (GET /reconciliation/runs)",
    "run": "start a reconciliation run now (POST /reconciliation:run)",
    "refund-requests": "the stores' refund requests, pending first (GET /refund-requests)",
    "apple-test": "have Apple send a TEST notification to this deployment and follow its delivery "
    "(POST /apple/notifications:test)",
    "apple-test-status": "how Apple's TEST notification went (GET /apple/notifications/test/TOKEN)",
}
APPLE_ENVIRONMENTS = ("Production", "Sandbox")


def add_arguments(name: str, sub: argparse.ArgumentParser) -> None:
    if name.startswith("apple-test"):
        if name == "apple-test-status":
            sub.add_argument("test_token", help="the token apple-test printed")
        sub.add_argument(
            "--environment",
            choices=APPLE_ENVIRONMENTS,
            default="Production",
            help="Apple sends to the URL App Store Connect has for it (default Production)",
        )
        sub.add_argument("--bundle-id", help="the app (default: the first of APPLE_BUNDLE_IDS)")
    if name == "apple-test":
        sub.add_argument(
            "--wait",
            type=float,
            default=30.0,
            metavar="SECONDS",
            help="follow the delivery this long (default 30; 0: print the token only)",
        )
    if name in ("runs", "refund-requests"):
        sub.add_argument("--limit", type=int, help="how many (default: the function's)")
    if name == "refund-requests":
        sub.add_argument(
            "--state", choices=("pending", "answered", "unanswerable", "expired"), help="only these"
        )


def request_of(args: argparse.Namespace) -> tuple[str, str]:
    """(method, path and query) of a command."""
    query = []
    if getattr(args, "limit", None):
        query.append(f"limit={int(args.limit)}")
    if getattr(args, "state", None):
        query.append(f"state={args.state}")
    suffix = "?" + "&".join(query) if query else ""
    if args.command == "runs":
        return "GET", "/reconciliation/runs" + suffix
    if args.command == "run":
        return "POST", "/reconciliation:run"
    if args.command == "apple-test":
        return "POST", "/apple/notifications:test"
    if args.command == "apple-test-status":
        return "GET", status_path(args.test_token, args)
    return "GET", "/refund-requests" + suffix


def body_of(args: argparse.Namespace) -> dict[str, Any] | None:
    """The JSON body of a command's POST (None: no body)."""
    if args.command != "apple-test":
        return None
    body = {"environment": args.environment}
    if args.bundle_id:
        body["bundle_id"] = args.bundle_id
    return body


def status_path(test_token: str, args: argparse.Namespace) -> str:
    query = {"environment": args.environment}
    if args.bundle_id:
        query["bundle_id"] = args.bundle_id
    return f"/apple/notifications/test/{quote(test_token, safe='')}?{urlencode(query)}"


def follow_test(
    requested: dict[str, Any],
    args: argparse.Namespace,
    get: Callable[[str], tuple[int, dict[str, Any]]],
    *,
    every_s: float = 2.0,
) -> tuple[int, dict[str, Any]]:
    """Ask for the TEST notification's status until Apple has made an attempt or ``args.wait``
    has passed: (HTTP status, the requested answer with the status's fields)."""
    token = str(requested.get("test_notification_token"))
    deadline = time.monotonic() + args.wait
    while True:
        status, body = get(status_path(token, args))
        # 404 4040008: Apple has no status yet; anything else is the answer to show
        waiting = status == 404 or (status == 200 and not body.get("send_attempts"))
        if not waiting or time.monotonic() + every_s > deadline:
            break
        time.sleep(every_s)
    if status == 404:
        return 200, {**requested, "send_attempts": [], "delivered": False}
    return status, {**requested, **body} if status == 200 else body


def _count(source: dict[str, Any]) -> str:
    return (
        f"seen {safe(source.get('seen'))}, applied {safe(source.get('applied'))}, "
        f"known {safe(source.get('already_known'))}, rejected {safe(source.get('rejected', 0))}"
    )


def render_run(run: dict[str, Any]) -> list[str]:
    window = run.get("window") or {}
    lines = [
        f"{safe(run.get('run_id'))}  {safe(run.get('state'))}  "
        f"{safe(run.get('started_at'))} -> {safe(run.get('finished_at') or '...')}  "
        f"({safe(run.get('trigger') or '-')}) window {safe(window.get('start_at') or '-')} .. "
        f"{safe(window.get('end_at') or '-')}"
    ]
    for source in run.get("sources") or []:
        if not isinstance(source, dict):
            continue
        lines.append(
            f"    {safe(source.get('source'))} {safe(source.get('app'))} "
            f"{safe(source.get('environment'))}: {_count(source)}; cursor "
            f"{safe(source.get('cursor') or '-')}" + ("; more to do" if source.get("more") else "")
        )
        lines += [f"      error: {safe(e)}" for e in source.get("errors") or []]
    requests = run.get("refund_requests") or {}
    if requests:
        shown = ", ".join(f"{safe(k)} {safe(v)}" for k, v in sorted(requests.items()))
        lines.append(f"    refund requests: {shown}")
    if run.get("error"):
        lines.append(f"    error: {safe(run['error'])}")
    return lines


def _when(ms: Any) -> str:
    if not isinstance(ms, int) or isinstance(ms, bool):
        return "-"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def render_test(command: str, body: dict[str, Any]) -> str:
    env, bundle = safe(body.get("environment")), safe(body.get("bundle_id"))
    token = safe(body.get("test_notification_token"))
    lines = []
    if command == "apple-test":
        lines.append(f"Apple TEST notification requested ({env}, {bundle}): token {token}")
    attempts = [a for a in body.get("send_attempts") or [] if isinstance(a, dict)]
    for attempt in attempts:
        when, result = _when(attempt.get("attempt_date_ms")), safe(attempt.get("result"))
        lines.append(f"  attempt {when}: {result}")
    if body.get("delivered") is True:
        lines.append("Delivered: Apple reached apple_notifications and it answered 200.")
    elif attempts:
        lines.append(
            "NOT delivered: check the URL in App Store Connect for this environment (terraform "
            "output apple_notifications_url, Version 2) and the function's logs."
        )
    else:
        lines.append(
            "No attempt recorded yet; ask again: refundguard-admin apple-test-status "
            f"{token if command == 'apple-test' else 'TOKEN'} --environment {env}"
        )
    return "\n".join(lines)


def render(command: str, body: dict[str, Any]) -> str:
    if command.startswith("apple-test"):
        return render_test(command, body)
    if command == "runs":
        runs = body.get("runs") or []
        lines = [f"Reconciliation runs (newest first, {len(runs)}):"]
        for run in runs:
            lines += render_run(run) if isinstance(run, dict) else []
        return "\n".join(lines if runs else [*lines, "  (none)"])
    if command == "run":
        lines = [f"Run {safe(body.get('run_id'))}: {safe(body.get('state'))}"]
        run = body.get("run")
        if isinstance(run, dict) and run.get("sources") is not None:
            lines += render_run(run)
        return "\n".join(lines)
    requests = body.get("requests") or []
    lines = [f"Refund requests (pending first, {len(requests)}):"]
    for item in requests:
        if not isinstance(item, dict):
            continue
        answer = item.get("answer") or {}
        preference = answer.get("refundPreference") if isinstance(answer, dict) else None
        lines.append(
            f"  {safe(item.get('state')):<12} {safe(item.get('kind')):<21} "
            f"{safe(item.get('entitlement_id'))} order {safe(item.get('order_id') or '-')} "
            f"received {safe(item.get('received_at'))} deadline {safe(item.get('deadline_at'))}"
            + (f" answered {safe(preference)}" if preference else "")
        )
        if item.get("reason"):
            lines.append(f"      {safe(item['reason'])}")
    return "\n".join(lines if requests else [*lines, "  (none)"])
