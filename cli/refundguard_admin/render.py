"""What the admin CLI prints: entitlements, history and order look-ups, every store-supplied text
through ``safe`` (no control or format character reaches the terminal raw)."""

from __future__ import annotations

import json
import unicodedata
from typing import Any


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
        ("order", ent.get("order_id") or "-"),
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


def render_order(body: dict[str, Any]) -> str:
    """``GET /orders/{order_id}``: the order, where it was found, then each entitlement."""
    results = body.get("results") or []
    lines = [
        f"Order {safe(body.get('order_id'))} ({safe(body.get('store'))}), found by "
        f"{safe(body.get('found_by'))}: {len(results)} entitlement(s)"
    ]
    for number, result in enumerate(results, 1):
        if not isinstance(result, dict):
            continue
        lines.append("")
        lines.append(f"[{number}] " + render("show", result, False))
    return "\n".join(lines)
