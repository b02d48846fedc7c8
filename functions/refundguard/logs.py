"""Structured logs: one JSON line per event, in the shape Cloud Logging parses.

Cloud Logging reads ``severity`` and ``message`` from a JSON line written to stdout and keeps the
other keys as ``jsonPayload`` fields. Purchase tokens are never logged whole: ``token_hash`` gives a
short, stable digest to search by.
"""

from __future__ import annotations

import hashlib
import json
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

_stream: TextIO | None = None  # None: sys.stdout at call time (pytest's capsys replaces it)


def token_hash(value: str | None) -> str | None:
    """A short digest of a secret-ish identifier (purchase token), safe to log and to grep for."""
    if value is None:
        return None
    return hashlib.sha256(value.encode("utf-8")).hexdigest()[:16]


def log(severity: str, message: str, **fields: Any) -> None:
    entry: dict[str, Any] = {
        "severity": severity,
        "message": message,
        "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
    }
    entry.update({k: v for k, v in fields.items() if v is not None})
    stream = _stream or sys.stdout
    stream.write(json.dumps(entry, default=str, separators=(",", ":")) + "\n")
    stream.flush()


def info(message: str, **fields: Any) -> None:
    log("INFO", message, **fields)


def warning(message: str, **fields: Any) -> None:
    log("WARNING", message, **fields)


def error(message: str, **fields: Any) -> None:
    log("ERROR", message, **fields)
