"""Outcome webhooks, signed as Standard Webhooks and judged by the receiver's status (spec section 9).

As the Standard Webhooks specification (spec/standard-webhooks.md, 1.0.0) recommends: a body with `type`
and `timestamp` ("the timestamp of when the event occurred (not necessarily the same of when it was
delivered)"), and a request timeout "somewhere between 15 and 30s".
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, Literal
from urllib.parse import urlsplit

from ..signing import sign
from .http import Pool, TransportError, send

# A receiver asking for more than a day is out of step with the outcome's give_up anyway.
MAX_RETRY_AFTER = 24 * 3600
USER_AGENT = "formcall-webhook"
TIMEOUT = 15.0


@dataclass(frozen=True)
class PostResult:
    """delivered (2xx), retry (later), or final (the receiver refused it for good)."""

    kind: Literal["delivered", "retry", "final"]
    status: int | None
    retry_after: int | None
    reason: str


def event_time(ts: float) -> str:
    """A body's `timestamp`: ISO 8601 UTC to the second, as the record's other times are written."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def encode(payload: Mapping[str, Any]) -> bytes:
    """The body as sent and signed: compact UTF-8 JSON."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def judge(status: int, headers: Mapping[str, str], now: float) -> PostResult:
    """The receiver's answer: 2xx delivered; 408, 429, 5xx (and anything odd) retry; other 4xx final."""
    if 200 <= status < 300:
        return PostResult("delivered", status, None, f"HTTP {status}")
    if 400 <= status < 500 and status not in (408, 429):
        return PostResult("final", status, None, f"HTTP {status}: the receiver refused the outcome")
    return PostResult("retry", status, retry_after(headers.get("retry-after"), now), f"HTTP {status}")


def retry_after(value: str | None, now: float) -> int | None:
    """Retry-After in seconds (delta-seconds or an HTTP date), within [0, a day]; None when absent or bad."""
    if value is None:
        return None
    text = value.strip()
    if text.isascii() and text.isdigit() and len(text) <= 10:
        seconds = int(text)
    else:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:  # an HTTP date is GMT even when it does not say so
            return None
        seconds = int(when.timestamp() - now + 0.999)
    return max(0, min(seconds, MAX_RETRY_AFTER))


def target(url: str, resolve: Callable[[str], str]) -> str:
    """The URL to post to: `url` itself, or the value of the secret reference it is (spec 9), resolved now,
    at send time, so a rotated secret is picked up. Misconfigured when the reference cannot be had."""
    return resolve(url) if url.startswith(("env:", "file:", "secret:")) else url


def deliver(
    pool: Pool,
    url: str,
    secret: str,
    msg_id: str,
    payload: dict[str, Any],
    timeout: float = TIMEOUT,
    now: float | None = None,
    occurred_at: float | None = None,
) -> PostResult:
    """One signed POST of `payload`; the caller keeps `msg_id` stable per lead so the receiver can dedupe.

    The body gets a `timestamp` after its `type` (unless it has one): `occurred_at`, the event's own
    time, kept the same on every attempt; else this attempt's.
    """
    moment = time.time() if now is None else now
    try:
        parts = urlsplit(url)
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        # A secret reference holding no URL: ours to fix; never say the value (it may be a password).
        return PostResult("retry", None, None, "outcome.url is not an http(s) URL")
    head = {"type": payload["type"]} if "type" in payload else {}
    body = encode({**head, "timestamp": event_time(moment if occurred_at is None else occurred_at), **payload})
    try:
        signature = sign(secret, msg_id, int(moment), body)
    except ValueError as err:
        # Ours to fix in the config, not the receiver's: keep trying until give_up.
        return PostResult("retry", None, None, f"outcome.secret cannot sign: {err}")
    headers = {
        "Content-Type": "application/json",
        "Accept": "application/json, */*;q=0.5",
        "User-Agent": USER_AGENT,
        **signature,
    }
    try:
        answer = send(pool, "POST", url, headers=headers, body=body, timeout=timeout)
    except TransportError as err:
        return PostResult("retry", None, None, f"no answer: {err.reason}")
    return judge(answer.status, answer.headers, moment)
