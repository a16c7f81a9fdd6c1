"""A loopback siteverify endpoint that answers like Turnstile, reCAPTCHA and hCaptcha do."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl

from tests.fakes.loopback import LoopbackHTTP, QuietHandler


class _Handler(QuietHandler):
    server: Any

    def do_POST(self) -> None:
        fake: FakeSiteverify = self.server.fake
        form = dict(parse_qsl(self.read_body().decode()))
        fake.requests.append(form)
        self.send_json(200, fake.verdict(form))


class FakeSiteverify(LoopbackHTTP):
    """Tokens decide the verdict: "pass", "fail", "score:0.3" (a reCAPTCHA v3 answer), or
    "answer:{JSON}" (a successful answer with those fields, e.g. an hCaptcha Enterprise risk score)."""

    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.requests: list[dict[str, str]] = []
        super().__init__(_Handler)

    @property
    def url(self) -> str:
        return self.base_url + "/siteverify"

    def verdict(self, form: dict[str, str]) -> dict[str, Any]:
        if form.get("secret") != self.secret:
            return {"success": False, "error-codes": ["invalid-input-secret"]}
        token = form.get("response", "")
        if token == "pass":
            return {"success": True, "hostname": "acme.cl", "challenge_ts": "2026-11-28T12:00:00Z"}
        if token.startswith("answer:"):
            return {"success": True, **json.loads(token[7:])}
        if token.startswith("score:"):
            return {"success": True, "score": float(token[6:]), "action": "submit", "hostname": "acme.cl"}
        return {"success": False, "error-codes": ["invalid-input-response"]}
