"""The CLI's reconciler and refund-request commands: ``runs`` (the last reconciliation runs),
``run`` (start one now), ``refund-requests`` (the stores' refund questions, pending first). Every
text the function answers is printed through ``render.safe``."""

from __future__ import annotations

import argparse
from typing import Any

from .render import safe

COMMANDS = {
    "runs": "the last reconciliation runs (GET /reconciliation/runs)",
    "run": "start a reconciliation run now (POST /reconciliation:run)",
    "refund-requests": "the stores' refund requests, pending first (GET /refund-requests)",
}


def add_arguments(name: str, sub: argparse.ArgumentParser) -> None:
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
    return "GET", "/refund-requests" + suffix


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


def render(command: str, body: dict[str, Any]) -> str:
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
