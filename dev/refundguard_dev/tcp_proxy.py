"""A TCP proxy in front of the Firestore emulator that a test can cut and restore: the real
emulator behind it, a real network failure in front (no mock of Firestore)."""

from __future__ import annotations

import contextlib
import queue
import socket
import threading
import time


class TcpProxy:
    def __init__(self, upstream: str, *, response_delay_s: float = 0.0) -> None:
        """``response_delay_s`` holds every chunk coming back from upstream that long: a round
        trip's latency, for benchmarks that want a network between client and Firestore."""
        host, port = upstream.rsplit(":", 1)
        self._upstream = (host, int(port))
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self._listener.getsockname()[1]}"
        self._up = True
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._closed = False
        self._response_delay_s = response_delay_s
        threading.Thread(target=self._accept_loop, daemon=True).start()

    def down(self) -> None:
        """Refuse new connections and reset every open one."""
        with self._lock:
            self._up = False
            for sock in list(self._sockets):
                with contextlib.suppress(OSError):
                    sock.setsockopt(
                        socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
                    )
                    sock.close()
            self._sockets.clear()

    def up(self) -> None:
        with self._lock:
            self._up = True

    def close(self) -> None:
        self._closed = True
        self.down()
        with contextlib.suppress(OSError):
            self._listener.close()

    def _accept_loop(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                if not self._up:
                    client.close()
                    continue
                try:
                    upstream = socket.create_connection(self._upstream, timeout=5)
                except OSError:
                    client.close()
                    continue
                for sock in (client, upstream):  # no Nagle: forward small gRPC frames at once
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self._sockets.update((client, upstream))
            for a, b, delay in (
                (client, upstream, 0.0),
                (upstream, client, self._response_delay_s),
            ):
                threading.Thread(target=self._pump, args=(a, b, delay), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket, delay_s: float) -> None:
        if delay_s:
            self._pump_delayed(source, target, delay_s)
            return
        try:
            while chunk := source.recv(65536):
                target.sendall(chunk)
        except OSError:
            pass
        finally:
            self._close_pair(source, target)

    def _pump_delayed(self, source: socket.socket, target: socket.socket, delay_s: float) -> None:
        """Each chunk leaves ``delay_s`` after it arrived (a one-way latency, not a slowdown)."""
        chunks: queue.Queue[tuple[float, bytes] | None] = queue.Queue()

        def send() -> None:
            try:
                while (item := chunks.get()) is not None:
                    due, chunk = item
                    time.sleep(max(0.0, due - time.monotonic()))
                    target.sendall(chunk)
            except OSError:
                pass
            finally:
                self._close_pair(source, target)

        threading.Thread(target=send, daemon=True).start()
        try:
            while chunk := source.recv(65536):
                chunks.put((time.monotonic() + delay_s, chunk))
        except OSError:
            pass
        finally:
            chunks.put(None)

    @staticmethod
    def _close_pair(*sockets: socket.socket) -> None:
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.close()
