"""One base for the hand-written fake servers: a server on 127.0.0.1 (a free port), served from a daemon
thread, started and stopped the same way, usable as a context manager.

- `LoopbackHTTP(handler)` serves a `BaseHTTPRequestHandler` (the siteverify, HubSpot, receiver and Secret
  Manager fakes); `QuietHandler` is a handler base that logs nothing, answers JSON and can reset.
- `LoopbackTCP(handle)` hands each raw connection to `handle(conn)` (a server that drips, or a blackhole
  that holds every connection open and never answers).
"""

from __future__ import annotations

import contextlib
import json
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self

__all__ = ["Loopback", "LoopbackHTTP", "LoopbackTCP", "QuietHandler", "refusing_port", "reset_connection", "shut"]

HOST = "127.0.0.1"
# Generous: only reached when a handler is stuck, never on a passing run.
STOP_SECONDS = 30.0


@contextlib.contextmanager
def refusing_port() -> Iterator[int]:
    """A loopback port that refuses every connection for as long as the block lasts: bound (so no one
    else takes it) but not listening, so a connect gets a reset, as a stopped server's port does."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        yield port


def shut(*socks: socket.socket) -> None:
    """Shut each socket down both ways (which wakes a thread blocked on it), then close it."""
    for sock in socks:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()


def reset_connection(conn: socket.socket) -> None:
    """Make the coming close() send a reset (SO_LINGER 0), as a firewall or a dying peer does."""
    with contextlib.suppress(OSError):
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


class Loopback:
    """start() serves from a daemon thread, stop() ends it; `port` and `base_url` once started."""

    name = "loopback"

    def __init__(self) -> None:
        self._thread: threading.Thread | None = None
        self.stopping = threading.Event()

    # What a kind of server does: bind in _open (returning the port), serve in _serve, unblock in _close.
    def _open(self) -> int:
        raise NotImplementedError

    def _serve(self) -> None:
        raise NotImplementedError

    def _close(self) -> None:
        raise NotImplementedError

    def start(self) -> Self:
        if self._thread is not None:
            raise RuntimeError(f"{self.name} already started")
        self.stopping.clear()
        self.port = self._open()
        self._thread = threading.Thread(target=self._serve, name=self.name, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self.stopping.set()
        self._close()
        thread.join(STOP_SECONDS)

    @property
    def started(self) -> bool:
        return self._thread is not None

    @property
    def base_url(self) -> str:
        """http://127.0.0.1:PORT"""
        if self._thread is None:
            raise RuntimeError(f"{self.name} not started")
        return f"http://{HOST}:{self.port}"

    def __enter__(self) -> Self:
        return self if self._thread is not None else self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # not socketserver's 5: a burst must not see dropped connections
    fake: Any


class LoopbackHTTP(Loopback):
    """A ThreadingHTTPServer with `handler`; the handler reaches this object as `self.server.fake`."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__()
        self._handler = handler
        self._server: _HTTPServer | None = None

    def _open(self) -> int:
        self._server = _HTTPServer((HOST, 0), self._handler)
        self._server.fake = self
        port: int = self._server.server_address[1]
        return port

    def _serve(self) -> None:
        assert self._server is not None
        self._server.serve_forever(poll_interval=0.05)

    def _close(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()


class QuietHandler(BaseHTTPRequestHandler):
    """A handler that logs nothing, speaks HTTP/1.1 and answers without Nagle's 40 ms delays."""

    protocol_version = "HTTP/1.1"
    timeout = 30

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: test output stays readable."""

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def send_json(
        self,
        status: int,
        value: Any,
        headers: dict[str, str] | None = None,
        content_type: str = "application/json",
    ) -> None:
        body = b"" if value is None else json.dumps(value).encode()
        self.send_response(status)
        for name, header in (headers or {}).items():
            self.send_header(name, header)
        if body:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def reset(self) -> None:
        """Close with a reset and no answer."""
        self.close_connection = True
        reset_connection(self.connection)
        self.rfile.close()
        self.connection.close()


class LoopbackTCP(Loopback):
    """Raw TCP: each connection goes to `handle(conn)` on its own thread, then is closed. With
    `read_request`, the request's first bytes are read before `handle` is called."""

    def __init__(self, handle: Callable[[socket.socket], None], *, read_request: bool = True) -> None:
        super().__init__()
        self._handle = handle
        self._read_request = read_request
        self._sock: socket.socket | None = None
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return self.base_url + "/"

    def _open(self) -> int:
        self._sock = socket.socket()
        self._sock.bind((HOST, 0))
        self._sock.listen(64)
        port: int = self._sock.getsockname()[1]
        return port

    def _serve(self) -> None:
        sock = self._sock
        assert sock is not None
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return  # closed by stop()
            with self._lock:
                self._conns.add(conn)
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn: socket.socket) -> None:
        try:
            with conn, contextlib.suppress(OSError):
                if self._read_request:
                    conn.recv(65536)
                self._handle(conn)
        finally:
            with self._lock:
                self._conns.discard(conn)

    def _close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            shut(sock)  # shutdown() wakes the accept() in _serve; close() alone may not
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def hold(self, conn: socket.socket) -> None:
        """A handler that never answers: it holds the connection until stop()."""
        self.stopping.wait()
