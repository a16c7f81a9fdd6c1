"""The one transport every outgoing client shares: a pooled, TLS-verified request read with a deadline.

The standard library's `http.client`, `ssl` and `socket`, which gunicorn and Flask have already loaded
in every functions-framework process: the first request of a cold start pays for no HTTP library
(urllib3 cost ~14 ms of import there)."""

from __future__ import annotations

import http.client
import io
import select
import socket
import ssl
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from types import MappingProxyType
from typing import NamedTuple
from urllib.parse import urlsplit

# Answers we act on are small JSON documents; anything larger is an error page or a mistake.
MAX_ANSWER_BYTES = 256 * 1024
_CONNECT_TIMEOUT = 3.05
# Hosts a pool keeps idle connections for (FormCall's API, a CRM, a receiver, ...), least recent dropped.
_MAX_HOSTS = 4
_DEFAULT_PORTS = {"http": 80, "https": 443}
_USER_AGENT = "formcall-webhook"

_Key = tuple[str, str, int]


class Pool:
    """Kept-alive connections per (scheme, host, port), at most `maxsize` idle ones each, shared by
    threads: a connection is taken out while one request uses it and given back only once its answer
    was read to the end. TLS is always verified, against `ca_bundle` when given, else certifi's bundle,
    the hostname checked too; the context is made on the first https connection."""

    def __init__(self, ca_bundle: str | None = None, maxsize: int = 32) -> None:
        self.ca_bundle = ca_bundle
        self.maxsize = maxsize
        self._idle: OrderedDict[_Key, list[http.client.HTTPConnection]] = OrderedDict()
        self._lock = threading.Lock()
        self._tls: ssl.SSLContext | None = None

    def tls_context(self) -> ssl.SSLContext:
        with self._lock:
            if self._tls is None:
                cafile = self.ca_bundle
                if cafile is None:
                    import certifi  # only an https request loads it

                    cafile = certifi.where()
                context = ssl.create_default_context(cafile=cafile)
                # create_default_context's defaults, said out loud: never loosened.
                context.verify_mode = ssl.CERT_REQUIRED
                context.check_hostname = True
                self._tls = context
            return self._tls

    def take(self, key: _Key) -> http.client.HTTPConnection | None:
        """An idle connection to `key` the server has not closed meanwhile, or None."""
        while True:
            with self._lock:
                idle = self._idle.get(key)
                if not idle:
                    return None
                conn = idle.pop()
            if _still_open(conn):
                return conn
            conn.close()

    def give(self, key: _Key, conn: http.client.HTTPConnection) -> None:
        """Keep `conn` for the next request to `key` (closed instead when the pool is full)."""
        dropped: list[http.client.HTTPConnection] = []
        with self._lock:
            idle = self._idle.setdefault(key, [])
            self._idle.move_to_end(key)
            if len(idle) < self.maxsize:
                idle.append(conn)
            else:
                dropped.append(conn)
            while len(self._idle) > _MAX_HOSTS:
                _key, old = self._idle.popitem(last=False)
                dropped.extend(old)
        for extra in dropped:
            extra.close()

    def idle(self, key: _Key) -> int:
        with self._lock:
            return len(self._idle.get(key, ()))

    def clear(self) -> None:
        """Close every idle connection."""
        with self._lock:
            conns = [conn for idle in self._idle.values() for conn in idle]
            self._idle.clear()
        for conn in conns:
            conn.close()


def make_pool(ca_bundle: str | None = None, maxsize: int = 32) -> Pool:
    """Pooled connections, TLS always verified (against `ca_bundle` when given), nothing retried."""
    return Pool(ca_bundle, maxsize)


class Answer(NamedTuple):
    """An HTTP answer: status, headers with lower-case names, and the body (cut at the cap)."""

    status: int
    headers: Mapping[str, str] = MappingProxyType({})
    body: bytes = b""
    truncated: bool = False


