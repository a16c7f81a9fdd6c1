"""Conversion events out to Google's Data Manager API and Meta's Conversions API (spec 12), on the shared
transport. Loaded only for routes with `conversions`; google-auth only once a Google event is sent.

Neither official library can be pointed at a test server through our transport (google-ads-datamanager
speaks gRPC by default, facebook-business posts through its own `requests` session), so the documented
REST endpoints are used with bodies built in conversions.py. The answer is judged as an outcome webhook's:
2xx sent; 408, 429 (with its Retry-After) and 5xx retried; any other 4xx final.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from .http import Pool, TransportError, send
from .outgoing import USER_AGENT, judge

TIMEOUT = 15.0
# What a refusal says, cut: platform errors name fields, never our data (which is hashed anyway).
_REASON_MAX = 300


@dataclass(frozen=True)
class SendResult:
    kind: Literal["sent", "retry", "final"]
    status: int | None
    retry_after: int | None
    reason: str


def post_event(
    pool: Pool,
    url: str,
    body: Mapping[str, Any],
    bearer: str,
    *,
    timeout: float = TIMEOUT,
    now: float | None = None,
) -> SendResult:
    """One POST of a conversion body with `Authorization: Bearer`; never retried here."""
    headers = {
        "Content-Type": "application/json",
        "Accept": "application/json",
        "User-Agent": USER_AGENT,
        "Authorization": f"Bearer {bearer}",
    }
    data = json.dumps(body, separators=(",", ":")).encode("utf-8")
    try:
        answer = send(pool, "POST", url, headers=headers, body=data, timeout=timeout)
    except TransportError as err:
        return SendResult("retry", None, None, f"no answer: {err.reason}")
    judged = judge(answer.status, answer.headers, time.time() if now is None else now)
    if judged.kind == "delivered":
        return SendResult("sent", answer.status, None, f"HTTP {answer.status}")
    reason = f"HTTP {answer.status}"
    if judged.kind == "final":
        reason += f": {_error_message(answer.body)}"
    return SendResult(judged.kind, answer.status, judged.retry_after, reason)


def _error_message(body: bytes) -> str:
    """The platform's own words for a refusal: Google's error.status/message, Meta's error.message."""
    try:
        doc = json.loads(body)
    except ValueError:
        return "the platform refused the event"
    error = doc.get("error") if isinstance(doc, dict) else None
    if not isinstance(error, dict):
        return "the platform refused the event"
    words = [str(error[k]) for k in ("status", "type", "code", "message") if error.get(k) not in (None, "")]
    return " ".join(words)[:_REASON_MAX] or "the platform refused the event"


class CredentialsUnavailable(Exception):
    """The runtime's Application Default Credentials could not give a token (yet)."""


class GoogleToken:
    """Application Default Credentials for `scope`, found on first use and refreshed when expired."""

    def __init__(self, scope: str) -> None:
        self.scope = scope
        self._credentials: Any = None
        self._lock = threading.Lock()

    def get(self, pool: Pool) -> str:
        import google.auth  # only a route sending to Google loads it
        import google.auth.exceptions

        with self._lock:
            try:
                if self._credentials is None:
                    self._credentials, _project = google.auth.default(scopes=[self.scope])
                if not self._credentials.valid:
                    self._credentials.refresh(_GoogleRequest(pool))
            except google.auth.exceptions.GoogleAuthError as err:
                raise CredentialsUnavailable(f"{type(err).__name__}: {str(err)[:_REASON_MAX]}") from err
            return str(self._credentials.token)


# google-auth's wait for its token endpoint (or the metadata server) when it names none.
_GOOGLE_AUTH_TIMEOUT = 30.0


@dataclass(frozen=True)
class _GoogleResponse:
    """google.auth.transport.Response's three properties."""

    status: int
    headers: Mapping[str, str]
    data: bytes


class _GoogleRequest:
    """google.auth.transport.Request on the shared transport, so a token refresh uses the same pool and
    TLS (the route's CA bundle) and loads no HTTP library of its own."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool

    def __call__(
        self,
        url: str,
        method: str = "GET",
        body: bytes | str | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        **_kwargs: Any,
    ) -> _GoogleResponse:
        import google.auth.exceptions

        data = body.encode("utf-8") if isinstance(body, str) else body
        try:
            answer = send(
                self.pool, method, url, headers=dict(headers or {}), body=data,
                timeout=_GOOGLE_AUTH_TIMEOUT if timeout is None else float(timeout),
            )  # fmt: skip
        except TransportError as err:
            raise google.auth.exceptions.TransportError(err.reason) from err  # type: ignore[no-untyped-call]
        return _GoogleResponse(answer.status, answer.headers, answer.body)
