"""auth.type = "none": anyone may submit (pair it with honeypot, captcha, rate limits, CORS)."""

from __future__ import annotations

from .base import Auth, Incoming, Resolve, Scheme, VouchedDelivery, register


class NoAuth(Scheme):
    name = "none"

    def verify(self, auth: Auth, request: Incoming, resolve: Resolve) -> VouchedDelivery | None:
        return None


SCHEME = register(NoAuth())
