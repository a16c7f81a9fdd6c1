"""auth.type = "basic": HTTP Basic, auth.username and the secret reference auth.password."""

from __future__ import annotations

import base64
import binascii

from .base import Auth, Incoming, Resolve, Scheme, VouchedDelivery, denied, equal, register, secret

_CHALLENGE = {"WWW-Authenticate": 'Basic realm="formcall-webhook", charset="UTF-8"'}


class Basic(Scheme):
    name = "basic"
    secret_keys = ("password",)
    required_keys = ("username",)
    credential_headers = frozenset({"authorization"})

    def verify(self, auth: Auth, request: Incoming, resolve: Resolve) -> VouchedDelivery | None:
        password = secret(auth, resolve, auth.password)
        scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic" or not encoded:
            raise denied("no Basic credentials", _CHALLENGE)
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError) as err:
            raise denied("malformed Basic credentials", _CHALLENGE) from err
        username, sep, sent_password = decoded.partition(":")
        # Both compared, always: no early exit that would time which one was wrong.
        user_ok = equal(username, auth.username or "")
        password_ok = equal(sent_password, password)
        if not (sep and user_ok and password_ok):
            raise denied("wrong Basic credentials", _CHALLENGE)
        return None


SCHEME = register(Basic())
