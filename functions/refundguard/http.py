"""HTTP plumbing shared by the three functions: JSON in, JSON out, one mapping from errors to codes.

A ``RefundGuardError`` becomes its kind's status with ``{"error": code, "message": ...}``; anything
else is a bug of ours and answers 500, which every sender retries, so nothing valid is lost while it
is fixed.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

import flask

from . import logs
from .errors import RefundGuardError, rejected

Handler = Callable[[flask.Request], flask.Response]
MAX_BODY_BYTES = 1024 * 1024


def json_response(
    status: int, body: Mapping[str, Any], headers: Mapping[str, str] | None = None
) -> flask.Response:
    response = flask.Response(
        json.dumps(body, separators=(",", ":"), default=str) + "\n",
        status=status,
        mimetype="application/json",
    )
    for name, value in (headers or {}).items():
        response.headers[name] = value
    response.headers["Cache-Control"] = "no-store"
    return response


def error_response(err: RefundGuardError) -> flask.Response:
    headers = {"Retry-After": "30"} if err.retryable else None
    return json_response(err.http_status, err.to_json(), headers)


def read_body(request: flask.Request, *, max_bytes: int = MAX_BODY_BYTES) -> bytes:
    length = request.content_length
    if length is not None and length > max_bytes:
        raise rejected("body_too_large", f"request body is larger than {max_bytes} bytes")
    body = request.get_data(cache=True)
    if len(body) > max_bytes:
        raise rejected("body_too_large", f"request body is larger than {max_bytes} bytes")
    return body


def parse_json_object(body: bytes, *, what: str = "request body") -> dict[str, Any]:
    try:
        value = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        raise rejected("bad_json", f"{what} is not valid JSON") from None
    if not isinstance(value, dict):
        raise rejected("bad_json", f"{what} must be a JSON object")
    return value


def cause_text(err: BaseException) -> str | None:
    """What lies under an error, for logs only (never sent to the caller)."""
    cause = err.__cause__
    return f"{type(cause).__name__}: {str(cause)[:300]}" if cause is not None else None


def guarded(function: str, handler: Handler) -> Handler:
    """Wrap a handler so that every failure maps to the right status and is logged once.

    Handlers that log their own failures (with request context) return a response themselves;
    this is the net for the rest.
    """

    def wrapped(request: flask.Request) -> flask.Response:
        try:
            return handler(request)
        except RefundGuardError as err:
            severity = "ERROR" if err.retryable else "WARNING"
            logs.log(
                severity,
                "request failed",
                function=function,
                code=err.code,
                status=err.http_status,
                retryable=err.retryable,
                reason=err.message,
                cause=cause_text(err),
            )
            return error_response(err)
        except Exception as exc:  # a bug of ours: 500, the sender retries, nothing is lost
            logs.error(
                "unexpected error",
                function=function,
                error=type(exc).__name__,
                detail=str(exc)[:500],
            )
            return json_response(
                500, {"error": "internal", "message": "internal error; retry later"}
            )

    return wrapped
