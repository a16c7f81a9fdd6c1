"""A local fake of the FormCall API (formcall-api.md), for `make run` and the tests.

Standard library plus phonenumbers only, so it runs wherever the function runs. It listens on loopback
only: it accepts made-up tokens and must never be reachable from outside the machine.

    with Simulator() as sim:
        requests.post(sim.api_url, json={...})
        sim.placed()

Each placed call has a life in /calls/list (set_fate): queued, ringing, then a final status (not
answered, busy, failed, or connected with a duration), on a clock that tests move on (advance_clock)
instead of sleeping. A popup can be told which fates its next calls meet (queue_fates). The listing can
be down on its own (set_list_down), and its reads are counted per popup and date (list_reads). Every
control is also an HTTP endpoint under /_sim/ for `make run` users (README.md, "The simulator").

/calls/list rows hold exactly the documented fields, typed as formcall-api.md's example is. A richer row
that also names the customer's number (call_number_customer, which the documentation does not promise) is
an option a test turns on: Simulator(rich_rows=True), set_rich_rows(), POST /_sim/rows {"rich": true},
`--rich-rows` or FORMCALL_SIM_RICH_ROWS=1.

Run it on its own with `python -m formcall_webhook.simulator [--port 8081] [--token TOKEN ...]`.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import copy
import dataclasses
import datetime as dt
import hashlib
import ipaddress
import json
import os
import random
import re
import signal
import socket
import struct
import sys
import threading
import time
import uuid as uuid_module
import zoneinfo
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType, TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

import phonenumbers

__all__ = [
    "API_PATH",
    "DOCUMENTED_ROW_FIELDS",
    "ERROR_MESSAGES",
    "FATE_NAMES",
    "FAULT_KINDS",
    "LIST_FAULT_KINDS",
    "LIST_PATH",
    "PLATFORM_TZ",
    "RICH_ROWS_ENV",
    "STATUS_BUSY",
    "STATUS_CONNECTED",
    "STATUS_FAILED",
    "STATUS_NO_ANSWER",
    "STATUS_QUEUED",
    "STATUS_RINGING",
    "Simulator",
    "main",
]

API_PATH = "/calls/manage/api"
LIST_PATH = "/calls/list"

ERROR_MESSAGES: dict[int, str] = {
    1: "Invalid phone number",
    2: "Popup not in service hours",
    3: "Call origination failed",
    4: "Popup not found",
    5: "Country not found",
    6: "Wrong parameters",
    7: "Security Token Missing",
    8: "Invalid Security Token",
}

FAULT_KINDS = frozenset(
    {
        "slow",
        "reset",
        "reset_mid_answer",
        "http500_html",
        "html_200",
        "malformed_json",
        "error",
        "drip",
        "placed_then_reset",
    }
)

# How /calls/list can be down (set_list_down): the place-call faults that make sense for a GET.
LIST_FAULT_KINDS = frozenset({"http500_html", "reset", "html_200", "malformed_json"})

# Call statuses in /calls/list. Only "Conectada" is documented; the platform's other words are not, so
# the simulator's own carry a SIM- prefix that no client should mistake for the platform's.
STATUS_CONNECTED = "Conectada"
STATUS_QUEUED = "SIM-EnCola"
STATUS_RINGING = "SIM-Sonando"
STATUS_NO_ANSWER = "SIM-NoContesta"
STATUS_BUSY = "SIM-Ocupada"
STATUS_FAILED = "SIM-Fallida"
_IN_PROGRESS = frozenset({STATUS_QUEUED, STATUS_RINGING})
# A call's fate by the name a test gives it: what the platform does with a call once placed.
FATE_NAMES: dict[str, str] = {
    "connected": STATUS_CONNECTED,
    "not_answered": STATUS_NO_ANSWER,
    "busy": STATUS_BUSY,
    "failed": STATUS_FAILED,
}
# The fields of a documented /calls/list row (formcall-api.md), and nothing else.
DOCUMENTED_ROW_FIELDS = (
    "uuid",
    "status",
    "call_number_company",
    "retry",
    "duration_company",
    "duration_customer",
    "call_at",
    "enqueued",
    "popup_uuid",
)
# The richer row's one extra field, when a test turns it on.
RICH_ROW_FIELD = "call_number_customer"
RICH_ROWS_ENV = "FORMCALL_SIM_RICH_ROWS"
_FATE_KEYS = frozenset({"status", "ring_after", "settle_after", "duration_customer", "duration_company", "retry"})


def _platform_tz() -> dt.tzinfo:
    """The platform is Chilean: call_at and the list's dates are Santiago's (UTC-3, UTC-4 in winter)."""
    try:
        return zoneinfo.ZoneInfo("America/Santiago")
    except zoneinfo.ZoneInfoNotFoundError:
        # No tz database (a slim image): the documentation's own offset.
        return dt.timezone(dt.timedelta(hours=-3))


PLATFORM_TZ = _platform_tz()

# Defaults for faults named without parameters (mostly by set_fault_rate's string kinds).
DEFAULT_FAULT_SECONDS = 2.0
DEFAULT_FAULT_ERROR_CODE = 3
# The pause before the RST in reset_mid_answer, so the client has surely read the headers and the
# partial body first: otherwise the kernel may throw them away and it looks like a plain reset.
MID_ANSWER_PAUSE_SECONDS = 0.2
MAX_BODY_BYTES = 1 << 20
# The company leg's number in /calls/list: the one in the documentation's example.
COMPANY_NUMBER = "56223456789"

_REQUIRED_FIELDS = ("popup_uuid", "country_code", "areacode", "phonenumber")
_UUID_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_DIGITS_RE = re.compile(r"[0-9]*")
_COUNTRY_CODE_RE = re.compile(r"[1-9][0-9]{0,2}")
_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")

_HTML_500 = (
    b"<!DOCTYPE html>\n<html><head><title>500 Internal Server Error</title></head>\n"
    b"<body><h1>Internal Server Error</h1><p>The server encountered an internal error and was unable "
    b"to complete your request.</p><hr><address>Apache Server at clickandtalk.medularis.com Port 443"
    b"</address></body></html>\n"
)
_HTML_PORTAL = (
    b"<!DOCTYPE html>\n<html><head><title>Wi-Fi login</title></head>\n<body><h1>Welcome!</h1>"
    b"<p>Please accept the terms of use to continue browsing.</p><form method=post action=/login>"
    b"<button>Accept</button></form></body></html>\n"
)


class _Stopped(Exception):
    """The simulator is stopping while a fault was sleeping."""


@dataclass(frozen=True)
class _Fault:
    kind: str
    seconds: float = 0.0
    code: int = DEFAULT_FAULT_ERROR_CODE


@dataclass
class _Popup:
    exists: bool = True
    in_service_hours: bool = True
    keep_pending: bool = False


@dataclass(frozen=True)
class _Fate:
    """A placed call's life in /calls/list: queued, ringing after `ring_after` s, `status` after
    `settle_after` s (None: rings forever). Durations left None are made up, stable per call."""

    status: str = STATUS_CONNECTED
    ring_after: float = 0.0
    settle_after: float | None = 0.0
    duration_customer: int | None = None
    duration_company: int | None = None
    retry: int = 1


@dataclass(frozen=True)
class _ListDown:
    kind: str
    until: dt.datetime | None  # on the simulator's clock; None: until set_list_up()


@dataclass
class _Call:
    seq: int
    received_at: dt.datetime
    payload: Any
    raw: str | None
    fault: str | None
    outcome: str | None = None
    error_code: int | None = None
    uuid: str | None = None
    response: dict[str, Any] | None = None
    # Set when placed: the life /calls/list shows for it.
    placed_at: dt.datetime | None = None
    fate: _Fate | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "received_at": self.received_at.isoformat(timespec="milliseconds"),
            "payload": copy.deepcopy(self.payload),
            "raw": self.raw,
            "fault": self.fault,
            "outcome": self.outcome,
            "error_code": self.error_code,
            "uuid": self.uuid,
            "response": copy.deepcopy(self.response),
        }


@dataclass(frozen=True)
class _Verdict:
    """What the normal flow decided for one request."""

    outcome: str  # "placed", "pending" or "error"
    response: dict[str, Any]
    error_code: int | None = None
    uuid: str | None = None


def _error(code: int) -> dict[str, Any]:
    return {"success": False, "error_code": code, "error_msg": ERROR_MESSAGES[code]}


def _parse_fault(fault: Mapping[str, Any] | str) -> _Fault:
    """Validate a fault as given by a test or over HTTP; ValueError says what is wrong."""
    spec: Mapping[str, Any] = {"kind": fault} if isinstance(fault, str) else fault
    if not isinstance(spec, Mapping):
        raise ValueError(f"a fault is an object with a kind, not {type(spec).__name__}")
    kind = spec.get("kind")
    if kind not in FAULT_KINDS:
        raise ValueError(f"unknown fault kind {kind!r}; known: {', '.join(sorted(FAULT_KINDS))}")
    seconds = spec.get("seconds", DEFAULT_FAULT_SECONDS if kind in ("slow", "drip") else 0.0)
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 <= seconds <= 3600:
        raise ValueError(f"fault {kind}: seconds must be a number from 0 to 3600, not {seconds!r}")
    code = spec.get("code", DEFAULT_FAULT_ERROR_CODE)
    if isinstance(code, bool) or not isinstance(code, int) or code not in ERROR_MESSAGES:
        raise ValueError(f"fault {kind}: code must be a FormCall error code 1-8, not {code!r}")
    return _Fault(kind=str(kind), seconds=float(seconds), code=code)


def _seconds(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 366 * 86400:
        raise ValueError(f"fate: {name} must be a number of seconds from 0 to a year, not {value!r}")
    return float(value)


def _count(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 86400:
        raise ValueError(f"fate: {name} must be a whole number from 0 to 86400, not {value!r}")
    return value


def _parse_fate(spec: Mapping[str, Any] | str) -> _Fate:
    """Validate a fate as given by a test or over HTTP; ValueError says what is wrong. A bare name
    ("not_answered") is that fate with its defaults; a status may be a name or a listing word."""
    if isinstance(spec, str):
        if spec not in FATE_NAMES:
            raise ValueError(f"fate: unknown name {spec!r}; known: {', '.join(FATE_NAMES)}")
        spec = {"status": spec}
    if not isinstance(spec, Mapping):
        raise ValueError(f"a fate is an object or a name, not {type(spec).__name__}")
    unknown = set(spec) - _FATE_KEYS
    if unknown:
        raise ValueError(f"fate: unknown keys {sorted(unknown)}; known: {', '.join(sorted(_FATE_KEYS))}")
    status = spec.get("status", STATUS_CONNECTED)
    if isinstance(status, str):
        status = FATE_NAMES.get(status, status)
    if (
        not isinstance(status, str)
        or status in _IN_PROGRESS
        or (status != STATUS_CONNECTED and not re.fullmatch(r"SIM-[A-Za-z]+", status))
    ):
        raise ValueError(
            f"fate: status must be {STATUS_CONNECTED!r} or a final SIM- word such as {STATUS_NO_ANSWER!r}, "
            f"{STATUS_BUSY!r} or {STATUS_FAILED!r}; not {status!r}"
        )
    ring_after = _seconds("ring_after", spec.get("ring_after", 0.0))
    settle_after: float | None = None
    if spec.get("settle_after", 0.0) is not None:
        settle_after = _seconds("settle_after", spec.get("settle_after", 0.0))
        if settle_after < ring_after:
            raise ValueError(f"fate: settle_after ({settle_after:g} s) comes before ring_after ({ring_after:g} s)")
    durations = {
        name: None if spec.get(name) is None else _count(name, spec.get(name))
        for name in ("duration_customer", "duration_company")
    }
    return _Fate(
        status=status,
        ring_after=ring_after,
        settle_after=settle_after,
        duration_customer=durations["duration_customer"],
        duration_company=durations["duration_company"],
        retry=_count("retry", spec.get("retry", 1)),
    )


def _number_key(number: str) -> str:
    digits = re.sub(r"\D", "", number)
    if not 6 <= len(digits) <= 15:
        raise ValueError(f"fate: number must be a phone number with its country code, not {number!r}")
    return digits


def _list_row(call: _Call, now: dt.datetime, rich: bool) -> dict[str, Any]:
    """One /calls/list row as the call's life stands at `now` (the simulator's clock): the documented
    fields, typed as the documentation's example (strings, enqueued a boolean); `rich` adds the
    customer's number."""
    payload = call.payload
    assert call.uuid is not None
    assert call.placed_at is not None
    assert call.fate is not None
    fate = call.fate
    elapsed = (now - call.placed_at).total_seconds()
    # Stable made-up durations, so a listing does not change between two reads of a settled call.
    digest = hashlib.sha256(call.uuid.encode()).digest()
    enqueued = False
    if elapsed < fate.ring_after:
        status, customer, company, enqueued = STATUS_QUEUED, 0, 0, True
    elif fate.settle_after is None or elapsed < fate.settle_after:
        # The agent's leg is up while the customer's phone rings.
        status, customer, company = STATUS_RINGING, 0, int(elapsed - fate.ring_after)
    elif fate.status == STATUS_CONNECTED:
        status = fate.status
        customer = fate.duration_customer if fate.duration_customer is not None else 25 + digest[0] % 200
        company = fate.duration_company if fate.duration_company is not None else customer + 10 + digest[1] % 30
    else:
        status = fate.status
        customer = fate.duration_customer if fate.duration_customer is not None else 0
        company = fate.duration_company if fate.duration_company is not None else 5 + digest[1] % 30
    row = {
        "uuid": call.uuid,
        "status": status,
        "call_number_company": COMPANY_NUMBER,
        "retry": str(fate.retry),
        "duration_company": str(company),
        "duration_customer": str(customer),
        "call_at": call.placed_at.astimezone(PLATFORM_TZ).strftime("%Y/%m/%d %H:%M:%S %z"),
        "enqueued": enqueued,
        "popup_uuid": payload["popup_uuid"],
    }
    if rich:
        row[RICH_ROW_FIELD] = payload["country_code"] + payload["areacode"] + payload["phonenumber"]
    return row


