"""A loopback Graph API serving Lead Ads leads by id, as Meta documents the read
(developers.facebook.com/docs/marketing-api/guides/lead-ads/retrieving):

  GET /{version}/{leadgen_id}   with the page token, as `Authorization: Bearer` or `?access_token=`
  200 {"created_time": "2026-12-01T12:00:00+0000", "id": "...", "field_data": [{"name", "values"}]}

Errors in Graph's shape ({"error": {"message", "type", "code", "error_subcode", "fbtrace_id"}}): a missing
or wrong token is 400 OAuthException 190; an id it does not hold is 400 GraphMethodException 100/33;
`down` answers every request 500 with code 2 ("Service temporarily unavailable"), as Graph does when it
is down.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.fakes.loopback import LoopbackHTTP, QuietHandler

_PATH = re.compile(r"^/(v[0-9]+\.[0-9]+)/([0-9]+)$")


@dataclass
class Read:
    """One request as received: method, path with query, headers (lower-case), the status answered."""

    method: str
    path: str
    headers: dict[str, str]
    status: int = 0


def field_data(**answers: str | list[str]) -> list[dict[str, Any]]:
    """{"phone_number": "+56...", ...} as Graph's field_data."""
    return [{"name": k, "values": v if isinstance(v, list) else [v]} for k, v in answers.items()]


class _Handler(QuietHandler):
    server: Any

    def do_GET(self) -> None:
        fake: FakeGraph = self.server.fake
        read = Read(self.command, self.path, {k.lower(): v for k, v in self.headers.items()})
        read.status, answer = fake.answer(read)
        self.send_json(read.status, answer, content_type="application/json; charset=UTF-8")

    def do_POST(self) -> None:
        self.read_body()
        self.do_GET()


class FakeGraph(LoopbackHTTP):
    """Leads by id behind one page token; every request kept in `reads`."""

    def __init__(self, page_token: str) -> None:
        self.page_token = page_token
        self.leads: dict[str, dict[str, Any]] = {}
        self.reads: list[Read] = []
        self.down = False
        self.lock = threading.Lock()
        super().__init__(_Handler)

    @property
    def url(self) -> str:
        return self.base_url

    def add_lead(self, leadgen_id: str, answers: list[dict[str, Any]], created_time: str) -> None:
        with self.lock:
            self.leads[leadgen_id] = {"created_time": created_time, "id": leadgen_id, "field_data": answers}

    def reads_of(self, leadgen_id: str) -> list[Read]:
        with self.lock:
            return [r for r in self.reads if urlsplit(r.path).path.endswith(f"/{leadgen_id}")]

    def answer(self, read: Read) -> tuple[int, dict[str, Any]]:
        with self.lock:
            self.reads.append(read)
            if self.down:
                return 500, _error("An unexpected error has occurred. Please retry your request later.",
                                   "OAuthException", 2)  # fmt: skip
            parts = urlsplit(read.path)
            query = parse_qs(parts.query)
            bearer = read.headers.get("authorization", "")
            token = bearer.removeprefix("Bearer ") if bearer.startswith("Bearer ") else None
            token = token or (query.get("access_token") or [None])[0]
            if token != self.page_token:
                return 400, _error("Invalid OAuth access token - Cannot parse access token", "OAuthException", 190)
            match = _PATH.match(parts.path)
            if read.method != "GET" or match is None or match[2] not in self.leads:
                what = match[2] if match else parts.path
                return 400, _error(
                    f"Unsupported get request. Object with ID '{what}' does not exist, cannot be loaded due to "
                    "missing permissions, or does not support this operation.",
                    "GraphMethodException",
                    100,
                    33,
                )
            return 200, self.leads[match[2]]


def _error(message: str, kind: str, code: int, subcode: int | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"message": message, "type": kind, "code": code, "fbtrace_id": "AbCdEfGh123"}
    if subcode is not None:
        error["error_subcode"] = subcode
    return {"error": error}
