"""The one transport every outgoing client shares: a pooled, TLS-verified request read with a deadline."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import certifi
import urllib3

# Answers we act on are small JSON documents; anything larger is an error page or a mistake.
MAX_ANSWER_BYTES = 256 * 1024
_CONNECT_TIMEOUT = 3.05
# Failures before any byte of the request left: the server cannot have acted on it.
_NEVER_SENT = (
    urllib3.exceptions.NewConnectionError,  # refused, unresolvable
    urllib3.exceptions.ConnectTimeoutError,
    urllib3.exceptions.SSLError,  # the handshake, before the request
)


def make_pool(ca_bundle: str | None = None, maxsize: int = 32) -> urllib3.PoolManager:
    """Pooled connections, TLS always verified (against `ca_bundle` when given), nothing retried."""
    return urllib3.PoolManager(
        num_pools=4,
        maxsize=maxsize,
        block=False,
        retries=False,
        cert_reqs="CERT_REQUIRED",
        ca_certs=ca_bundle or certifi.where(),
    )


@dataclass(frozen=True)
class Answer:
    """An HTTP answer: status, headers with lower-case names, and the body (cut at the cap)."""

    status: int
    headers: Mapping[str, str] = field(default_factory=dict)
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
    pool: urllib3.PoolManager,
    method: str,
    url: str,
    *,
    headers: Mapping[str, str],
    body: bytes | None,
    timeout: float,
    max_bytes: int = MAX_ANSWER_BYTES,
) -> Answer:
    """One request, never retried nor redirected, answered within `timeout` seconds in all."""
    deadline = time.monotonic() + timeout
    chunks: list[bytes] = []
    try:
        response = pool.request(
            method,
            url,
            body=body,
            headers=dict(headers),
            # total: the wait for the answer's head counts the connect time too.
            timeout=urllib3.Timeout(connect=min(_CONNECT_TIMEOUT, timeout), total=timeout),
            preload_content=False,
            redirect=False,
        )
        try:
            raw, truncated = read_until(response, deadline, max_bytes, chunks)
        except BaseException:
            response.close()
            raise
        if truncated:
            response.close()  # the rest is unread: the connection cannot be reused
        else:
            response.release_conn()
    except (urllib3.exceptions.HTTPError, OSError) as err:
        timed_out = isinstance(err, (TimeoutError, urllib3.exceptions.TimeoutError))
        what = "timed out" if timed_out else "failed"
        cause = type(err).__name__
        sent = not isinstance(err, _NEVER_SENT)
        partial = b"".join(chunks)[:max_bytes]
        raise TransportError(f"{what}: {cause}", sent=sent, timed_out=timed_out, cause=cause, partial=partial) from err
    answer_headers = {name.lower(): value for name, value in response.headers.items()}
    return Answer(response.status, answer_headers, raw, truncated)


def read_until(
    raw: urllib3.BaseHTTPResponse, deadline: float, max_bytes: int, chunks: list[bytes] | None = None
) -> tuple[bytes, bool]:
    """The body, read in pieces so a server that drips bytes cannot hold us past the deadline. The
    pieces gather in `chunks` when given, so a caller still has them when the read breaks off."""
    chunks = [] if chunks is None else chunks
    size = 0
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("the answer took longer than the timeout")
        _set_read_timeout(raw, remaining)
        chunk = raw.read1(8192)
        if not chunk:
            return b"".join(chunks), False
        chunks.append(chunk)
        size += len(chunk)
        if size > max_bytes:
            return b"".join(chunks)[:max_bytes], True


def _set_read_timeout(raw: urllib3.BaseHTTPResponse, seconds: float) -> None:
    # The response's connection (public in urllib3 2) holds the socket each read waits on.
    sock = getattr(raw.connection, "sock", None)
    if sock is not None:
        sock.settimeout(max(seconds, 0.001))
