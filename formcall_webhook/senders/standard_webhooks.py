"""auth.type = "standard_webhooks": webhook-id, webhook-timestamp, webhook-signature (v1), 300 s window.

The key and the signature come from formcall_webhook/signing.py, which the outcome webhook signs with too."""

from __future__ import annotations

from ..signing import EmptySecret, b64decode, digest
from ..signing import signing_key as key_of
from .base import (
    WINDOW_SECONDS,
    Auth,
    Incoming,
    Resolve,
    Scheme,
    VouchedDelivery,
    denied,
    equal,
    misconfigured,
    register,
    secret,
    within,
)


def signing_key(secret_value: str) -> bytes:
    try:
        return key_of(secret_value)
    except EmptySecret as err:
        raise misconfigured("standard_webhooks secret is empty") from err
    except ValueError as err:
        raise misconfigured("standard_webhooks secret is not base64 (whsec_ optional)") from err


class StandardWebhooks(Scheme):
    name = "standard_webhooks"
    secret_keys = ("secret",)
    credential_headers = frozenset({"webhook-signature"})
    signed = True

    def verify(self, auth: Auth, request: Incoming, resolve: Resolve) -> VouchedDelivery | None:
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
        expected = digest(key, msg_id, timestamp, request.body)
        # Several signatures: the sender signs with old and new keys while a secret is rotated.
        matched = False
        for entry in signatures:
            version, _, value = entry.partition(",")
            try:
                sent = b64decode(value)
            except ValueError:
                continue
            if version == "v1" and equal(sent, expected):
                matched = True
        if not matched:
            raise denied("no webhook-signature matches")
        return VouchedDelivery(msg_id, WINDOW_SECONDS)


SCHEME = register(StandardWebhooks())
