"""A call's outcome on its HubSpot contact: a property set and a note on the timeline (spec section 9).

Pure request builders and answer parsers first; `HubSpotClient` runs them over the shared transport.
Endpoints, as HubSpot documents them (CRM API v3, associations v4):
  PATCH /crm/v3/objects/contacts/{id}           {"properties": {...}}
  POST  /crm/v3/objects/contacts/search         {"filterGroups": [{"filters": [email EQ ...]}]}
  POST  /crm/v3/objects/notes                   {"properties": {"hs_timestamp", "hs_note_body"}}
  PUT   /crm/v4/objects/notes/{id}/associations/contacts/{id}   [HUBSPOT_DEFINED 202, note to contact]
The note is created first and attached second: when a create's answer is lost, the retry's note is the
one attached, and the lost one stays off every timeline instead of showing twice.
"""

from __future__ import annotations

import html
import json
import re
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote

import urllib3

from .http import Answer, TransportError, send
from .outgoing import retry_after

API_URL = "https://api.hubapi.com"
NOTE_TO_CONTACT = 202  # HubSpot-defined association type: note to contact
# HubSpot's 429 carries Retry-After; when a proxy drops it, its limits reset within seconds.
DEFAULT_RETRY_AFTER = 10
# Progress steps, for the caller to keep between attempts (see write_outcome).
PROPERTY = "property"
NOTE = "note"
ASSOCIATION = "association"
_ID = re.compile(r"^[0-9]{1,20}$")
_EMAIL_MAX = 254
_NOTE_MAX = 65_536  # hs_note_body's documented limit
_MESSAGE_MAX = 200

Kind = Literal["delivered", "retry", "final", "not_found"]


@dataclass(frozen=True)
class Request:
    """One CRM API request, built without I/O: method, path under the API URL, JSON body."""

    method: str
    path: str
    body: bytes | None


@dataclass(frozen=True)
class HubSpotResult:
    """What happened, the contact written to (keep it for the next attempt), the note and the steps done."""

    kind: Kind
    retry_after: int | None
    reason: str
    contact_id: str | None
    note_id: str | None = None
    done: frozenset[str] = frozenset()


# ---- pure: requests --------------------------------------------------------------------------


