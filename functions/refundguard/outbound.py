"""Outbound HTTP bounded by a deadline as a whole: ``session()`` builds a ``requests`` session
whose connections take part in ``deadline(...)``. Inside ``with deadline(s) as guard:``, every
connection the session connects or sends on is registered with ``guard``; when the deadline passes,
a watchdog shuts those sockets down, so a blocked connect, header read or body read returns at
once, whatever the far end does (a trickled answer would otherwise restart a read timeout with
every byte). ``guard.expired`` then says that the failure was the deadline's. One watchdog thread
serves every guard."""

from __future__ import annotations

import contextlib
import contextvars
import heapq
import itertools
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.response import HTTPResponse

_current: contextvars.ContextVar[Guard | None] = contextvars.ContextVar(
    "refundguard_outbound_guard", default=None
)


class Guard:
    """One deadline (monotonic seconds) and the connections used before it."""

    def __init__(self, end: float) -> None:
        self.end = end
        self.expired = False
        self._done = False
        self._lock = threading.Lock()
        self._connections: list[Any] = []

    def remaining(self) -> float:
        return self.end - time.monotonic()

    def register(self, connection: Any) -> None:
        """``connection`` serves this guard's call now (the last guard to register it owns it: a
        connection back in its pool and taken by another call is no longer this one's to shut)."""
        with self._lock:
            if self._done:
                return
            connection.refundguard_guard = self
            if connection not in self._connections:
                self._connections.append(connection)
            if self.expired:
                _shut(connection)

    def unregister(self, connection: Any) -> None:
        """The connection went back to its pool: another call may take it, leave it be."""
        with self._lock:
            if getattr(connection, "refundguard_guard", None) is self:
                connection.refundguard_guard = None
            if connection in self._connections:
                self._connections.remove(connection)

    def fire(self) -> None:
        with self._lock:
            if self._done:
                return
            self.expired = True
            for connection in self._connections:
                if getattr(connection, "refundguard_guard", None) is self:
                    _shut(connection)

    def close(self) -> None:
        with self._lock:
            self._done = True
            self._connections.clear()

    @property
    def done(self) -> bool:
        return self._done


class _Watchdog:
    """One daemon thread firing the guards whose deadline passed (a thread per call would cost
    about 0.3 ms a call). Closed guards are dropped when they reach the top of the heap."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, Guard]] = []
        self._order = itertools.count()
        self._thread: threading.Thread | None = None
        self._prune_at = 1024

    def watch(self, guard: Guard) -> None:
        with self._cond:
            if len(self._heap) >= self._prune_at:  # many closed guards of long deadlines
                self._heap = [item for item in self._heap if not item[2].done]
                heapq.heapify(self._heap)
                self._prune_at = max(1024, 2 * len(self._heap))
            heapq.heappush(self._heap, (guard.end, next(self._order), guard))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="refundguard-outbound-deadlines", daemon=True
                )
                self._thread.start()
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._heap and self._heap[0][2].done:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._cond.wait()
                    continue
                wait = self._heap[0][0] - time.monotonic()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                guard = heapq.heappop(self._heap)[2]
            guard.fire()


_watchdog = _Watchdog()


def _shut(connection: Any) -> None:
    """Wake whatever blocks on the connection's socket (``shutdown``, not ``close``: a close
    does not interrupt a blocked ``recv`` on Linux). The pool then drops the connection."""
    sock = getattr(connection, "sock", None)
    if isinstance(sock, socket.socket):
        with contextlib.suppress(OSError):
            socket.socket.shutdown(sock, socket.SHUT_RDWR)  # not SSLSocket's: keep its state


@contextlib.contextmanager
def deadline(seconds: float) -> Iterator[Guard]:
    """Bound the outbound calls of ``session()`` sessions made in this block to ``seconds``."""
    with deadline_at(time.monotonic() + seconds) as guard:
        yield guard


@contextlib.contextmanager
def deadline_at(end: float) -> Iterator[Guard]:
    """As ``deadline``, to a ``time.monotonic()`` instant. Nested blocks keep the earlier end."""
    outer = _current.get()
    if outer is not None and outer.end <= end:
        yield outer
        return
    guard = Guard(end)
    token = _current.set(guard)
    _watchdog.watch(guard)
    try:
        yield guard
    finally:
        guard.close()
        _current.reset(token)


def _register(connection: Any) -> None:
    guard = _current.get()
    if guard is not None:
        guard.register(connection)


class _Bounded:
    """Mixed into urllib3's connections: registered with the current guard when they connect
    and on every request (a kept-alive connection does not connect again)."""

    def connect(self) -> None:
        _register(self)
        super().connect()  # type: ignore[misc]
        _register(self)  # the deadline may have passed while connecting

    def request(self, *args: Any, **kwargs: Any) -> Any:
        _register(self)
        return super().request(*args, **kwargs)  # type: ignore[misc]

    def getresponse(self, *args: Any, **kwargs: Any) -> Any:
        response = super().getresponse(*args, **kwargs)  # type: ignore[misc]
        if type(response) is HTTPResponse:
            response.__class__ = _Response  # the same object, told to let go when released
        return response


class _HTTPConnection(_Bounded, HTTPConnection):
    pass


class _HTTPSConnection(_Bounded, HTTPSConnection):
    pass


class _Response(HTTPResponse):
    """urllib3's response whose connection, once released to its pool (the answer read whole),
    is no longer its call's guard's to shut."""

    def release_conn(self) -> None:
        guard, connection = _current.get(), self.connection
        if guard is not None and connection is not None:
            guard.unregister(connection)
        super().release_conn()


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


class BoundedAdapter(HTTPAdapter):
    """requests' adapter whose connections obey ``deadline``."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}


def mount(session: requests.Session) -> requests.Session:
    """``session`` with bounded adapters for http:// and https://."""
    session.mount("https://", BoundedAdapter())
    session.mount("http://", BoundedAdapter())
    return session


def session() -> requests.Session:
    """A new ``requests`` session whose calls obey ``deadline``."""
    return mount(requests.Session())


def google_auth_request() -> Any:
    """google-auth's transport for token fetches (OAuth token endpoint, metadata server) on a
    bounded session: a token fetch made inside ``deadline`` is bounded by it too."""
    from google.auth.transport.requests import Request

    return Request(session())


def read_body(response: Any, limit: int) -> bytes:
    """A streamed ``requests`` response's body, at most ``limit`` bytes (``TooLarge`` beyond);
    the enclosing ``deadline`` bounds the time it takes."""
    declared = response.headers.get("Content-Length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise TooLarge
    chunks, size = [], 0
    guard = _current.get()
    for chunk in response.iter_content(64 * 1024):  # wraps urllib3's errors as requests'
        if guard is not None and guard.remaining() <= 0:
            guard.fire()
            raise requests.Timeout("the deadline passed while reading the answer")
        size += len(chunk)
        if size > limit:
            raise TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


class TooLarge(Exception):
    """An answer larger than the caller's limit."""
