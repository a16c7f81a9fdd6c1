"""A loopback outcome-webhook receiver that verifies each delivery with the official Standard Webhooks library."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


@dataclass
class Attempt:
    """One request received: its headers (lower-case), body, whether it verified, and the status answered."""

    headers: dict[str, str]
    body: bytes
    verified: bool
    status: int
    payload: Any = None
    extra_headers: dict[str, str] = field(default_factory=dict)


class FakeReceiver:
    """Answers a scripted list of statuses (then 200), 401 to anything the library does not verify.

    A script entry is a status, or (status, {header: value}) to add headers such as Retry-After.
    """

    def __init__(self, secret: str, script: list[int | tuple[int, dict[str, str]]] | None = None) -> None:
        self.webhook = Webhook(secret)
        self.script: list[int | tuple[int, dict[str, str]]] = list(script or [])
        self.attempts: list[Attempt] = []
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                headers = {k.lower(): v for k, v in self.headers.items()}
                status, extra = fake.answer(headers, body)
                reply = json.dumps({"ok": 200 <= status < 300}).encode()
                self.send_response(status)
                for name, value in extra.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True

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
        return f"http://127.0.0.1:{self.server.server_address[1]}/outcomes"

    def accepted(self) -> list[Attempt]:
        """Deliveries that verified and were answered 2xx."""
        with self.lock:
            return [a for a in self.attempts if a.verified and 200 <= a.status < 300]

    def start(self) -> FakeReceiver:
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
