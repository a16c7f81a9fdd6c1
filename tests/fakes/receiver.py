"""A loopback outcome-webhook receiver that verifies each delivery with the official Standard Webhooks library."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tests.fakes.loopback import LoopbackHTTP, QuietHandler


@dataclass
class Attempt:
    """One request received: its headers (lower-case), body, whether it verified, and the status answered."""

    headers: dict[str, str]
    body: bytes
    verified: bool
    status: int
    payload: Any = None
    extra_headers: dict[str, str] = field(default_factory=dict)


class _Handler(QuietHandler):
    server: Any

    def do_POST(self) -> None:
        fake: FakeReceiver = self.server.fake
        body = self.read_body()
        headers = {k.lower(): v for k, v in self.headers.items()}
        status, extra = fake.answer(headers, body)
        self.send_json(status, {"ok": 200 <= status < 300}, extra)


class FakeReceiver(LoopbackHTTP):
    """Answers a scripted list of statuses (then 200), 401 to anything the library does not verify.

    A script entry is a status, or (status, {header: value}) to add headers such as Retry-After.
    """

    def __init__(self, secret: str, script: list[int | tuple[int, dict[str, str]]] | None = None) -> None:
        self.webhook = Webhook(secret)
        self.script: list[int | tuple[int, dict[str, str]]] = list(script or [])
        self.attempts: list[Attempt] = []
        self.lock = threading.Lock()
        super().__init__(_Handler)

    def answer(self, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str]]:
        try:
            payload = self.webhook.verify(body, headers)
            verified = True
        except (WebhookVerificationError, ValueError):
            payload, verified = None, False
        with self.lock:
            extra: dict[str, str] = {}
            if not verified:
                status = 401
            elif self.script:
                entry = self.script.pop(0)
                status, extra = entry if isinstance(entry, tuple) else (entry, {})
            else:
                status = 200
            self.attempts.append(Attempt(headers, body, verified, status, payload, extra))
        return status, extra

    @property
    def url(self) -> str:
        return self.base_url + "/outcomes"

    def accepted(self) -> list[Attempt]:
        """Deliveries that verified and were answered 2xx."""
        with self.lock:
            return [a for a in self.attempts if a.verified and 200 <= a.status < 300]
