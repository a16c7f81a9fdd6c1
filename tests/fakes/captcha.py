"""A loopback siteverify endpoint that answers like Turnstile, reCAPTCHA and hCaptcha do."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl


class FakeSiteverify:
    """Tokens decide the verdict: "pass", "fail", "score:0.3" (a reCAPTCHA v3 answer), or
    "answer:{JSON}" (a successful answer with those fields, e.g. an hCaptcha Enterprise risk score)."""

    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.requests: list[dict[str, str]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                form = dict(parse_qsl(self.rfile.read(length).decode()))
                fake.requests.append(form)
                answer = fake.verdict(form)
                body = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/siteverify"

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

    def start(self) -> FakeSiteverify:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
