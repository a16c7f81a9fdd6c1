"""auth.type = "token": a shared secret in a header (auth.header) or, unless turned off, ?token=."""

from __future__ import annotations

from urllib.parse import parse_qsl

from .base import (
    DEFAULT_TOKEN_HEADER,
    Auth,
    Incoming,
    Resolve,
    Scheme,
    VouchedDelivery,
    denied,
    equal,
    register,
    secret,
)


def query_token(query_string: bytes) -> str | None:
    for key, value in parse_qsl(query_string.decode("utf-8", "replace"), keep_blank_values=True):
        if key == "token":
            return value
    return None


class Token(Scheme):
    name = "token"
    secret_keys = ("secret",)
    credential_headers = frozenset({DEFAULT_TOKEN_HEADER.lower()})

    def verify(self, auth: Auth, request: Incoming, resolve: Resolve) -> VouchedDelivery | None:
        expected = secret(auth, resolve)
        sent = request.headers.get(auth.header.lower())
        if sent is None and auth.query_token:
            sent = query_token(request.query_string)
        if not sent:
            where = auth.header + (" or ?token=" if auth.query_token else "")
            raise denied(f"no token in {where}")
        if not equal(sent.strip(), expected):
            raise denied("wrong token")
        # A shared token proves who may send, not which delivery this is.
        return None


SCHEME = register(Token())
