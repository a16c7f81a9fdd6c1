"""A loopback HubSpot CRM: the contact, search, note and association endpoints as HubSpot documents them."""

from __future__ import annotations

import itertools
import json
import re
import threading
from dataclasses import dataclass, field
from typing import Any

from tests.fakes.loopback import LoopbackHTTP, QuietHandler

CONTACT_PATH = re.compile(r"^/crm/v3/objects/contacts/([^/?]+)$")
ASSOCIATION_PATH = re.compile(r"^/crm/v4/objects/(notes?|0-46)/([^/]+)/associations/(contacts?|0-1)/([^/?]+)$")
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

    `fail_next(n, status, headers, path=...)` answers the next n requests (whose path holds `path`, when
    given) with that status (429 with Retry-After, 500...) without acting on them; `lose_next(n, path=...)`
    acts on them but resets the connection instead of answering, as a lost answer does.
    """

    def __init__(self, token: str, *, readonly_tokens: tuple[str, ...] = ()) -> None:
        self.token = token
        self.readonly_tokens = readonly_tokens
        self.contacts: dict[str, Contact] = {}
        self.defined_properties = {"email", "firstname", "lastname", "phone", "formcall_call_status"}
        self.notes: dict[str, dict[str, str]] = {}
        self.associations: list[tuple[str, str, int]] = []  # (note id, contact id, type id)
        self.calls: list[Call] = []
        self.lock = threading.Lock()
        # (path fragment or None, status or None to act and lose the answer, headers)
        self._faults: list[tuple[str | None, int | None, dict[str, str]]] = []
        self._ids = itertools.count(51_000_000_001)
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
        self, count: int, status: int = 429, headers: dict[str, str] | None = None, path: str | None = None
    ) -> None:
        with self.lock:
            self._faults.extend([(path, status, dict(headers or {}))] * count)

    def lose_next(self, count: int = 1, path: str | None = None) -> None:
        with self.lock:
            self._faults.extend([(path, None, {})] * count)

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
                _, fault_status, headers = fault
                if fault_status is not None:
                    return fault_status, headers, _failure_body(fault_status), False
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
        path = call.path.split("?", 1)[0]
        read_only = token != self.token
        if call.method == "POST" and path == "/crm/v3/objects/contacts/search":
            return self._search(call.body)
        if read_only:
            return 403, _error("MISSING_SCOPES", "This app hasn't been granted all required scopes to make this call.")
        match = CONTACT_PATH.match(path)
        if call.method == "PATCH" and match:
            return self._update_contact(match.group(1), call.body)
        if call.method == "POST" and path == "/crm/v3/objects/notes":
            return self._create_note(call.body)
        match = ASSOCIATION_PATH.match(path)
        if call.method == "PUT" and match:
            return self._associate(match.group(2), match.group(4), call.body)
        return 404, _error("OBJECT_NOT_FOUND", "Not found.")

    def _search(self, body: Any) -> tuple[int, Any]:
        if not isinstance(body, dict) or not isinstance(body.get("filterGroups"), list):
            return 400, _error("VALIDATION_ERROR", "Invalid input JSON")
        found: list[Contact] = []
        for group in body["filterGroups"]:
            filters = group.get("filters") if isinstance(group, dict) else None
            if not isinstance(filters, list) or not filters:
                return 400, _error("VALIDATION_ERROR", "Invalid input JSON")
            for contact in self.contacts.values():
                if all(_matches(contact, f) for f in filters) and contact not in found:
                    found.append(contact)
        limit = body.get("limit", 10)
        results = [
            {
                "id": c.id,
                "properties": {"email": c.email, "hs_object_id": c.id, "createdate": NOW},
                "createdAt": NOW,
                "updatedAt": NOW,
                "archived": False,
            }
            for c in found[: int(limit)]
        ]
        return 200, {"total": len(found), "results": results}

    def _update_contact(self, contact_id: str, body: Any) -> tuple[int, Any]:
        contact = self.contacts.get(contact_id)
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
        return 200, {"id": contact_id, "properties": contact.properties, "createdAt": NOW, "updatedAt": NOW}

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


def _matches(contact: Contact, spec: Any) -> bool:
    if not isinstance(spec, dict) or spec.get("operator") != "EQ":
        return False
    value = spec.get("value")
    actual = contact.properties.get(str(spec.get("propertyName")))
    # HubSpot compares email values without regard to case.
    return isinstance(value, str) and actual is not None and actual.lower() == value.lower()


def _error(category: str, message: str) -> dict[str, Any]:
    return {"status": "error", "message": message, "correlationId": "0b8c5e5d-fake", "category": category}


def _failure_body(status: int) -> dict[str, Any]:
    if status == 429:
        return {
            "status": "error",
            "message": "You have reached your secondly limit.",
            "errorType": "RATE_LIMIT",
            "correlationId": "0b8c5e5d-fake",
            "policyName": "SECONDLY",
        }
    return _error("INTERNAL_ERROR", f"HTTP {status}")
