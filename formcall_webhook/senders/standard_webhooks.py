"""auth.type = "standard_webhooks": webhook-id, webhook-timestamp, webhook-signature (v1), 300 s window.

The secret is read as the official libraries read it: with or without "whsec_", with or without "="
padding; an empty one is refused."""

from __future__ import annotations

import base64
import binascii

from .base import (
    WINDOW_SECONDS,
    Auth,
    Delivery,
    Incoming,
    Resolve,
    Scheme,
    b64,
    denied,
    equal,
    hmac_sha256,
    misconfigured,
    register,
    secret,
    within,
)

_PREFIX = "whsec_"


def _b64decode(text: str) -> bytes:
    """Standard base64, padding optional; binascii.Error when it is not base64 at all."""
    stripped = text.strip().rstrip("=")
    return base64.b64decode(stripped + "=" * (-len(stripped) % 4), validate=True)


def signing_key(secret_value: str) -> bytes:
    try:
        key = _b64decode(secret_value.strip().removeprefix(_PREFIX))
    except binascii.Error as err:
        raise misconfigured("standard_webhooks secret is not base64 (whsec_ optional)") from err
    if not key:
        raise misconfigured("standard_webhooks secret is empty")
    return key


def standard_webhooks_signature(secret_value: str, msg_id: str, timestamp: str, body: bytes) -> str:
    return b64(hmac_sha256(signing_key(secret_value), f"{msg_id}.{timestamp}.".encode() + body))


class StandardWebhooks(Scheme):
    name = "standard_webhooks"
    secret_keys = ("secret",)
    credential_headers = frozenset({"webhook-signature"})
    signed = True

    def verify(self, auth: Auth, request: Incoming, resolve: Resolve) -> Delivery | None:
        headers = request.headers
        msg_id = headers.get("webhook-id", "").strip()
        timestamp = headers.get("webhook-timestamp", "").strip()
        signatures = headers.get("webhook-signature", "").split()
        if not msg_id or not timestamp or not signatures:
            raise denied("no webhook-id, webhook-timestamp or webhook-signature")
        # Seconds; checked both ways, so a signature from the future cannot be stored and replayed.
        if not within(timestamp, request.now, WINDOW_SECONDS):
            raise denied("webhook-timestamp missing, malformed or outside the 300 s window")
        key = signing_key(secret(auth, resolve))
        expected = hmac_sha256(key, f"{msg_id}.{timestamp}.".encode() + request.body)
        # Several signatures: the sender signs with old and new keys while a secret is rotated.
        matched = False
        for entry in signatures:
            version, _, value = entry.partition(",")
            try:
                sent = _b64decode(value)
            except binascii.Error:
                continue
            if version == "v1" and equal(sent, expected):
                matched = True
        if not matched:
            raise denied("no webhook-signature matches")
        return Delivery(msg_id, WINDOW_SECONDS)


SCHEME = register(StandardWebhooks())
