"""Loopback fakes of Google's OAuth token endpoint, the Data Manager API's `events:ingest` and Meta's
Conversions API (`/{version}/{pixel_id}/events`), each as strict as the official libraries' own models.

- Google: the token endpoint gives an access token for a service account's signed JWT grant (a key file
  whose `token_uri` points here, verified with its public key); `events:ingest` wants that token as a Bearer and parses
  the body with google-ads-datamanager's own `IngestEventsRequest.from_json` (unknown fields refused),
  then checks what the API documents as required: a destination, and per event a transaction id and a
  timestamp; user identifiers hashed (64 hex digits) with `encoding = HEX`.
- Meta: the token as a Bearer; each event of `data` rebuilt through facebook-business's `Event` and
  `UserData` models, whose `normalize()` must give back exactly what was sent (already hashed values
  pass through it unchanged; a raw one would be hashed and differ); an event older than 7 days refuses
  the whole batch, as Meta documents.

A script per platform ("google", "meta") answers the next requests with other statuses first.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

HEX64 = re.compile(r"[0-9a-f]{64}")
META_TOKEN = "meta-capi-test-token"
META_MAX_AGE = 7 * 86400
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
# A service account's assertion names Google's token endpoint as its audience, wherever it is sent.
GOOGLE_TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"


@dataclass
class Request:
    platform: str  # "token", "google" or "meta"
    path: str
    headers: dict[str, str]
    body: bytes
    status: int

    @property
    def json(self) -> Any:
        return json.loads(self.body)


class FakeAds:
    def __init__(self, *, meta_token: str = META_TOKEN, clock: Callable[[], float] = time.time) -> None:
        self.meta_token = meta_token
        self.public_key: str | None = None  # the service account's, PEM: set by the test that makes the key
        self.scopes: list[str] = []
        self.token_errors: list[str] = []
        self.clock = clock  # Meta's clock for the 7-day rule
        self.requests: list[Request] = []
        self.scripts: dict[str, list[tuple[int, dict[str, str]]]] = {"google": [], "meta": []}
        self.tokens: set[str] = set()
        self.google_events: dict[str, dict[str, Any]] = {}  # by transaction id: what was accepted
        self.meta_events: dict[str, dict[str, Any]] = {}  # by event id
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                headers = {k.lower(): v for k, v in self.headers.items()}
                status, extra, reply = fake.dispatch(self.path, headers, body)
                data = json.dumps(reply).encode()
                self.send_response(status)
                for name, value in extra.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> FakeAds:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def fail_next(self, platform: str, status: int, headers: dict[str, str] | None = None) -> None:
        self.scripts[platform].append((status, headers or {}))

    def of(self, platform: str) -> list[Request]:
        return [r for r in self.requests if r.platform == platform]

    def dispatch(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], Any]:
        platform = "token" if path == "/token" else "google" if path == "/v1/events:ingest" else "meta"
        with self.lock:
            if platform == "token":
                status, reply = self._token(body)
                extra: dict[str, str] = {}
            elif self.scripts[platform] and self._authorized(platform, headers):
                status, extra = self.scripts[platform].pop(0)
                reply = _error(platform, status, "scripted failure")
            else:
                extra = {}
                status, reply = self._google(headers, body) if platform == "google" else self._meta(path, headers, body)
            self.requests.append(Request(platform, path, headers, body, status))
        return status, extra, reply

    def _authorized(self, platform: str, headers: dict[str, str]) -> bool:
        given = headers.get("authorization", "").removeprefix("Bearer ")
        return given in self.tokens if platform == "google" else given == self.meta_token

    def _token(self, body: bytes) -> tuple[int, Any]:
        """A service account's JWT-bearer grant, verified with its public key, as Google's endpoint does."""
        from google.auth import exceptions, jwt

        form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
        if form.get("grant_type") != JWT_BEARER or self.public_key is None:
            return 400, {"error": "unsupported_grant_type"}
        try:
            claims = jwt.decode(form.get("assertion", ""), certs=[self.public_key], audience=GOOGLE_TOKEN_AUDIENCE)
        except (ValueError, exceptions.GoogleAuthError) as err:
            self.token_errors.append(repr(err))
            return 400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}
        self.scopes.append(str(claims.get("scope")))
        token = f"ya29.test-{len(self.tokens) + 1}"
        self.tokens.add(token)
        return 200, {"access_token": token, "expires_in": 3600, "token_type": "Bearer"}

    def _google(self, headers: dict[str, str], body: bytes) -> tuple[int, Any]:
        from google.ads.datamanager_v1.types import IngestEventsRequest

        if not self._authorized("google", headers):
            return 401, _error("google", 401, "Request had invalid authentication credentials.")
        try:
            request = IngestEventsRequest.from_json(body, ignore_unknown_fields=False)
        except Exception as err:
            return 400, _error("google", 400, f"Invalid JSON payload received. {err}")
        problems = _google_problems(request)
        if problems:
            return 400, _error("google", 400, "; ".join(problems))
        for event in request.events:
            self.google_events.setdefault(event.transaction_id, json.loads(body))
        return 200, {"requestId": f"req-{len(self.requests)}"}

    def _meta(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, Any]:
        if not re.fullmatch(r"/v\d+\.\d+/\d+/events", path):
            return 404, _error("meta", 404, "Unknown path components")
        if not self._authorized("meta", headers):
            return 400, {"error": {"message": "Invalid OAuth access token.", "type": "OAuthException", "code": 190}}
        try:
            events = json.loads(body)["data"]
            problems = [p for event in events for p in _meta_problems(event, self.clock())]
        except (ValueError, KeyError, TypeError) as err:
            problems = [f"malformed: {err}"]
        if problems:
            return 400, {"error": {"message": "; ".join(problems), "type": "OAuthException", "code": 100}}
        for event in events:
            self.meta_events.setdefault(event["event_id"], event)
        return 200, {"events_received": len(events), "messages": [], "fbtrace_id": "AbCdEf"}


def _google_problems(request: Any) -> list[str]:
    from google.ads.datamanager_v1.types import Encoding

    problems = []
    if not request.destinations:
        problems.append("destinations: required")
    for dest in request.destinations:
        if not dest.operating_account.account_id or not dest.product_destination_id:
            problems.append("destination: operating_account.account_id and product_destination_id required")
    if not request.events:
        problems.append("events: required")
    for event in request.events:
        if not event.transaction_id:
            problems.append("event.transaction_id: required")
        if not event.event_timestamp:
            problems.append("event.event_timestamp: required")
        for ident in event.user_data.user_identifiers:
            value = ident.email_address or ident.phone_number
            if not HEX64.fullmatch(value):
                problems.append("user identifier: not a hex SHA-256 hash")
            if request.encoding != Encoding.HEX:
                problems.append("encoding: HEX required for hex-encoded identifiers")
    return problems


def _meta_problems(event: dict[str, Any], now: float) -> list[str]:
    from facebook_business.adobjects.serverside.action_source import ActionSource
    from facebook_business.adobjects.serverside.event import Event
    from facebook_business.adobjects.serverside.user_data import UserData

    user = event["user_data"]
    rebuilt = Event(
        event_name=event["event_name"],
        event_time=event["event_time"],
        event_id=event.get("event_id"),
        action_source=ActionSource(event["action_source"]),
        user_data=UserData(
            emails=user.get("em"),
            phones=user.get("ph"),
            country_codes=user.get("country"),
            fbc=user.get("fbc"),
            fbp=user.get("fbp"),
        ),
    ).normalize()
    problems = []
    if rebuilt != event:
        problems.append(f"event differs from the SDK's model: sent {sorted(event)}, model {sorted(rebuilt)}")
    for name in ("em", "ph", "country"):
        if any(not HEX64.fullmatch(v) for v in user.get(name, [])):
            problems.append(f"user_data.{name}: not hashed")
    if now - event["event_time"] > META_MAX_AGE:
        problems.append("event_time: more than 7 days ago")
    return problems


def _error(platform: str, status: int, message: str) -> dict[str, Any]:
    if platform == "meta":
        return {"error": {"message": message, "type": "OAuthException", "code": status}}
    names = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 429: "RESOURCE_EXHAUSTED", 503: "UNAVAILABLE"}
    return {"error": {"code": status, "message": message, "status": names.get(status, "UNKNOWN")}}
