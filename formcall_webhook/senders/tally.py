"""auth.type = "tally": Tally-Signature: <base64 HMAC-SHA256 of the raw body>."""

from __future__ import annotations

from .base import (
    DAY_SECONDS,
    Auth,
    Incoming,
    Resolve,
    Scheme,
    VouchedDelivery,
    b64,
    denied,
    equal,
    hmac_sha256,
    register,
    secret,
)


def tally_signature(secret_value: str, body: bytes) -> str:
    return b64(hmac_sha256(secret_value, body))


class Tally(Scheme):
    name = "tally"
    secret_keys = ("secret",)
    credential_headers = frozenset({"tally-signature"})
    signed = True

    def verify(self, auth: Auth, request: Incoming, resolve: Resolve) -> VouchedDelivery | None:
        sent = request.headers.get("tally-signature", "").strip()
        if not sent:
            raise denied("no Tally-Signature")
        if not equal(sent, tally_signature(secret(auth, resolve), request.body)):
            raise denied("Tally signature does not match")
        # No time in the signature: a replay is caught for a day.
        return VouchedDelivery(sent, DAY_SECONDS)


SCHEME = register(Tally())
