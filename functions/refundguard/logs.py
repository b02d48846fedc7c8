"""Structured logs: one JSON line per event, in the shape Cloud Logging parses (``severity``,
``message``, other keys as ``jsonPayload``), every field bounded so no line nears the 256 KB limit.
``bind`` adds fields to the current request's line (``http.serve`` writes it)."""

from __future__ import annotations

import contextvars
import hashlib
import json
import math
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, TextIO

MAX_FIELD_CHARS = 2000  # one string field
MAX_ITEMS = 50  # keys of a mapping, items of a list
MAX_DEPTH = 4
MAX_LINE_BYTES = 64 * 1024  # Cloud Logging takes 256 KB an entry; stay far below
_stream: TextIO | None = None  # None: sys.stdout at call time (pytest's capsys replaces it)
_bound: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "refundguard_log_fields", default=None
)


def token_hash(value: str | None) -> str | None:
    """A short digest of a secret-ish identifier (purchase token), safe to log and to grep for."""
    if value is None:
        return None
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def bounded(value: Any, depth: int = 0) -> Any:  # noqa: PLR0911
    """``value`` made JSON-safe and small: long strings cut, collections capped, depth limited."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if abs(value) < 2**63 else str(value)[:40] + "..."
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, str):
        text = value.encode("utf-8", "backslashreplace").decode("utf-8")
        return text if len(text) <= MAX_FIELD_CHARS else text[:MAX_FIELD_CHARS] + "...[cut]"
    if depth >= MAX_DEPTH:
        return "...[nested]"
    if isinstance(value, Mapping):
        items = list(value.items())
        out = {bounded(str(k))[:200]: bounded(v, depth + 1) for k, v in items[:MAX_ITEMS]}
        if len(items) > MAX_ITEMS:
            out["..."] = f"{len(items) - MAX_ITEMS} more"
        return out
    if isinstance(value, (list, tuple, set, frozenset)):
        seq = list(value)
        out_list = [bounded(v, depth + 1) for v in seq[:MAX_ITEMS]]
        if len(seq) > MAX_ITEMS:
            out_list.append(f"... {len(seq) - MAX_ITEMS} more")
        return out_list
    return bounded(str(value), depth)


def log(severity: str, message: str, **fields: Any) -> None:
    entry: dict[str, Any] = {
        "severity": severity,
        "message": bounded(message),
        "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
    }
    entry.update({k: bounded(v) for k, v in fields.items() if v is not None})
    stream = _stream or sys.stdout
    stream.write(_line(entry) + "\n")
    stream.flush()


def _line(entry: dict[str, Any]) -> str:
    """One JSON line of at most ``MAX_LINE_BYTES``: the largest fields give way first."""
    line = json.dumps(entry, separators=(",", ":"), default=str)
    if len(line) <= MAX_LINE_BYTES:  # ASCII JSON: characters are bytes
        return line
    sizes = {k: len(json.dumps(v, default=str)) for k, v in entry.items() if k != "severity"}
    for key in sorted(sizes, key=sizes.__getitem__, reverse=True):
        entry[key] = f"...[cut: {sizes[key]} bytes of JSON]"
        line = json.dumps(entry, separators=(",", ":"), default=str)
        if len(line) <= MAX_LINE_BYTES:
            break
    return line


def info(message: str, **fields: Any) -> None:
    log("INFO", message, **fields)


def warning(message: str, **fields: Any) -> None:
    log("WARNING", message, **fields)


def error(message: str, **fields: Any) -> None:
    log("ERROR", message, **fields)


def begin() -> contextvars.Token[dict[str, Any] | None]:
    """Start collecting fields for one request's log line (``http.serve`` calls it)."""
    return _bound.set({})


def end(token: contextvars.Token[dict[str, Any] | None]) -> dict[str, Any]:
    fields = _bound.get() or {}
    _bound.reset(token)
    return fields


def bind(**fields: Any) -> None:
    """Add fields to the current request's one log line (ignored outside a request)."""
    current = _bound.get()
    if current is not None:
        current.update({k: v for k, v in fields.items() if v is not None})


def cause_text(err: BaseException) -> str | None:
    """What lies under an error, for logs only (never sent to the caller)."""
    cause = err.__cause__
    return f"{type(cause).__name__}: {str(cause)[:300]}" if cause is not None else None
