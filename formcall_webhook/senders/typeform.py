"""auth.type = "typeform": Typeform-Signature: sha256=<base64 HMAC-SHA256 of the raw body>."""

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

_PREFIX = "sha256="


def typeform_signature(secret_value: str, body: bytes) -> str:
    return _PREFIX + b64(hmac_sha256(secret_value, body))


class Typeform(Scheme):
    name = "typeform"
    secret_keys = ("secret",)
    credential_headers = frozenset({"typeform-signature"})
    signed = True

    def verify(self, auth: Auth, request: Incoming, resolve: Resolve) -> VouchedDelivery | None:
        sent = request.headers.get("typeform-signature", "").strip()
        if not sent.startswith(_PREFIX):
            raise denied("no Typeform-Signature: sha256=...")
        if not equal(sent, typeform_signature(secret(auth, resolve), request.body)):
            raise denied("Typeform signature does not match")
        # The signature carries no time: the same signed body is a replay for as long as Typeform retries.
        return VouchedDelivery(sent, DAY_SECONDS)


SCHEME = register(Typeform())
