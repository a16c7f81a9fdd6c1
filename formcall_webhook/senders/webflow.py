"""auth.type = "webflow": x-webflow-signature, hex HMAC-SHA256 of x-webflow-timestamp (ms) + ":" + raw body."""

from __future__ import annotations

from .base import (
    WINDOW_SECONDS,
    Auth,
    Incoming,
    Resolve,
    Scheme,
    VouchedDelivery,
    denied,
    equal,
    hmac_sha256,
    register,
    secret,
    within,
)


def webflow_signature(secret_value: str, timestamp: str, body: bytes) -> str:
    return hmac_sha256(secret_value, timestamp.encode() + b":" + body).hex()


class Webflow(Scheme):
    name = "webflow"
    secret_keys = ("secret",)
    credential_headers = frozenset({"x-webflow-signature"})
    signed = True

    def verify(self, auth: Auth, request: Incoming, resolve: Resolve) -> VouchedDelivery | None:
        sent = request.headers.get("x-webflow-signature", "").strip().lower()
        timestamp = request.headers.get("x-webflow-timestamp", "").strip()
        if not sent or not timestamp:
            raise denied("no x-webflow-signature or x-webflow-timestamp")
        if not within(timestamp, request.now, WINDOW_SECONDS, per_second=1000):
            raise denied("x-webflow-timestamp malformed or outside the 300 s window")
        if not equal(sent, webflow_signature(secret(auth, resolve), timestamp, request.body)):
            raise denied("Webflow signature does not match")
        return VouchedDelivery(sent, WINDOW_SECONDS)


SCHEME = register(Webflow())
