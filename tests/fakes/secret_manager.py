"""A loopback fake of Google Secret Manager's REST API, for the real google-cloud-secret-manager client.

The client, pointed at it with the REST transport and anonymous credentials, sends
``GET /v1/projects/P/secrets/S/versions/V:access?%24alt=json%3Benum-encoding%3Dint`` (no body) and
parses ``{"name": ..., "payload": {"data": BASE64, "dataCrc32c": "DECIMAL"}}``. Errors come back in
Google's JSON error shape, which google.api_core turns into NotFound, PermissionDenied, and so on.

    sm = FakeSecretManager().start()
    sm.set("projects/p/secrets/formcall-token", "tok-1")
    client = secretmanager.SecretManagerServiceClient(
        credentials=AnonymousCredentials(), transport="rest", client_options={"api_endpoint": sm.endpoint})
"""

from __future__ import annotations

import base64
import collections
import re
import threading
from typing import Any
from urllib.parse import unquote, urlsplit

from tests.fakes.loopback import LoopbackHTTP, QuietHandler

__all__ = ["FakeSecretManager", "crc32c"]

_SECRET_RE = re.compile(r"projects/[^/]+(?:/locations/[^/]+)?/secrets/[^/]+")
_VERSION_RE = re.compile(r"(?P<secret>projects/[^/]+(?:/locations/[^/]+)?/secrets/[^/]+)/versions/(?P<version>[^/]+)")
_ACCESS_PATH_RE = re.compile(r"/v1/(?P<name>" + _VERSION_RE.pattern + r"):access")

# The google.rpc.Code names that Google's JSON errors carry for each HTTP status.
_STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def _crc32c_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_CRC32C_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli), what Secret Manager puts in dataCrc32c; no google-crc32c is installed."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _CRC32C_TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _secret_name(name: str) -> str:
    """projects/P/secrets/S from that or from a version name."""
    match = _VERSION_RE.fullmatch(name)
    if match:
        return match["secret"]
    if _SECRET_RE.fullmatch(name):
        return name
    raise ValueError(f"not a secret or secret version name: {name!r}")


class _Handler(QuietHandler):
    server: Any

    def _json(self, status: int, value: Any) -> None:
        self.send_json(status, value, content_type="application/json; charset=UTF-8")

    def _error(self, status: int, message: str) -> None:
        self._json(
            status, {"error": {"code": status, "message": message, "status": _STATUS_NAMES.get(status, "UNKNOWN")}}
        )

    def _handle(self) -> None:
        fake: FakeSecretManager = self.server.fake
        self.read_body()
        url = urlsplit(self.path)
        path = unquote(url.path)
        match = _ACCESS_PATH_RE.fullmatch(path) if self.command == "GET" else None
        name = match["name"] if match else None
        if fake._unreachable:
            fake._record(self.command, path, unquote(url.query), name)
            self.reset()  # like a firewall dropping the connection
            return
        status, answer = fake._answer(self.command, path, unquote(url.query), name)
        if status == 200:
            self._json(200, answer)
        else:
            self._error(status, str(answer))

    do_GET = _handle
    do_POST = _handle
    do_PATCH = _handle
    do_DELETE = _handle


class FakeSecretManager(LoopbackHTTP):
    """Secret Manager's accessSecretVersion over plain HTTP on 127.0.0.1."""

    name = "fake-secret-manager"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._versions: dict[str, list[bytes]] = {}
        self._accesses: collections.Counter[str] = collections.Counter()
        self._requests: list[dict[str, Any]] = []
        self._failures: collections.deque[tuple[int, str | None]] = collections.deque()
        self._unreachable = False
        super().__init__(_Handler)

    @property
    def endpoint(self) -> str:
        """http://127.0.0.1:PORT, for client_options={"api_endpoint": ...}."""
        return self.base_url

    def set(self, name: str, value: str | bytes) -> str:
        """Add a version to a secret (created on first use); returns the new version's full name."""
        secret = _secret_name(name)
        data = value.encode() if isinstance(value, str) else bytes(value)
        with self._lock:
            versions = self._versions.setdefault(secret, [])
            versions.append(data)
            return f"{secret}/versions/{len(versions)}"

    def delete(self, name: str) -> None:
        """Forget a secret and all its versions."""
        with self._lock:
            self._versions.pop(_secret_name(name), None)

    def access_count(self, name: str) -> int:
        """Access requests received: for a secret name, all its versions; for a version name
        ("…/versions/latest" or "…/versions/2"), that name as requested. Failed ones count too."""
        with self._lock:
            if _VERSION_RE.fullmatch(name):
                return self._accesses[name]
            secret = _secret_name(name)
            return sum(n for key, n in self._accesses.items() if _secret_name(key) == secret)

    def requests(self) -> list[dict[str, Any]]:
        """Every request received: method, path, query (decoded) and the version name for access requests."""
        with self._lock:
            return [dict(r) for r in self._requests]

    def fail_next(self, status: int, count: int = 1, message: str | None = None) -> None:
        """Answer the next `count` requests with this HTTP status as a Google JSON error
        (403 PERMISSION_DENIED, 404 NOT_FOUND, 429 RESOURCE_EXHAUSTED, 503 UNAVAILABLE, ...)."""
        with self._lock:
            self._failures.extend([(status, message)] * count)

    def set_unreachable(self, unreachable: bool = True) -> None:
        """While set, every connection is reset (RST) without an answer."""
        with self._lock:
            self._unreachable = unreachable

    def reset(self) -> None:
        """Forget secrets, counters, requests and pending failures."""
        with self._lock:
            self._versions.clear()
            self._accesses.clear()
            self._requests.clear()
            self._failures.clear()
            self._unreachable = False

    def _record(self, method: str, path: str, query: str, name: str | None) -> None:
        with self._lock:
            self._requests.append({"method": method, "path": path, "query": query, "name": name})
            if name is not None:
                self._accesses[name] += 1

    def _answer(self, method: str, path: str, query: str, name: str | None) -> tuple[int, Any]:
        self._record(method, path, query, name)
        with self._lock:
            if self._failures:
                status, message = self._failures.popleft()
                return status, message or f"Injected failure {status} for {name or path}."
            if name is None:
                return 404, f"Method not found: {method} {path}"
            match = _VERSION_RE.fullmatch(name)
            assert match is not None
            secret, version = match["secret"], match["version"]
            versions = self._versions.get(secret)
            if not versions:
                return 404, f"Secret [{secret}] not found or has no versions."
            if version == "latest":
                number = len(versions)
            elif version.isdigit() and 1 <= int(version) <= len(versions):
                number = int(version)
            else:
                return 404, f"Secret Version [{name}] not found."
            data = versions[number - 1]
        return 200, {
            "name": f"{secret}/versions/{number}",
            "payload": {"data": base64.b64encode(data).decode("ascii"), "dataCrc32c": str(crc32c(data))},
        }
