"""A loopback HubSpot CRM: the contact, note, association and account endpoints of HubSpot's date-based
API (2026-09), as HubSpot documents them. The numbered versions (/crm/v3, /crm/v4), which HubSpot retires
in 2027, are refused with 404, as HubSpot answers a retired API ("After that date, v1 Lists endpoints
will return HTTP 404", developers.hubspot.com/changelog), so a client still on them fails here first."""

from __future__ import annotations

import itertools
import json
import re
import threading
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote

from tests.fakes.loopback import LoopbackHTTP, QuietHandler

VERSION = "2026-09"
OBJECTS = f"/crm/objects/{VERSION}"
CONTACT_PATH = re.compile(rf"^{OBJECTS}/(?:contacts|0-1)/([^/?]+)$")
NOTES_PATH = re.compile(rf"^{OBJECTS}/(?:notes|0-46)$")
ASSOCIATION_PATH = re.compile(rf"^{OBJECTS}/(notes|0-46)/([^/]+)/associations/(contacts|0-1)/([^/?]+)$")
RETIRED = re.compile(r"^/crm/v[1-4]/")
# Returned on every read, whatever `properties` asks for.
DEFAULT_PROPERTIES = ("hs_object_id", "createdate", "lastmodifieddate", "email", "firstname", "lastname")
NOTE_TO_CONTACT = 202
NOW = "2026-12-01T12:00:00.000Z"