class TransportError(Exception):
    """No answer: refused, timed out, reset, TLS. `sent` is False only when the server cannot have acted;
    `cause` names the exception (for logs), `timed_out` says whether the deadline passed, and `partial`
    holds the part of the answer's body that arrived before it broke off (b"" when none did)."""

    def __init__(
        self, reason: str, *, sent: bool = True, timed_out: bool = False, cause: str = "", partial: bytes = b""
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.sent = sent
        self.timed_out = timed_out
        self.cause = cause or reason
        self.partial = partial


def send(
    pool: Pool,
    method: str,
    url: str,
    *,
    headers: Mapping[str, str],
    body: bytes | None,
    timeout: float,
    max_bytes: int = MAX_ANSWER_BYTES,
) -> Answer:
    """One request, never retried nor redirected, answered within `timeout` seconds in all: the
    connect, the request, the answer's head and its body each wait only for what is left of it."""
    deadline = time.monotonic() + timeout
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        host, port = parts.hostname, parts.port or _DEFAULT_PORTS.get(scheme)
    except ValueError:  # a port that is not a number
        host = port = None
    if scheme not in _DEFAULT_PORTS or not host or port is None:
        raise TransportError("failed: InvalidURL", sent=False, cause="InvalidURL")
    key = (scheme, host, port)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    conn = pool.take(key)
    if conn is None:
        conn = _connect(pool, key, deadline, min(_CONNECT_TIMEOUT, timeout))
    remaining = deadline - time.monotonic()
    if remaining <= 0:  # the connect took all of it: nothing was sent
        conn.close()
        raise TransportError("timed out: TimeoutError", sent=False, timed_out=True, cause="TimeoutError")
    out = dict(headers)
    if not any(name.lower() == "user-agent" for name in out):
        out["User-Agent"] = _USER_AGENT
    chunks: list[bytes] = []
    response: http.client.HTTPResponse | None = None
    try:
        _set_deadline(conn, deadline)
        if conn.sock is not None:
            conn.sock.settimeout(remaining)
        conn.request(method, target, body=body, headers=out)
        response = conn.getresponse()
        raw, truncated = read_until(response, deadline, max_bytes, chunks)
        if not truncated and response.length:
            # The server closed before the Content-Length it announced: the answer was cut short.
            raise http.client.IncompleteRead(raw, response.length)
    except (http.client.HTTPException, OSError) as err:
        _discard(conn, response)
        timed_out = isinstance(err, TimeoutError)
        what = "timed out" if timed_out else "failed"
        cause = type(err).__name__
        partial = b"".join(chunks)[:max_bytes]
        raise TransportError(f"{what}: {cause}", sent=True, timed_out=timed_out, cause=cause, partial=partial) from err
    except BaseException:
        _discard(conn, response)
        raise
    if truncated or response.will_close or conn.sock is None:
        _discard(conn, response)  # the rest is unread, or the server closes it: the connection cannot be reused
    else:
        response.close()  # read to its end (read1 leaves a Content-Length answer open at 0 left)
        pool.give(key, conn)
    answer_headers: dict[str, str] = {}
    for name, value in response.headers.items():
        low = name.lower()
        answer_headers[low] = f"{answer_headers[low]}, {value}" if low in answer_headers else value
    return Answer(response.status, answer_headers, raw, truncated)


def read_until(
    raw: http.client.HTTPResponse, deadline: float, max_bytes: int, chunks: list[bytes] | None = None
) -> tuple[bytes, bool]:
    """The body, read in pieces so a server that drips bytes cannot hold us past the deadline (each
    read of the socket waits only for what is left of it). The pieces gather in `chunks` when given,
    so a caller still has them when the read breaks off."""
    chunks = [] if chunks is None else chunks
    size = 0
    while True:
        if deadline - time.monotonic() <= 0:
            raise TimeoutError("the answer took longer than the timeout")
        chunk = raw.read1(8192)
        if not chunk:
            return b"".join(chunks), False
        chunks.append(chunk)
        size += len(chunk)
        if size > max_bytes:
            return b"".join(chunks)[:max_bytes], True


def _connect(pool: Pool, key: _Key, deadline: float, connect_timeout: float) -> http.client.HTTPConnection:
    """A new connection (TCP, then the TLS handshake for https). Any failure here left before a byte of
    the request did: the server cannot have acted on it."""
    scheme, host, port = key
    conn: http.client.HTTPConnection
    try:
        if scheme == "https":
            conn = _HTTPSConnection(host, port, timeout=connect_timeout, context=pool.tls_context())
        else:
            conn = _HTTPConnection(host, port, timeout=connect_timeout)
        conn.connect()
    except OSError as err:  # refused, unresolvable, the connect timed out, the handshake failed
        timed_out = isinstance(err, TimeoutError)
        cause = type(err).__name__
        what = "timed out" if timed_out else "failed"
        raise TransportError(f"{what}: {cause}", sent=False, timed_out=timed_out, cause=cause) from err
    _set_deadline(conn, deadline)
    return conn


def _discard(conn: http.client.HTTPConnection, response: http.client.HTTPResponse | None) -> None:
    """Close the connection and the answer's hold on its socket, now rather than when it is collected."""
    conn.close()
    if response is not None:
        response.close()


def _still_open(conn: http.client.HTTPConnection) -> bool:
    """False when the server closed an idle connection (or sent on it unasked): readable means EOF."""
    sock = conn.sock
    if sock is None:
        return False
    if isinstance(sock, ssl.SSLSocket) and sock.pending():
        return False
    try:
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        return not poller.poll(0)
    except (OSError, ValueError):
        return False


def _set_deadline(conn: http.client.HTTPConnection, deadline: float) -> None:
    conn.deadline = deadline  # type: ignore[attr-defined]


class _DeadlineReader(io.RawIOBase):
    """The socket read by an answer, each read waiting only for what is left of the request's deadline
    (so a head or body that drips a byte at a time ends at the deadline, not a read timeout per byte)."""

    def __init__(self, sock: socket.socket, conn: http.client.HTTPConnection) -> None:
        super().__init__()
        self._sock = sock
        self._conn = conn
        self._raw = sock.makefile("rb", buffering=0)  # keeps the socket open while the answer is read

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int | None:  # type: ignore[override]
        remaining = getattr(self._conn, "deadline", 0.0) - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("the answer took longer than the timeout")
        self._sock.settimeout(max(remaining, 0.001))
        return self._raw.readinto(buffer)

    def close(self) -> None:
        if not self.closed:
            self._raw.close()
        super().close()


class _Response(http.client.HTTPResponse):
    def __init__(
        self,
        sock: socket.socket,
        conn: http.client.HTTPConnection,
        debuglevel: int = 0,
        method: str | None = None,
        url: str | None = None,
    ) -> None:
        super().__init__(sock, debuglevel, method, url)
        self.fp.close()
        self.fp = io.BufferedReader(_DeadlineReader(sock, conn))


class _HTTPConnection(http.client.HTTPConnection):
    def response_class(  # type: ignore[override]
        self, sock: socket.socket, debuglevel: int = 0, method: str | None = None, url: str | None = None
    ) -> http.client.HTTPResponse:
        return _Response(sock, self, debuglevel, method, url)


class _HTTPSConnection(http.client.HTTPSConnection):
    def response_class(  # type: ignore[override]
        self, sock: socket.socket, debuglevel: int = 0, method: str | None = None, url: str | None = None
    ) -> http.client.HTTPResponse:
        return _Response(sock, self, debuglevel, method, url)
