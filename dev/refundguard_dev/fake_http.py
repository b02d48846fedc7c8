"""The machinery of the local store-API stand-ins: a real HTTP server on 127.0.0.1 (port 0 by
default) that records every request, and a queue of injected faults (a forced status with
``Retry-After``, a malformed or oversized body, a delay, a dropped connection, an answer trickled
byte by byte, an error quoting the request's headers) served before the stand-in's own answer.
``fake_play_api`` and ``fake_appstore_api`` build on it."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

MAX_REQUEST_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Request:
    method: str
    path: str  # percent-decoded
    raw_path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-cased names
    body: bytes

    def arg(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None

    def json(self) -> Any:
        return json.loads(self.body) if self.body.strip() else None


@dataclass
class Reply:
    status: int
    body: Any = None  # bytes as they are; anything else JSON-encoded; None: empty
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Fault:
    """One injected failure, served to the next request it matches (then dropped).

    ``status``/``retry_after``: a forced answer with the stand-in's error body (or ``body``);
    ``body`` alone: a 200 with that raw body (malformed JSON); ``oversize``: a 200 of that many
    bytes; ``delay_s``: wait first (then answer normally unless something else is set);
    ``drop``: close the connection without an answer; ``trickle_s``: send the answer (forced or
    the stand-in's own) one byte every ``trickle_s`` seconds, its body only or, with
    ``trickle_head``, its status line and headers too; ``quote_headers``: a forced error whose
    message quotes these request headers (``Authorization: Bearer ...``), as some servers' errors
    do. ``target``: "api" or "token" requests; ``path``: only requests whose path contains it."""

    status: int | None = None
    retry_after: str | None = None
    body: bytes | None = None
    oversize: int | None = None
    delay_s: float = 0.0
    drop: bool = False
    target: str = "api"
    path: str | None = None
    content_type: str = "application/json"
    chunked: bool = False  # oversize without a Content-Length (chunked transfer encoding)
    trickle_s: float = 0.0
    trickle_head: bool = False
    quote_headers: tuple[str, ...] = ()

    def matches(self, target: str, path: str) -> bool:
        return self.target == target and (self.path is None or self.path in path)


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients hanging up mid-request are what the fault tests do


class FakeServer:
    """A ThreadingHTTPServer whose subclass answers ``handle(request) -> Reply``."""

    def __init__(self, port: int = 0) -> None:
        self.requests: list[Request] = []
        self.faults: deque[Fault] = deque()
        self.lock = threading.RLock()
        self._stopping = threading.Event()  # ends trickled answers
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in separate writes: with Nagle's algorithm on, a keep-alive
            # client's delayed ACK would hold every body back about 40 ms.
            disable_nagle_algorithm = True

            def _any(self) -> None:
                server._serve(self)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _any

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._httpd = _QuietServer(("127.0.0.1", port), Handler)
        self.port = self._httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> FakeServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()

    def serve_until_interrupted(self) -> None:
        """Run alone (``python -m``): serve until Ctrl-C."""
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            self.stop()

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ test controls

    def fail_next(self, *faults: Fault) -> None:
        with self.lock:
            self.faults.extend(faults)

    def count(self, path: str = "", method: str | None = None) -> int:
        with self.lock:
            return sum(
                1
                for r in self.requests
                if path in r.path and (method is None or r.method == method)
            )

    # ------------------------------------------------------------------ for subclasses

    def target_of(self, request: Request) -> str:
        return "api"

    def handle(self, request: Request) -> Reply:
        raise NotImplementedError

    def error_reply(self, status: int, message: str, reason: str | None = None) -> Reply:
        return Reply(status, {"error": message})

    # ------------------------------------------------------------------ serving

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(min(length, MAX_REQUEST_BYTES)) if length else b""
        parts = urlsplit(handler.path)
        request = Request(
            method=handler.command,
            path=unquote(parts.path),
            raw_path=parts.path,
            query=parse_qs(parts.query, keep_blank_values=True),
            headers={k.lower(): v for k, v in handler.headers.items()},
            body=body,
        )
        with self.lock:
            self.requests.append(request)
            target = self.target_of(request)
            fault = next((f for f in self.faults if f.matches(target, request.path)), None)
            if fault is not None:
                self.faults.remove(fault)
        reply = self._faulted(fault, handler, request) if fault else None
        if fault is not None and fault.drop:
            return
        if reply is None:
            try:
                reply = self.handle(request)
            except Exception as exc:  # a bug of the stand-in: a 500 the client sees
                reply = self.error_reply(500, f"fake server error: {type(exc).__name__}: {exc}")
        if fault is not None and fault.trickle_s > 0:
            self._trickle(handler, reply, fault.trickle_s, head=fault.trickle_head)
        else:
            self._write(handler, reply)

    def _faulted(
        self, fault: Fault, handler: BaseHTTPRequestHandler, request: Request
    ) -> Reply | None:
        if fault.delay_s:
            time.sleep(fault.delay_s)
        if fault.drop:
            handler.close_connection = True
            with contextlib.suppress(OSError):
                handler.connection.shutdown(socket.SHUT_RDWR)
            return None
        headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
        if fault.oversize is not None:
            filler = b'{"padding":"' + b"x" * max(0, fault.oversize - 14) + b'"}'
            if fault.chunked:
                headers["Transfer-Encoding"] = "chunked"
            return Reply(200, filler, {"Content-Type": fault.content_type, **headers})
        if fault.status is not None:
            quoted = "; ".join(
                f"{name}: {request.headers.get(name.lower(), '')}" for name in fault.quote_headers
            )
            message = f"injected fault; the request had {quoted}" if quoted else "injected fault"
            reply = self.error_reply(fault.status, message, "injected")
            if fault.body is not None:
                reply.body = fault.body
            reply.headers.update(headers)
            return reply
        if fault.body is not None:
            return Reply(200, fault.body, {"Content-Type": fault.content_type, **headers})
        return None  # a delay only: answer normally, late

    def _trickle(
        self, handler: BaseHTTPRequestHandler, reply: Reply, every_s: float, *, head: bool
    ) -> None:
        """The whole answer, its head at once (unless ``head``) then one byte every ``every_s``
        seconds, until it is sent, the client hangs up or the server stops."""
        data = _data(reply)
        status_line = f"HTTP/1.1 {reply.status} {handler.responses[reply.status][0]}\r\n"
        headers = {"Content-Type": "application/json", **reply.headers}
        headers["Content-Length"] = str(len(data))
        raw_head = (
            status_line + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        ).encode("latin-1")
        handler.close_connection = True
        try:
            if not head:
                handler.wfile.write(raw_head)
                handler.wfile.flush()
            rest = raw_head + data if head else data
            for index in range(len(rest)):
                if self._stopping.wait(every_s):
                    return
                handler.wfile.write(rest[index : index + 1])
                handler.wfile.flush()
        except OSError:
            pass  # the client gave up: what a deadline does

    @staticmethod
    def _write(handler: BaseHTTPRequestHandler, reply: Reply) -> None:
        data = _data(reply)
        chunked = reply.headers.get("Transfer-Encoding") == "chunked"
        try:
            handler.send_response(reply.status)
            headers = {"Content-Type": "application/json", **reply.headers}
            for name, value in headers.items():
                handler.send_header(name, value)
            if not chunked:
                handler.send_header("Content-Length", str(len(data)))
            handler.end_headers()
            if not chunked:
                handler.wfile.write(data)
                return
            for start in range(0, len(data), 65536):
                piece = data[start : start + 65536]
                handler.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            handler.wfile.write(b"0\r\n\r\n")
        except OSError:
            pass  # the client gave up (a timeout test)


def _data(reply: Reply) -> bytes:
    if reply.body is None:
        return b""
    if isinstance(reply.body, bytes):
        return reply.body
    return json.dumps(reply.body, separators=(",", ":")).encode()


def bearer(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None
