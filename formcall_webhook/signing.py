"""Standard Webhooks signing, in one place (pure): the key of a `whsec_` secret and the v1 signature.

The request path verifies with it (senders/standard_webhooks.py); the outcome webhook signs with it
(clients/outgoing.py). The secret is read as the official libraries read it: with or without "whsec_",
with or without "=" padding; an empty one is refused."""

from __future__ import annotations

import base64
import hashlib
import hmac

_PREFIX = "whsec_"


class EmptySecret(ValueError):
    """The secret decodes to no key at all."""


def b64decode(text: str) -> bytes:
    """Standard base64, padding optional; binascii.Error (a ValueError) when it is not base64 at all."""
    stripped = text.strip().rstrip("=")
    return base64.b64decode(stripped + "=" * (-len(stripped) % 4), validate=True)


def signing_key(secret: str) -> bytes:
    """The HMAC key of a Standard Webhooks secret; ValueError naming what is wrong with it."""
    try:
        key = b64decode(secret.strip().removeprefix(_PREFIX))
    except ValueError as err:
        raise ValueError("the secret is not whsec_<base64>") from err
    if not key:
        raise EmptySecret("the secret is empty")
    return key


def digest(key: bytes, msg_id: str, timestamp: str, body: bytes) -> bytes:
    """HMAC-SHA256 of `id.timestamp.body`, the content every v1 signature covers."""
    return hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers for this body: webhook-id, webhook-timestamp, webhook-signature."""
    stamp = str(timestamp)
    signature = base64.b64encode(digest(signing_key(secret), msg_id, stamp, body)).decode("ascii")
    return {"webhook-id": msg_id, "webhook-timestamp": stamp, "webhook-signature": "v1," + signature}
