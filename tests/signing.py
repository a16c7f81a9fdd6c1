"""Signatures computed the way each sender documents them: never by patching our own code."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time


def hubspot_v3(
    secret: str, method: str, uri: str, body: bytes, timestamp_ms: int | str | None = None
) -> dict[str, str]:
    """HubSpot's v3 headers: base64 HMAC-SHA256 of method + URI + body + timestamp (milliseconds)."""
    timestamp = str(int(time.time() * 1000)) if timestamp_ms is None else str(timestamp_ms)
    message = f"{method}{uri}".encode() + body + timestamp.encode()
    digest = hmac.new(secret.encode(), message, hashlib.sha256).digest()
    return {"X-HubSpot-Signature-v3": base64.b64encode(digest).decode(), "X-HubSpot-Request-Timestamp": timestamp}


def whsec(raw_key: bytes) -> str:
    return "whsec_" + base64.b64encode(raw_key).decode()


def standard_webhooks(secrets: list[str], msg_id: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """Standard Webhooks headers, one v1 signature per secret (as a sender rotating keys sends)."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    signatures = []
    for secret in secrets:
        # As the official libraries read a secret: "whsec_" optional, "=" padding optional.
        key = base64.b64decode(secret.removeprefix("whsec_") + "==")
        digest = hmac.new(key, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()
        signatures.append("v1," + base64.b64encode(digest).decode())
    return {"webhook-id": msg_id, "webhook-timestamp": ts, "webhook-signature": " ".join(signatures)}


def basic(username: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()}


def typeform(secret: str, body: bytes) -> dict[str, str]:
    """Typeform's documented scheme: "sha256=" + base64 HMAC-SHA256 of the raw body, keyed with the secret."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    return {"Typeform-Signature": "sha256=" + base64.b64encode(digest).decode()}


def tally(secret: str, body: bytes) -> dict[str, str]:
    """Tally's documented scheme: base64 HMAC-SHA256 of the raw body, keyed with the signing secret."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    return {"Tally-Signature": base64.b64encode(digest).decode()}


def webflow(secret: str, body: bytes, timestamp_ms: int | str | None = None) -> dict[str, str]:
    """Webflow's documented scheme: hex HMAC-SHA256 of the timestamp (milliseconds), ":" and the raw body."""
    timestamp = str(int(time.time() * 1000)) if timestamp_ms is None else str(timestamp_ms)
    digest = hmac.new(secret.encode(), f"{timestamp}:".encode() + body, hashlib.sha256).hexdigest()
    return {"x-webflow-timestamp": timestamp, "x-webflow-signature": digest}


def meta(app_secret: str, body: bytes) -> dict[str, str]:
    """Meta's documented scheme: "sha256=" + hex HMAC-SHA256 of the raw body, keyed with the app secret."""
    return {"X-Hub-Signature-256": "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()}