@dataclass
class Call:
    """One request as received: method, path (with query), headers (lower-case), JSON body (or None)."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    status: int = 0


@dataclass
class Contact:
    id: str
    email: str | None
    properties: dict[str, str] = field(default_factory=dict)


class _Handler(QuietHandler):
    server: Any

    def _handle(self) -> None:
        fake: FakeHubSpot = self.server.fake
        raw = self.read_body()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        call = Call(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
        fake.wait_if_held(call)
        status, headers, answer, lose = fake.dispatch(call)
        call.status = status
        if lose:
            # Acted on, then the connection reset: the client sees no answer at all.
            self.reset()
            return
        self.send_json(status, answer, headers, content_type="application/json;charset=utf-8")

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _handle


class FakeHubSpot(LoopbackHTTP):
    """Contacts, notes and note-to-contact associations, behind a bearer token.

    `fail_next(n, status, headers, path=..., policy=...)` answers the next n requests (whose path holds
    `path`, when given) with that status (429 with Retry-After, 500...) without acting on them; a 429's
    body names `policy` ("SECONDLY", or "DAILY" for the daily limit); `lose_next(n, path=...)` acts on
    them but resets the connection instead of answering, as a lost answer does.
    `time_zone` is the account's, as GET /account-info/2026-09/details gives it.
    """

    def __init__(
        self, token: str, *, readonly_tokens: tuple[str, ...] = (), time_zone: str = "America/Santiago"
    ) -> None:
        self.token = token
        self.time_zone = time_zone
        self.readonly_tokens = readonly_tokens
        self.contacts: dict[str, Contact] = {}
        self.defined_properties = {"email", "firstname", "lastname", "phone", "mobilephone", "formcall_call_status"}
        self.notes: dict[str, dict[str, str]] = {}
        self.associations: list[tuple[str, str, int]] = []  # (note id, contact id, type id)
        self.calls: list[Call] = []
        self.lock = threading.Lock()
        # (path fragment or None, status or None to act and lose the answer, headers, 429 policy)
        self._faults: list[tuple[str | None, int | None, dict[str, str], str]] = []
        self._ids = itertools.count(51_000_000_001)
        # (method, path fragment or None, arrived, release): a slow HubSpot, one request at a time.
        self._holds: list[tuple[str, str | None, threading.Event, threading.Event]] = []
        super().__init__(_Handler)

    # ---- set up and inspect --------------------------------------------------------------------

    def add_contact(self, email: str | None = None, **properties: str) -> str:
        with self.lock:
            contact_id = str(next(self._ids))
            props = {**properties, "hs_object_id": contact_id}
            if email:
                props["email"] = email
            self.contacts[contact_id] = Contact(contact_id, email, props)
            return contact_id

    def fail_next(
        self,
        count: int,
        status: int = 429,
        headers: dict[str, str] | None = None,
        path: str | None = None,
        policy: str = "SECONDLY",
    ) -> None:
        with self.lock:
            self._faults.extend([(path, status, dict(headers or {}), policy)] * count)

    def hold_next(self, method: str, path: str | None = None) -> tuple[threading.Event, threading.Event]:
        """The next `method` request (whose path holds `path`, when given) waits, before HubSpot acts on
        it, until the test sets the second event (30 s at most); the first is set when it arrives."""
        arrived, release = threading.Event(), threading.Event()
        with self.lock:
            self._holds.append((method, path, arrived, release))
        return arrived, release

    def wait_if_held(self, call: Call) -> None:
        with self.lock:
            hold = next((h for h in self._holds if h[0] == call.method and (h[1] is None or h[1] in call.path)), None)
            if hold is not None:
                self._holds.remove(hold)
        if hold is not None:
            hold[2].set()
            hold[3].wait(30)

    def lose_next(self, count: int = 1, path: str | None = None) -> None:
        with self.lock:
            self._faults.extend([(path, None, {}, "")] * count)

    def notes_of(self, contact_id: str) -> list[dict[str, str]]:
        """The notes on a contact's timeline: those associated with it."""
        with self.lock:
            return [self.notes[n] for n, c, _ in self.associations if c == contact_id]

    @property
    def url(self) -> str:
        return self.base_url

    # ---- the API ---------------------------------------------------------------------------------

    def dispatch(self, call: Call) -> tuple[int, dict[str, str], Any, bool]:
        with self.lock:
            self.calls.append(call)
            fault = next((f for f in self._faults if f[0] is None or f[0] in call.path), None)
            if fault is not None:
                self._faults.remove(fault)
                _, fault_status, headers, policy = fault
                if fault_status is not None:
                    return fault_status, headers, _failure_body(fault_status, policy), False
            status, answer = self._route(call)
            return status, {}, answer, fault is not None

    def _route(self, call: Call) -> tuple[int, Any]:
        auth = call.headers.get("authorization", "")
        token = auth[7:] if auth.startswith("Bearer ") else None
        if token is None or token not in (self.token, *self.readonly_tokens):
            return 401, _error(
                "INVALID_AUTHENTICATION",
                "Authentication credentials not found. This API supports OAuth 2.0 authentication.",
            )
        path, _, query_string = call.path.partition("?")
        query = parse_qs(query_string)
        if RETIRED.match(path):
            return 404, _error("NOT_FOUND", "This API version is no longer supported; use the date-based version.")
        read_only = token != self.token
        match = CONTACT_PATH.match(path)
        if call.method == "GET" and match:
            return self._read_contact(unquote(match.group(1)), query)
        if call.method == "GET" and path == f"/account-info/{VERSION}/details":
            return 200, self._details()
        if read_only:
            return 403, _error("MISSING_SCOPES", "This app hasn't been granted all required scopes to make this call.")
        if call.method == "PATCH" and match:
            return self._update_contact(unquote(match.group(1)), query, call.body)
        if call.method == "POST" and NOTES_PATH.match(path):
            return self._create_note(call.body)
        match = ASSOCIATION_PATH.match(path)
        if call.method == "PUT" and match:
            return self._associate(match.group(2), match.group(4), call.body)
        return 404, _error("OBJECT_NOT_FOUND", "Not found.")

    def _contact(self, key: str, query: dict[str, list[str]]) -> Contact | None:
        """By id, or by a unique property named by `idProperty` (only email is unique on contacts here)."""
        id_property = (query.get("idProperty") or [None])[0]
        if id_property is None:
            return self.contacts.get(key)
        if id_property != "email":
            return None
        # HubSpot compares email values without regard to case.
        return next((c for c in self.contacts.values() if c.email and c.email.lower() == key.lower()), None)

    def _read_contact(self, key: str, query: dict[str, list[str]]) -> tuple[int, Any]:
        contact = self._contact(key, query)
        if contact is None:
            return 404, _error("OBJECT_NOT_FOUND", "resource not found")
        wanted = {p for value in query.get("properties", []) for p in value.split(",") if p}
        shown = {k: v for k, v in contact.properties.items() if k in wanted or k in DEFAULT_PROPERTIES}
        shown.update({name: None for name in wanted if name not in shown})
        return 200, {"id": contact.id, "properties": shown, "createdAt": NOW, "updatedAt": NOW, "archived": False}

    def _details(self) -> dict[str, Any]:
        return {
            "portalId": 62515,
            "accountType": "STANDARD",
            "timeZone": self.time_zone,
            "companyCurrency": "CLP",
            "additionalCurrencies": [],
            "utcOffset": "-03:00",
            "utcOffsetMilliseconds": -10_800_000,
            "uiDomain": "app.hubspot.com",
            "dataHostingLocation": "na1",
        }

    def _update_contact(self, key: str, query: dict[str, list[str]], body: Any) -> tuple[int, Any]:
        contact = self._contact(key, query)
        if contact is None:
            return 404, _error("OBJECT_NOT_FOUND", "resource not found")
        properties = body.get("properties") if isinstance(body, dict) else None
        if not isinstance(properties, dict):
            return 400, _error("VALIDATION_ERROR", "Invalid input JSON")
        unknown = [name for name in properties if name not in self.defined_properties]
        if unknown:
            return 400, _error(
                "VALIDATION_ERROR",
                f'Property values were not valid: [{{"isValid":false,"message":"Property \\"{unknown[0]}\\" does '
                f'not exist","error":"PROPERTY_DOESNT_EXIST","name":"{unknown[0]}"}}]',
            )
        contact.properties.update({k: str(v) for k, v in properties.items()})
        return 200, {"id": contact.id, "properties": contact.properties, "createdAt": NOW, "updatedAt": NOW}

    def _create_note(self, body: Any) -> tuple[int, Any]:
        properties = body.get("properties") if isinstance(body, dict) else None
        if not isinstance(properties, dict) or not properties.get("hs_timestamp"):
            return 400, _error("VALIDATION_ERROR", "hs_timestamp is required")
        note_id = str(next(self._ids))
        self.notes[note_id] = {k: str(v) for k, v in properties.items()}
        return 201, {"id": note_id, "properties": self.notes[note_id], "createdAt": NOW, "archived": False}

    def _associate(self, note_id: str, contact_id: str, body: Any) -> tuple[int, Any]:
        if note_id not in self.notes or contact_id not in self.contacts:
            return 404, _error("OBJECT_NOT_FOUND", "resource not found")
        if not isinstance(body, list) or not body:
            return 400, _error("VALIDATION_ERROR", "Invalid input JSON")
        for spec in body:
            if not isinstance(spec, dict) or spec.get("associationCategory") != "HUBSPOT_DEFINED":
                return 400, _error("VALIDATION_ERROR", "Invalid association category")
            if spec.get("associationTypeId") != NOTE_TO_CONTACT:
                return 400, _error("VALIDATION_ERROR", f"{spec.get('associationTypeId')} is not a note to contact type")
        if (note_id, contact_id, NOTE_TO_CONTACT) not in self.associations:
            self.associations.append((note_id, contact_id, NOTE_TO_CONTACT))
        return 200, {
            "fromObjectTypeId": "0-46",
            "fromObjectId": int(note_id),
            "toObjectTypeId": "0-1",
            "toObjectId": int(contact_id),
            "labels": [],
        }


def _error(category: str, message: str) -> dict[str, Any]:
    return {"status": "error", "message": message, "correlationId": "0b8c5e5d-fake", "category": category}


def _failure_body(status: int, policy: str) -> dict[str, Any]:
    if status == 429:
        # HubSpot's documented 429: "The message and policyName will indicate which limit you hit".
        return {
            "status": "error",
            "message": f"You have reached your {policy.lower()} limit.",
            "errorType": "RATE_LIMIT",
            "correlationId": "0b8c5e5d-fake",
            "policyName": policy,
            "requestId": "3d3e35b7-fake",
        }
    return _error("INTERNAL_ERROR", f"HTTP {status}")