def _normalize_popup_uuid(value: str) -> str:
    if not _UUID_RE.fullmatch(value):
        raise ValueError(f"not a popup UUID: {value!r}")
    return value.lower()


def _check_loopback(host: str) -> str:
    """The address to bind; anything but IPv4 loopback is refused."""
    if host == "localhost":
        return "127.0.0.1"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"the simulator binds to a 127.x.x.x address only, not {host!r}") from None
    if address.version != 4 or not address.is_loopback:
        raise ValueError(f"the simulator binds to a 127.x.x.x address only, not {host!r}")
    return host


class _State:
    """Everything the handlers share; every access goes through the lock."""

    def __init__(self, tokens: Iterable[str], rich_rows: bool = False) -> None:
        self.lock = threading.Lock()
        self.default_rich_rows = rich_rows
        self.rich_rows = rich_rows
        self.stopping = threading.Event()
        self.default_tokens = frozenset(tokens)
        self.tokens = set(self.default_tokens)
        self.popups: dict[str, _Popup] = {}
        self.faults: collections.deque[_Fault] = collections.deque()
        self.fault_rate = 0.0
        self.fault_kinds: list[_Fault] = []
        self.rng = random.Random()  # noqa: S311 - picks faults, guards nothing
        self.calls: list[_Call] = []
        self.changed = threading.Condition(self.lock)
        self.clock_offset = 0.0
        self.default_fate = _Fate()
        self.fates: dict[str, _Fate] = {}  # by the number's digits, country code included
        self.fate_queues: dict[str, collections.deque[_Fate]] = {}  # by popup (lowercase): the next calls'
        self.list_down: _ListDown | None = None
        self.list_reads: dict[tuple[str | None, str], int] = {}  # (popup_uuid, date) -> reads

    def now(self) -> dt.datetime:
        """The simulator's clock: real time moved on by advance_clock(). Call with the lock held."""
        return dt.datetime.now(dt.UTC) + dt.timedelta(seconds=self.clock_offset)

    def reset(self) -> None:
        with self.lock:
            self.tokens = set(self.default_tokens)
            self.popups.clear()
            self.faults.clear()
            self.fault_rate = 0.0
            self.fault_kinds = []
            self.calls.clear()
            self.clock_offset = 0.0
            self.default_fate = _Fate()
            self.fates.clear()
            self.fate_queues.clear()
            self.rich_rows = self.default_rich_rows
            self.list_down = None
            self.list_reads.clear()
            self.changed.notify_all()

    def receive(self, payload: Any, raw: str | None) -> tuple[_Call, _Fault | None]:
        """Record an incoming place-call request and pick the fault it gets, if any."""
        with self.lock:
            fault: _Fault | None = None
            if self.faults:
                fault = self.faults.popleft()
            elif self.fault_rate > 0 and self.fault_kinds and self.rng.random() < self.fault_rate:
                fault = self.rng.choice(self.fault_kinds)
            call = _Call(
                seq=len(self.calls) + 1,
                received_at=self.now().astimezone(),
                payload=payload,
                raw=raw,
                fault=fault.kind if fault else None,
            )
            self.calls.append(call)
            self.changed.notify_all()
            return call, fault

    def settle(
        self,
        call: _Call,
        outcome: str,
        response: dict[str, Any] | None,
        error_code: int | None = None,
        uuid: str | None = None,
    ) -> None:
        with self.lock:
            call.outcome = outcome
            call.response = response
            call.error_code = error_code
            call.uuid = uuid
            if outcome == "placed":
                payload = call.payload
                digits = payload["country_code"] + payload["areacode"] + payload["phonenumber"]
                call.placed_at = self.now()
                queue = self.fate_queues.get(payload["popup_uuid"].lower())
                if queue:
                    call.fate = queue.popleft()
                else:
                    call.fate = self.fates.get(digits, self.default_fate)
            self.changed.notify_all()

    def judge(self, payload: Any) -> _Verdict:
        """The documented validation, in the order the documentation implies, then the call."""
        if not isinstance(payload, dict):
            return _Verdict("error", _error(6), 6)
        if any(not isinstance(payload.get(field), str) for field in _REQUIRED_FIELDS):
            return _Verdict("error", _error(6), 6)
        if "adicional" in payload:
            extra = payload["adicional"]
            if not isinstance(extra, dict) or any(isinstance(v, (dict, list)) for v in extra.values()):
                return _Verdict("error", _error(6), 6)
        token = payload.get("security_token")
        if token is None or token == "":
            return _Verdict("error", _error(7), 7)
        with self.lock:
            token_ok = isinstance(token, str) and token in self.tokens
        if not token_ok:
            return _Verdict("error", _error(8), 8)

        popup_uuid: str = payload["popup_uuid"]
        if not _UUID_RE.fullmatch(popup_uuid):
            return _Verdict("error", _error(4), 4)
        with self.lock:
            popup = copy.copy(self.popups.get(popup_uuid.lower(), _Popup()))
        if not popup.exists:
            return _Verdict("error", _error(4), 4)

        country_code: str = payload["country_code"]
        if (
            not _COUNTRY_CODE_RE.fullmatch(country_code)
            or phonenumbers.region_code_for_country_code(int(country_code)) == "ZZ"
        ):
            return _Verdict("error", _error(5), 5)

        areacode: str = payload["areacode"]
        number: str = payload["phonenumber"]
        if not _valid_number(country_code, areacode, number):
            return _Verdict("error", _error(1), 1)

        if not popup.in_service_hours:
            if popup.keep_pending:
                return _Verdict("pending", {"success": True, "pending": True})
            return _Verdict("error", _error(2), 2)

        call_uuid = uuid_module.uuid4().hex
        return _Verdict("placed", {"success": True, "uuid": call_uuid}, uuid=call_uuid)

    def listed(self, day: dt.date, popup_uuid: str | None) -> list[dict[str, Any]]:
        """Placed calls of that day (the platform's date), each as its life stands now."""
        with self.lock:
            now = self.now()
            placed = [c for c in self.calls if c.outcome == "placed"]
            rows: list[dict[str, Any]] = []
            for call in placed:
                assert call.placed_at is not None
                if call.placed_at.astimezone(PLATFORM_TZ).date() != day:
                    continue
                if popup_uuid is not None and call.payload["popup_uuid"].lower() != popup_uuid.lower():
                    continue
                rows.append(_list_row(call, now, self.rich_rows))
        return rows

    def today(self) -> dt.date:
        with self.lock:
            return self.now().astimezone(PLATFORM_TZ).date()

    def read_list(self, popup_uuid: str | None, date_text: str) -> str | None:
        """Count one /calls/list request; the fault it gets while the listing is down, else None."""
        with self.lock:
            key = (popup_uuid.lower() if popup_uuid else None, date_text)
            self.list_reads[key] = self.list_reads.get(key, 0) + 1
            down = self.list_down
            if down is not None and down.until is not None and self.now() >= down.until:
                self.list_down = down = None
            return down.kind if down else None

    def sleep(self, seconds: float) -> None:
        """Sleep that stop() cuts short, so a slow fault never holds a test run hostage."""
        if self.stopping.wait(seconds):
            raise _Stopped