def _json(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def update_contact(contact_id: str, prop: str, value: str) -> Request:
    return Request(
        "PATCH", f"/crm/v3/objects/contacts/{quote(contact_id, safe='')}", _json({"properties": {prop: value}})
    )


def search_by_email(email: str) -> Request:
    query = {
        "filterGroups": [{"filters": [{"propertyName": "email", "operator": "EQ", "value": email}]}],
        "properties": ["email"],
        "limit": 1,
    }
    return Request("POST", "/crm/v3/objects/contacts/search", _json(query))


def create_note(text: str, timestamp_ms: int) -> Request:
    properties = {"hs_timestamp": str(int(timestamp_ms)), "hs_note_body": note_html(text)}
    return Request("POST", "/crm/v3/objects/notes", _json({"properties": properties}))


def associate_note(note_id: str, contact_id: str) -> Request:
    path = f"/crm/v4/objects/notes/{quote(note_id, safe='')}/associations/contacts/{quote(contact_id, safe='')}"
    return Request(
        "PUT", path, _json([{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": NOTE_TO_CONTACT}])
    )


def note_html(text: str) -> str:
    """hs_note_body is rich text: each line escaped, lines kept apart."""
    body = "<p>" + "<br>".join(html.escape(line) for line in text.splitlines()) + "</p>"
    return body[:_NOTE_MAX]


def contact_id_of(value: Any) -> str | None:
    """A contact id as the submission gave it (`vid`, `objectId`, `hs_object_id`): digits, else None."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        value = str(value)
    if isinstance(value, str) and _ID.match(value.strip()):
        return value.strip()
    return None


def email_of(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    email = value.strip().lower()
    return email if 3 <= len(email) <= _EMAIL_MAX and "@" in email else None


# ---- pure: answers ---------------------------------------------------------------------------


def decode(answer: Answer) -> Any:
    try:
        return json.loads(answer.body)
    except (ValueError, RecursionError):
        return None


def found_id(answer: Answer) -> str | None:
    """The first contact of a search answer, or None when it found none."""
    body = decode(answer)
    results = body.get("results") if isinstance(body, dict) else None
    if not isinstance(results, list) or not results or not isinstance(results[0], dict):
        return None
    return contact_id_of(results[0].get("id"))


def created_id(answer: Answer) -> str | None:
    body = decode(answer)
    return contact_id_of(body.get("id")) if isinstance(body, dict) else None


def classify(answer: Answer, now: float, *, echo_message: bool = True) -> tuple[Kind, int | None, str] | None:
    """None for a 2xx; else the kind of failure, the wait HubSpot asked for, and a reason for the log."""
    status = answer.status
    if 200 <= status < 300:
        return None
    body = decode(answer)
    category = (body.get("category") or body.get("errorType")) if isinstance(body, dict) else None
    detail = f"HTTP {status}" + (f" {str(category)[:40]}" if category else "")
    message = body.get("message") if isinstance(body, dict) else None
    if echo_message and isinstance(message, str) and message:
        detail += ": " + "".join(c for c in message if c.isprintable())[:_MESSAGE_MAX]
    wait = retry_after(answer.headers.get("retry-after"), now)
    if status == 429:
        return "retry", DEFAULT_RETRY_AFTER if wait is None else wait, f"HubSpot rate limit ({detail})"
    if status >= 500 or status == 408:
        return "retry", wait, f"HubSpot unavailable ({detail})"
    if status == 401:
        return "final", None, f"HubSpot refused the token ({detail})"
    if status == 403:
        return "final", None, f"the token lacks crm.objects.contacts.write or .read ({detail})"
    if status == 404:
        return "not_found", None, detail
    if 400 <= status < 500:
        return "final", None, f"HubSpot refused the request ({detail})"
    return "retry", wait, f"HubSpot answered {detail}"


# ---- the client ------------------------------------------------------------------------------


class _Stop(Exception):
    def __init__(self, kind: Kind, wait: int | None, reason: str) -> None:
        super().__init__(reason)
        self.kind, self.wait, self.reason = kind, wait, reason


@dataclass
class _Progress:
    contact_id: str | None
    note_id: str | None
    done: set[str]

    def result(self, kind: Kind, wait: int | None, reason: str) -> HubSpotResult:
        return HubSpotResult(kind, wait, reason, self.contact_id, self.note_id, frozenset(self.done))


class HubSpotClient:
    """Writes outcomes with a private-app or service-key token (Bearer)."""

    def __init__(self, pool: urllib3.PoolManager, token: str, api_url: str = API_URL, timeout: float = 10) -> None:
        self.pool = pool
        self.token = token
        self.api_url = api_url.rstrip("/")
        self.timeout = timeout

    def write_outcome(
        self,
        *,
        contact_id: str | None,
        email: str | None,
        property: str,
        value: str,
        note: str,
        timestamp_ms: int,
        done: Collection[str] = (),
        note_id: str | None = None,
    ) -> HubSpotResult:
        """Set `property` on the contact (by id, else by email), then create the note and attach it.

        Pass back the previous result's `contact_id`, `note_id` and `done` on a retry: finished steps are
        skipped, so a retry never sets twice or attaches a second note. A contact found neither by id
        nor by email is `not_found`, which is the contact's state, not a failure of the lead.
        """
        state = _Progress(contact_id_of(contact_id), contact_id_of(note_id) if NOTE in done else None, set(done))
        if state.note_id is None:
            state.done -= {NOTE, ASSOCIATION}
        try:
            if PROPERTY not in state.done:
                self._set_property(state, email, property, value)
            elif state.contact_id is None:
                state.contact_id = self._find(email)
            if state.note_id is None:
                state.note_id = self._create_note(note, timestamp_ms)
                state.done.add(NOTE)
            if ASSOCIATION not in state.done:
                self._associate(state)
        except _Stop as stop:
            return state.result(stop.kind, stop.wait, stop.reason)
        return state.result("delivered", None, "contact updated and note attached")

    def _set_property(self, state: _Progress, email: str | None, prop: str, value: str) -> None:
        if state.contact_id is not None:
            verdict = classify(self._send(update_contact(state.contact_id, prop, value)), time.time())
            if verdict is None:
                state.done.add(PROPERTY)
                return
            if verdict[0] != "not_found":
                raise _Stop(*verdict)
            state.contact_id = None  # a stale id (merged or deleted contact): the email may still find it
        state.contact_id = self._find(email)
        verdict = classify(self._send(update_contact(state.contact_id, prop, value)), time.time())
        if verdict is not None:
            raise _Stop(*verdict)
        state.done.add(PROPERTY)

    def _find(self, email: str | None) -> str:
        address = email_of(email)
        if address is None:
            raise _Stop("not_found", None, "no contact with that id, and no email to search by")
        # The email stays out of the reason: HubSpot's messages may quote it back.
        answer = self._send(search_by_email(address))
        verdict = classify(answer, time.time(), echo_message=False)
        if verdict is not None:
            raise _Stop(*verdict)
        cid = found_id(answer)
        if cid is None:
            raise _Stop("not_found", None, "no contact with that id or email")
        return cid

    def _create_note(self, text: str, timestamp_ms: int) -> str:
        answer = self._send(create_note(text, timestamp_ms), creates=True)
        verdict = classify(answer, time.time())
        if verdict is not None:
            raise _Stop("retry" if verdict[0] == "not_found" else verdict[0], verdict[1], f"note: {verdict[2]}")
        nid = created_id(answer)
        if nid is None:
            raise _Stop("retry", None, f"note: HubSpot's answer (HTTP {answer.status}) has no id")
        return nid

    def _associate(self, state: _Progress) -> None:
        if state.note_id is None or state.contact_id is None:  # unreachable: the steps before set both
            raise _Stop("retry", None, "association: no note or no contact yet")
        verdict = classify(self._send(associate_note(state.note_id, state.contact_id)), time.time())
        if verdict is not None:
            kind, wait, reason = verdict
            raise _Stop(kind, wait, f"association: {reason}")
        state.done.add(ASSOCIATION)

    def _send(self, request: Request, *, creates: bool = False) -> Answer:
        headers = {
            "Authorization": f"Bearer {self.token}",
            "Content-Type": "application/json",
            "Accept": "application/json",
        }
        try:
            return send(
                self.pool,
                request.method,
                self.api_url + request.path,
                headers=headers,
                body=request.body,
                timeout=self.timeout,
            )
        except TransportError as err:
            lost = " (a note may exist unattached, off every timeline)" if creates and err.sent else ""
            raise _Stop("retry", None, f"no answer from HubSpot: {err.reason}{lost}") from err


def result_fields(result: HubSpotResult) -> Mapping[str, Any]:
    """The result as plain values, for the lead record."""
    return {
        "kind": result.kind,
        "retry_after": result.retry_after,
        "reason": result.reason,
        "contact_id": result.contact_id,
        "note_id": result.note_id,
        "done": sorted(result.done),
    }
