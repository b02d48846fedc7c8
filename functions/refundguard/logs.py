"""Structured logs: one JSON line per event, in the shape Cloud Logging parses (``severity``,
``message``, other keys as ``jsonPayload``), every field bounded so no line nears the 256 KB limit.
``bind`` adds fields to the current request's line (``http.serve`` writes it). ``scrub`` takes
credentials out of every string a line holds (bearer and OAuth tokens, JWTs, private keys), so a
store's error that quotes our ``Authorization`` header never puts the token in the logs."""

from __future__ import annotations

import contextvars
import hashlib
import json
import math
import re
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


REDACTED = "[redacted]"
_B64TOKEN = r"[A-Za-z0-9._~+/=-]"  # RFC 6750's b64token
_B64URL = r"[A-Za-z0-9_-]"
#: What a credential looks like, each with its replacement (applied in this order).
_SCRUBS: tuple[tuple[re.Pattern[str], str], ...] = (
    (  # PEM key material, to its END line or to the end of a text cut short
        re.compile(
            r"-----BEGIN[A-Z0-9 ]*PRIVATE KEY-----.*?(?:-----END[A-Z0-9 ]*PRIVATE KEY-----|\Z)",
            re.DOTALL,
        ),
        f"-----{REDACTED} PRIVATE KEY-----",
    ),
    (re.compile(rf"(?i)(bearer)(?:\s|%20|\+)+{_B64TOKEN}+"), rf"\1 {REDACTED}"),
    (  # key: value / key=value of a credential (JSON, form or URL query)
        re.compile(
            r"(?i)(authorization|access_token|refresh_token|id_token|client_secret|assertion)"
            r"""((?:["']|%22)?\s*[:=]\s*(?:["']|%22)?\s*)(?!bearer\s)(?:basic\s+)?[^\s"',;&]+"""
        ),
        rf"\1\2{REDACTED}",
    ),
    (re.compile(r"ya29\.[A-Za-z0-9._-]+"), REDACTED),  # Google OAuth access tokens
    (re.compile(r"1//[A-Za-z0-9._-]{16,}"), REDACTED),  # Google OAuth refresh tokens
    (  # JWS/JWE (a JSON header: eyJ...), two segments or more, a third cut short included
        re.compile(rf"eyJ{_B64URL}{{5,}}\.{_B64URL}{{5,}}(?:\.{_B64URL}*)*"),
        REDACTED,
    ),
)
_MAYBE = re.compile(
    r"(?i)-----BEGIN|bearer|authorization|access_token|refresh_token|id_token|client_secret"
    r"|assertion|ya29\.|1//|eyJ"
)


def scrub(text: str) -> str:
    """``text`` without the credentials it may quote (``_SCRUBS``): what a store, a token
    endpoint or an exception says comes from outside and may echo our own request."""
    if not _MAYBE.search(text):
        return text
    for pattern, replacement in _SCRUBS:
        text = pattern.sub(replacement, text)
    return text


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
        text = scrub(value.encode("utf-8", "backslashreplace").decode("utf-8"))
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