def _valid_number(country_code: str, areacode: str, number: str) -> bool:
    # Digits only: the documented examples are bare digits, and a fake that tolerated "9 5631-1283"
    # would hide a client that forgot to normalize.
    if not _DIGITS_RE.fullmatch(areacode) or not number or not _DIGITS_RE.fullmatch(number):
        return False
    try:
        parsed = phonenumbers.parse("+" + country_code + areacode + number, None)
    except phonenumbers.NumberParseException:
        return False
    return parsed.country_code == int(country_code) and phonenumbers.is_valid_number(parsed)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's default backlog is 5: a burst of connections (two sweepers placing 8 calls each)
    # overflows it, and the kernel drops SYNs that a client's short connect timeout then reports as
    # FormCall unreachable. A real front end takes far more; so does the simulator.
    request_queue_size = 128
    state: _State
    quiet: bool
    connections: set[socket.socket]
    connections_lock: threading.Lock

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up (a function that timed out) is routine here, not a traceback.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.connections_lock:
            self.connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.connections_lock:
            self.connections.discard(request)
        super().shutdown_request(request)

    def drop_connections(self) -> None:
        """End idle keep-alive connections, whose handler threads would otherwise wait on them."""
        with self.connections_lock:
            connections = list(self.connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    server_version = "FormCallSimulator/1.0"
    # Idle keep-alive connections are dropped after this, so threads do not pile up.
    timeout = 30

    _note = ""
    _status = 0

    # ---- plumbing -------------------------------------------------------------------------

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes; without this, Nagle's algorithm and delayed
        # ACKs add 40 ms to every answer on a kept-alive connection.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    @property
    def state(self) -> _State:
        return self.server.state

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        self._status = int(code) if isinstance(code, int) or str(code).isdigit() else 0

    def log_message(self, format: str, *args: Any) -> None:
        if not self.server.quiet:
            sys.stderr.write(f"formcall-sim {self.address_string()} {format % args}\n")

    def _access_log(self) -> None:
        # Method, path and outcome only: the body carries the security token.
        self.log_message("%s %s %s %s", self.command, self.path, self._status or "-", self._note or "-")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            # Said out loud, so a client's pool does not send its next request into a closing socket.
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def _send_json(self, status: int, value: Any) -> None:
        self._send(status, json.dumps(value).encode(), "application/json")

    def _send_html(self, status: int, html: bytes) -> None:
        self._send(status, html, "text/html; charset=utf-8")

    def _read_body(self) -> bytes | None:
        """The request body; None after answering when it cannot be read."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BODY_BYTES:
            self.close_connection = True
            self._note = "unreadable body"
            self._send_html(400 if length < 0 else 413, b"<html><body><h1>Request refused</h1></body></html>\n")
            return None
        return self.rfile.read(length)

    def _read_chunked(self) -> bytes | None:
        body = b""
        while True:
            line = self.rfile.readline(1024)
            try:
                size = int(line.split(b";", 1)[0].strip() or b"x", 16)
            except ValueError:
                size = -1
            if size < 0 or len(body) + size > MAX_BODY_BYTES:
                self.close_connection = True
                self._note = "unreadable body"
                self._send_html(400, b"<html><body><h1>Bad Request</h1></body></html>\n")
                return None
            if size == 0:
                while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass
                return body
            body += self.rfile.read(size)
            self.rfile.readline(1024)

    def _reset(self) -> None:
        """Close with an RST and no answer."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.wfile.flush()
        # SO_LINGER 0 makes close() send RST instead of FIN. The socket is only really closed once
        # rfile (which holds a reference) is closed too, and before the server's own shutdown(SHUT_WR),
        # which would otherwise send a polite FIN first.
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.rfile.close()
        self.connection.close()

    def _not_found(self) -> None:
        self._note = "unknown path"
        self._send_html(404, b"<html><body><h1>Not Found</h1></body></html>\n")

    def _wrong_method(self) -> None:
        self._note = "wrong method"
        self._send_html(405, b"<html><body><h1>Method Not Allowed</h1></body></html>\n")

    def _route(self, method: str) -> None:
        self._note = ""
        self._status = 0
        path = urlsplit(self.path).path
        try:
            if path == API_PATH and method == "POST":
                self._place_call()
            elif path == LIST_PATH and method == "GET":
                self._list_calls()
            elif path in (API_PATH, LIST_PATH):
                self._wrong_method()
            elif path.startswith("/_sim/"):
                self._control(method, path)
            else:
                self._not_found()
        except _Stopped:
            self._note = "simulator stopping"
            self.close_connection = True
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up (a timeout, usually); its request was still handled.
            self.close_connection = True
        self._access_log()

    def do_GET(self) -> None:
        self._route("GET")

    def do_POST(self) -> None:
        self._route("POST")

    def do_PUT(self) -> None:
        self._route("PUT")

    def do_DELETE(self) -> None:
        self._route("DELETE")

    # ---- POST /calls/manage/api ----------------------------------------------------------------

    def _place_call(self) -> None:
        body = self._read_body()
        if body is None:
            return
        payload: Any = None
        raw: str | None = None
        if self.headers.get_content_type() == "application/json":
            try:
                payload = json.loads(body)
            except (ValueError, UnicodeDecodeError):
                raw = body.decode("utf-8", "replace")
        else:
            # Like a web framework that only parses JSON bodies sent as JSON: the fields are absent.
            raw = body.decode("utf-8", "replace")
        call, fault = self.state.receive(payload, raw)
        kind = fault.kind if fault else None
        self._note = f"#{call.seq}"

        if fault is None or kind in ("slow", "placed_then_reset", "malformed_json"):
            if fault is not None and kind == "slow":
                self.state.sleep(fault.seconds)
            verdict = self.state.judge(payload)
            self.state.settle(call, verdict.outcome, verdict.response, verdict.error_code, verdict.uuid)
            self._note += f" {verdict.outcome}" + (f" {verdict.error_code}" if verdict.error_code else "")
            if verdict.uuid:
                self._note += f" uuid={verdict.uuid}"
            if kind == "placed_then_reset":
                self._note += " then reset"
                self._reset()
            elif kind == "malformed_json":
                # The answer FormCall gave (the call is what the popup made of it), cut in its middle:
                # a proxy or a dropped packet, on an answer that is complete as far as HTTP can tell.
                data = json.dumps(verdict.response).encode()
                self._note += " then cut short"
                self._send(200, data[: len(data) // 2], "application/json")
            else:
                self._send_json(200, verdict.response)
            if kind:
                self._note += f" (fault {kind})"
            return

        assert fault is not None
        self._note += f" fault {kind}"
        if kind == "error":
            answer = _error(fault.code)
            self.state.settle(call, "error", answer, fault.code)
            self._send_json(200, answer)
        elif kind == "drip":
            # Bytes arrive often enough that a per-read timeout never fires: only a total deadline
            # on the client's side ends this early.
            answer = _error(fault.code)
            self.state.settle(call, "error", answer, fault.code)
            data = json.dumps(answer).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.flush()
            pause = fault.seconds / max(len(data) - 1, 1)
            for i in range(len(data)):
                if i:
                    self.state.sleep(pause)
                self.wfile.write(data[i : i + 1])
        else:
            self.state.settle(call, "fault", None)
            if kind == "reset":
                self._reset()
            elif kind == "reset_mid_answer":
                data = json.dumps(_error(3)).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data[: len(data) // 2])
                self.wfile.flush()
                self.state.sleep(MID_ANSWER_PAUSE_SECONDS)
                self._reset()
            elif kind == "http500_html":
                self._send_html(500, _HTML_500)
            elif kind == "html_200":
                self._send_html(200, _HTML_PORTAL)

    # ---- GET /calls/list ---------------------------------------------------------------------

    def _list_calls(self) -> None:
        query = parse_qs(urlsplit(self.path).query)
        date_text = query.get("date", [""])[-1]
        popup_uuid = query.get("popup_uuid", [""])[-1] or None
        down = self.state.read_list(popup_uuid, date_text or self.state.today().isoformat())
        if down is not None:
            # The whole front end is down: nothing is checked, whatever the request.
            self._note = f"listing down ({down})"
            self._list_fault(down)
            return
        token = self.headers.get("security-token")
        if not token:
            self._note = "error 7"
            self._send_json(200, _error(7))
            return
        with self.state.lock:
            token_ok = token in self.state.tokens
        if not token_ok:
            self._note = "error 8"
            self._send_json(200, _error(8))
            return
        if date_text:
            try:
                if not _DATE_RE.fullmatch(date_text):
                    raise ValueError(date_text)
                day = dt.date.fromisoformat(date_text)
            except ValueError:
                self._note = "error 6"
                self._send_json(200, _error(6))
                return
        else:
            day = self.state.today()
        rows = self.state.listed(day, popup_uuid)
        self._note = f"{len(rows)} calls"
        self._send_json(200, rows)

    def _list_fault(self, kind: str) -> None:
        if kind == "reset":
            self._reset()
        elif kind == "http500_html":
            self._send_html(500, _HTML_500)
        elif kind == "html_200":
            self._send_html(200, _HTML_PORTAL)
        else:
            self._send(200, b'[{"uuid": "a93460bbf8402e15b9b0af', "application/json")

    # ---- /_sim/... control -------------------------------------------------------------------

    def _control(self, method: str, path: str) -> None:
        action = path.removeprefix("/_sim/")
        methods = _CONTROLS.get(action)
        if methods is None:
            return self._not_found()
        if method not in methods:
            return self._wrong_method()
        sim = Simulator._for_state(self.state)
        if method == "GET":
            shown: Any = {
                "calls": sim.calls,
                "list_reads": sim.list_reads,
                "clock": sim.clock,
                "fates": sim.queued_fates,
                "rows": sim.rows,
            }[action]()
            self._note = action
            return self._send_json(200, shown)
        body = self._read_body()
        if body is None:
            return None
        try:
            value: Any = json.loads(body) if body.strip() else None
            self._apply_control(method, action, value)
        except (ValueError, TypeError, KeyError) as err:
            self._note = f"control {action} refused"
            return self._send_json(400, {"ok": False, "error": str(err)})
        self._note = f"control {method} {action}"
        return self._send_json(200, {"ok": True})

    def _apply_control(self, method: str, action: str, value: Any) -> None:
        sim = Simulator._for_state(self.state)
        if method == "DELETE":
            if action == "list_reads":
                sim.reset_list_reads()
            elif action == "fates":
                sim.clear_fate_queues()
            else:
                sim.clear_fates()
        elif action == "reset":
            sim.reset()
        elif action == "faults":
            faults = value if isinstance(value, list) else [value]
            sim.inject(*faults)
        elif action == "fault_rate":
            if not isinstance(value, dict):
                raise ValueError("fault_rate takes {rate, kinds, seed}")
            sim.set_fault_rate(value["rate"], value["kinds"], value.get("seed"))
        elif action == "popup":
            if not isinstance(value, dict) or not isinstance(value.get("uuid"), str):
                raise ValueError("popup takes {uuid, exists, in_service_hours, keep_pending}")
            flags = {
                k: value.get(k, d) for k, d in (("exists", True), ("in_service_hours", True), ("keep_pending", False))
            }
            if not all(isinstance(v, bool) for v in flags.values()):
                raise ValueError("exists, in_service_hours and keep_pending are booleans")
            sim.set_popup(value["uuid"], **flags)
        elif action == "tokens":
            if not isinstance(value, list) or not all(isinstance(t, str) and t for t in value):
                raise ValueError("tokens takes a list of non-empty strings")
            sim.set_tokens(*value)
        elif action == "fate":
            fate = dict(value) if isinstance(value, dict) else {}
            if not isinstance(value, dict) and value is not None:
                raise ValueError("fate takes {number or uuid (neither: the default), status, ring_after, ...}")
            sim.set_fate(fate.pop("number", None), uuid=fate.pop("uuid", None), **fate)
        elif action == "list_down":
            down = value if isinstance(value, dict) else {}
            if not isinstance(value, dict) and value is not None:
                raise ValueError("list_down takes {kind, seconds}")
            unknown = set(down) - {"kind", "seconds"}
            if unknown:
                raise ValueError(f"list_down takes kind and seconds, not {sorted(unknown)}")
            sim.set_list_down(down.get("kind", "http500_html"), down.get("seconds"))
        elif action == "list_up":
            sim.set_list_up()
        elif action == "fates":
            if (
                not isinstance(value, dict)
                or set(value) != {"popup_uuid", "fates"}
                or not isinstance(value["fates"], list)
            ):
                raise ValueError(
                    'fates takes {"popup_uuid": U, "fates": ["not_answered", {"status": "connected", ...}]}'
                )
            sim.queue_fates(value["popup_uuid"], *value["fates"])
        elif action == "rows":
            if not isinstance(value, dict) or set(value) != {"rich"} or not isinstance(value["rich"], bool):
                raise ValueError('rows takes {"rich": true|false}')
            sim.set_rich_rows(value["rich"])
        elif action == "clock":
            if not isinstance(value, dict) or set(value) != {"advance"}:
                raise ValueError('clock takes {"advance": SECONDS}')
            sim.advance_clock(value["advance"])


# The /_sim/ control endpoints and the methods each takes.
_CONTROLS: dict[str, frozenset[str]] = {
    "calls": frozenset({"GET"}),
    "list_reads": frozenset({"GET", "DELETE"}),
    "clock": frozenset({"GET", "POST"}),
    "fate": frozenset({"POST", "DELETE"}),
    "fates": frozenset({"GET", "POST", "DELETE"}),
    "rows": frozenset({"GET", "POST"}),
    **{action: frozenset({"POST"}) for action in ("reset", "faults", "fault_rate", "popup", "tokens")},
    **{action: frozenset({"POST"}) for action in ("list_down", "list_up")},
}


class Simulator:
    """The FormCall API on 127.0.0.1, with state that tests can read and faults they can inject."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        tokens: Iterable[str] = ("dev-token",),
        *,
        quiet: bool = False,
        rich_rows: bool = False,
    ) -> None:
        """`rich_rows`: /calls/list rows also name the customer's number (not documented; off by
        default, and what reset() goes back to)."""
        self.host = _check_loopback(host)
        self.port = port
        self.quiet = quiet
        self._state = _State(tokens, rich_rows)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @classmethod
    def _for_state(cls, state: _State) -> Simulator:
        """A handle on existing state, so the HTTP control endpoints reuse the Python API's checks."""
        sim = cls.__new__(cls)
        sim._state = state
        return sim

    # ---- lifecycle -------------------------------------------------------------------------

    def start(self) -> Simulator:
        """Listen and serve from a daemon thread."""
        if self._server is not None:
            raise RuntimeError("simulator already started")
        server = _Server((self.host, self.port), _Handler)
        server.state = self._state
        server.quiet = self.quiet
        server.connections = set()
        server.connections_lock = threading.Lock()
        self._state.stopping.clear()
        self._server = server
        self.port = server.server_address[1]
        # A short poll, so stop() (shutdown waits one poll) takes milliseconds, not half a second.
        self._thread = threading.Thread(
            target=server.serve_forever, args=(0.05,), name="formcall-simulator", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening, wake sleeping faults and drop open connections."""
        server, self._server = self._server, None
        if server is None:
            return
        self._state.stopping.set()
        server.shutdown()
        server.server_close()
        server.drop_connections()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def __enter__(self) -> Simulator:
        return self.start() if self._server is None else self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """Base URL, e.g. http://127.0.0.1:8081."""
        if self._server is None:
            raise RuntimeError("simulator not started")
        return f"http://{self.host}:{self.port}"

    @property
    def api_url(self) -> str:
        """The place-call endpoint, what FORMCALL_API_URL should be set to."""
        return self.url + API_PATH

    @property
    def list_url(self) -> str:
        return self.url + LIST_PATH

    # ---- what was received -------------------------------------------------------------------

    def calls(self) -> list[dict[str, Any]]:
        """Every place-call request received, in order (copies).

        Keys: seq, received_at, payload (the parsed JSON as sent, token included; None if the body was
        not JSON), raw (the body text when it was not JSON, else None), fault (kind or None), outcome
        ("placed", "pending", "error", "fault" for a fault that answered nothing usable, or None while
        still being handled), error_code, uuid (when placed), response (the JSON answer, even if a
        fault then lost it).
        """
        with self._state.lock:
            return [c.as_dict() for c in self._state.calls]

    def placed(self) -> list[dict[str, Any]]:
        """Only the requests that placed a call (including placed_then_reset ones)."""
        return [c for c in self.calls() if c["outcome"] == "placed"]

    def wait_for_calls(self, count: int, timeout: float = 30.0) -> list[dict[str, Any]]:
        """Wait until `count` requests were received and handled (slow faults finish late). It returns
        as soon as they are; the deadline is generous for a loaded machine."""

        def done() -> bool:
            calls = self._state.calls
            return len(calls) >= count and all(c.outcome is not None for c in calls[:count])

        with self._state.changed:
            if not self._state.changed.wait_for(done, timeout):
                raise TimeoutError(f"fewer than {count} handled place-call requests after {timeout} s")
        return self.calls()

    # ---- configuration -------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget calls, faults, fault rate, popup settings, fates and their queues, list faults and
        reads; restore the initial tokens, the initial row shape and the real clock."""
        self._state.reset()

    def set_tokens(self, *tokens: str) -> None:
        """Replace the accepted security tokens (e.g. to simulate a rotated token)."""
        with self._state.lock:
            self._state.tokens = set(tokens)

    def set_popup(
        self, uuid: str, *, exists: bool = True, in_service_hours: bool = True, keep_pending: bool = False
    ) -> None:
        """Configure one popup; any other well-formed UUID is an existing popup within service hours."""
        key = _normalize_popup_uuid(uuid)
        with self._state.lock:
            self._state.popups[key] = _Popup(exists, in_service_hours, keep_pending)

    def inject(self, *faults: Mapping[str, Any]) -> None:
        """Queue faults; each incoming place-call request takes the next one (first in, first out)."""
        parsed = [_parse_fault(f) for f in faults]
        with self._state.lock:
            self._state.faults.extend(parsed)

    def set_fault_rate(self, rate: float, kinds: Sequence[str | Mapping[str, Any]], seed: int | None = None) -> None:
        """Give each request (not taken by the inject queue) a random fault from `kinds` with
        probability `rate`; kinds are fault dicts or bare kind names (slow/drip last 2 s, error is 3)."""
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate <= 1:
            raise ValueError(f"rate must be between 0 and 1, not {rate!r}")
        if isinstance(kinds, (str, Mapping)):
            kinds = [kinds]
        parsed = [_parse_fault(k) for k in kinds]
        if rate > 0 and not parsed:
            raise ValueError("a fault rate needs at least one fault kind")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ValueError(f"seed must be an integer, not {seed!r}")
        with self._state.lock:
            self._state.fault_rate = float(rate)
            self._state.fault_kinds = parsed
            self._state.rng = random.Random(seed)  # noqa: S311 - seeded on purpose, for replayable soaks

    # ---- /calls/list: call lives, the listing's faults, the clock -----------------------------------

    def set_fate(
        self,
        number: str | None = None,
        *,
        uuid: str | None = None,
        status: str = STATUS_CONNECTED,
        ring_after: float = 0.0,
        settle_after: float | None = 0.0,
        duration_customer: int | None = None,
        duration_company: int | None = None,
        retry: int = 1,
    ) -> None:
        """How calls placed from now on live in /calls/list: queued (SIM-EnCola, enqueued) until
        `ring_after` s after placement, then ringing (SIM-Sonando), then `status` from `settle_after` s
        (None: rings forever). For calls to `number` (digits with the country code, e.g. "56961234567"),
        for the placed call `uuid` (delays from its placement), or by default when neither is given.
        Durations left None are made up: a Conectada customer leg of 25 s or more, 0 otherwise."""
        fate = _parse_fate(
            {
                "status": status,
                "ring_after": ring_after,
                "settle_after": settle_after,
                "duration_customer": duration_customer,
                "duration_company": duration_company,
                "retry": retry,
            }
        )
        if number is not None and uuid is not None:
            raise ValueError("fate: give a number or a uuid, not both")
        if uuid is not None:
            if not isinstance(uuid, str):
                raise ValueError(f"fate: uuid must be a string, not {uuid!r}")
            with self._state.lock:
                matches = [c for c in self._state.calls if c.outcome == "placed" and c.uuid == uuid.lower()]
                if not matches:
                    raise ValueError(f"fate: no placed call has uuid {uuid!r}")
                matches[0].fate = fate
            return
        if number is not None and not isinstance(number, str):
            raise ValueError(f"fate: number must be a string of digits, not {number!r}")
        key = None if number is None else _number_key(number)
        with self._state.lock:
            if key is None:
                self._state.default_fate = fate
            else:
                self._state.fates[key] = fate

    def clear_fates(self) -> None:
        """Back to the default life for new calls: Conectada at once, a customer leg of 25 s or more
        (the popups' queued fates go too)."""
        with self._state.lock:
            self._state.default_fate = _Fate()
            self._state.fates.clear()
            self._state.fate_queues.clear()

    def queue_fates(self, popup_uuid: str, *fates: Mapping[str, Any] | str) -> None:
        """The fates the next calls placed on this popup meet, one each, in order; they come before
        set_fate's per-number and default fates, which apply again once the queue is used up. A fate is
        a name ("connected", "not_answered", "busy", "failed") or a dict as set_fate takes it, e.g.
        {"status": "connected", "duration_customer": 95}."""
        if not isinstance(popup_uuid, str):
            raise ValueError(f"fates: popup_uuid must be a string, not {popup_uuid!r}")
        key = _normalize_popup_uuid(popup_uuid)
        parsed = [_parse_fate(f) for f in fates]
        with self._state.lock:
            self._state.fate_queues.setdefault(key, collections.deque()).extend(parsed)

    def queued_fates(self) -> dict[str, list[dict[str, Any]]]:
        """The fates still queued, per popup (lowercase), next first."""
        with self._state.lock:
            return {
                popup: [dataclasses.asdict(f) for f in queue]
                for popup, queue in self._state.fate_queues.items()
                if queue
            }

    def clear_fate_queues(self) -> None:
        with self._state.lock:
            self._state.fate_queues.clear()

    def set_rich_rows(self, on: bool = True) -> None:
        """/calls/list rows also name the customer's number (call_number_customer), which the
        documented rows do not; reset() goes back to the shape the simulator was made with."""
        if not isinstance(on, bool):
            raise ValueError(f"rows: rich must be true or false, not {on!r}")
        with self._state.lock:
            self._state.rich_rows = on

    def rich_rows(self) -> bool:
        with self._state.lock:
            return self._state.rich_rows

    def rows(self) -> dict[str, bool]:
        """{"rich": whether /calls/list rows name the customer's number}."""
        return {"rich": self.rich_rows()}

    def set_list_down(self, kind: str = "http500_html", seconds: float | None = None) -> None:
        """Make every /calls/list request fail with `kind` (http500_html, reset, html_200 or
        malformed_json) for `seconds` on the simulator's clock, or until set_list_up(). Placing calls
        is not affected; its faults are set apart with inject()."""
        if kind not in LIST_FAULT_KINDS:
            raise ValueError(f"list_down: unknown kind {kind!r}; known: {', '.join(sorted(LIST_FAULT_KINDS))}")
        if seconds is not None and (
            isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 < seconds <= 366 * 86400
        ):
            raise ValueError(f"list_down: seconds must be a positive number up to a year, or None; not {seconds!r}")
        with self._state.lock:
            until = None if seconds is None else self._state.now() + dt.timedelta(seconds=seconds)
            self._state.list_down = _ListDown(kind, until)

    def set_list_up(self) -> None:
        """/calls/list answers again."""
        with self._state.lock:
            self._state.list_down = None

    def advance_clock(self, seconds: float) -> None:
        """Move the simulator's clock on: call lives, call_at, the list's dates and set_list_down's
        periods follow it, so tests need not sleep. reset() puts it back to real time."""
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 <= seconds <= 3650 * 86400:
            raise ValueError(f"clock: advance must be a number of seconds from 0 to ten years, not {seconds!r}")
        with self._state.lock:
            self._state.clock_offset += float(seconds)

    def now(self) -> dt.datetime:
        """The simulator's time, in the platform's time zone (America/Santiago)."""
        with self._state.lock:
            return self._state.now().astimezone(PLATFORM_TZ)

    def today(self) -> dt.date:
        """The platform's date now: what /calls/list lists without a date."""
        return self._state.today()

    def clock(self) -> dict[str, Any]:
        """{"offset": seconds advanced, "now": the simulator's time as ISO 8601}."""
        with self._state.lock:
            offset = self._state.clock_offset
        return {"offset": offset, "now": self.now().isoformat(timespec="seconds")}

    def list_reads(self) -> list[dict[str, Any]]:
        """/calls/list requests since the last reset: [{"popup_uuid", "date", "count"}] per popup
        (lowercase; None when not given) and date (the platform's today when not given), first read
        first. Every request counts, the refused and failed ones too."""
        with self._state.lock:
            return [
                {"popup_uuid": popup, "date": day, "count": count}
                for (popup, day), count in self._state.list_reads.items()
            ]

    def reset_list_reads(self) -> None:
        with self._state.lock:
            self._state.list_reads.clear()


def main(argv: Sequence[str] | None = None) -> int:
    """Serve until Ctrl-C (or SIGTERM)."""
    parser = argparse.ArgumentParser(
        prog="python -m formcall_webhook.simulator", description="Serve a local fake of the FormCall API."
    )
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8081, help="port (default 8081; 0 picks a free one)")
    parser.add_argument(
        "--token",
        action="append",
        dest="tokens",
        metavar="TOKEN",
        help="accepted security token, repeatable (default: dev-token)",
    )
    parser.add_argument("--quiet", action="store_true", help="no access log on stderr")
    parser.add_argument(
        "--rich-rows",
        action="store_true",
        default=os.environ.get(RICH_ROWS_ENV, "").strip().lower() in ("1", "true", "yes"),
        help=f"/calls/list rows also name the customer's number, which documented rows do not (or {RICH_ROWS_ENV}=1)",
    )
    args = parser.parse_args(argv)
    tokens: list[str] = args.tokens or ["dev-token"]
    try:
        sim = Simulator(args.host, args.port, tokens, quiet=args.quiet, rich_rows=args.rich_rows).start()
    except (ValueError, OSError) as err:
        print(f"formcall-sim: cannot listen on {args.host}:{args.port}: {err}", file=sys.stderr)
        return 1

    def stop_on_term(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    # Ctrl-C stops it even when started in the background by a shell, which leaves SIGINT ignored.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, stop_on_term)
    rows = "rich rows (with the customer's number)" if args.rich_rows else "documented rows"
    print(
        f"FormCall simulator listening on {sim.api_url} ({len(tokens)} token(s) accepted, {rows}; Ctrl-C stops)",
        flush=True,
    )
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
