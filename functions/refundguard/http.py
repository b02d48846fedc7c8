"""The one path from a request to a response: ``serve`` runs a handler, turns a
``RefundGuardError`` (or a bug) into its status, and writes the request's one log line."""

from __future__ import annotations

import json
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import flask

from . import logs
from .errors import RefundGuardError, rejected

MAX_BODY_BYTES = 1024 * 1024
MAX_JSON_DEPTH = 32


@dataclass(frozen=True)
class Reply:
    """A handled request: the JSON body (or, for a static file, ``content`` of ``content_type``),
    and the message of its log line."""

    body: Mapping[str, Any]
    message: str
    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    severity: str = "INFO"
    content: bytes | None = None
    content_type: str = "application/json"


Handler = Callable[[flask.Request], Reply]
#: What a function does with input that can never succeed, given the request's body: a Reply
#: (e.g. quarantine and acknowledge), or None to answer the error as it is.
OnRejected = Callable[[bytes, RefundGuardError], Reply | None]
App = Callable[[flask.Request], flask.Response]


def json_response(
    status: int, body: Mapping[str, Any], headers: Mapping[str, str] | None = None
) -> flask.Response:
    response = flask.Response(
        json.dumps(body, separators=(",", ":"), ensure_ascii=True, default=str) + "\n",
        status=status,
        mimetype="application/json",
    )
    for name, value in (headers or {}).items():
        response.headers[name] = value
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def reply_response(reply: Reply) -> flask.Response:
    """A Reply as sent: its JSON body, or its static ``content`` (headers from the Reply)."""
    if reply.content is None:
        return json_response(reply.status, reply.body, reply.headers)
    response = flask.Response(reply.content, status=reply.status, mimetype=reply.content_type)
    response.headers["X-Content-Type-Options"] = "nosniff"
    for name, value in reply.headers.items():
        response.headers[name] = value
    return response


def serve(function: str, handler: Handler, *, on_rejected: OnRejected | None = None) -> App:
    """The function's entry: every answer, and exactly one log line per request."""

    def app(request: flask.Request) -> flask.Response:
        token = logs.begin()
        try:
            reply = _reply(request, handler, on_rejected)
        except RefundGuardError as err:
            fields = logs.end(token)
            logs.log(
                "ERROR" if err.retryable else "WARNING",
                err.message,
                function=function,
                http_status=err.http_status,
                outcome=err.code,
                code=err.code,
                retryable=err.retryable,
                details=err.details or None,
                cause=logs.cause_text(err),
                **fields,
            )
            headers = dict(err.headers)
            if err.retryable:
                headers.setdefault("Retry-After", "30")
            return json_response(err.http_status, err.to_json(), headers)
        except Exception as exc:  # a bug of ours: 503 so the sender retries; nothing is lost
            fields = logs.end(token)
            logs.error(
                "unexpected error",
                function=function,
                http_status=503,
                outcome="internal_error",
                code="internal_error",
                error=type(exc).__name__,
                detail=str(exc),
                traceback="".join(traceback.format_exception(exc)[-8:]),
                **fields,
            )
            return json_response(
                503,
                {"error": "internal_error", "message": "internal error; retry later"},
                {"Retry-After": "30"},
            )
        fields = logs.end(token)
        fields.setdefault("outcome", fields.get("effect", "ok"))
        logs.log(
            reply.severity, reply.message, function=function, http_status=reply.status, **fields
        )
        return reply_response(reply)

    return app


def _reply(request: flask.Request, handler: Handler, on_rejected: OnRejected | None) -> Reply:
    try:
        return handler(request)
    except RefundGuardError as err:
        reply = on_rejected(request.get_data(cache=True), err) if on_rejected else None
        if reply is None:
            raise
        return reply


def read_body(request: flask.Request, *, max_bytes: int = MAX_BODY_BYTES) -> bytes:
    length = request.content_length
    if length is not None and length > max_bytes:
        raise rejected("body_too_large", f"request body is larger than {max_bytes} bytes")
    body = request.get_data(cache=True)
    if len(body) > max_bytes:
        raise rejected("body_too_large", f"request body is larger than {max_bytes} bytes")
    return body


def parse_json_object(body: bytes, *, what: str = "request body") -> dict[str, Any]:
    """A JSON object, or REJECTED: empty, not UTF-8, not JSON, nested too deep, not an object."""
    if not body.strip():
        raise rejected("empty_body", f"{what} is empty; expected a JSON object")
    if _too_deep(body):
        raise rejected("bad_json", f"{what} is nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        value = json.loads(body)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise rejected("bad_json", f"{what} is not valid JSON") from None
    if not isinstance(value, dict):
        raise rejected("bad_json", f"{what} must be a JSON object")
    return value


def _too_deep(body: bytes) -> bool:
    """Whether brackets outside strings nest deeper than ``MAX_JSON_DEPTH`` (before json.loads,
    whose recursion a hostile body could exhaust)."""
    if body.count(b"[") + body.count(b"{") <= MAX_JSON_DEPTH:
        return False
    depth = 0
    in_string = escaped = False
    for byte in body:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            if depth > MAX_JSON_DEPTH:
                return True
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return False
