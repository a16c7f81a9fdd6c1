"""A call's outcome on its HubSpot contact: a property set and a note on the timeline (spec section 9).

Pure request builders and answer parsers first; `HubSpotClient` runs them over the shared transport.
HubSpot's date-based API, version 2026-09 (the latest: "The latest API version includes a URL prefix
that's formatted as /YYYY-MM (e.g., /2026-09/)", developers.hubspot.com/docs/api-reference/legacy/
migration-guide; v4 loses support on 30 Mar 2027, v1-v3 in Sep 2027). Endpoints as documented:
  PATCH /crm/objects/2026-09/contacts/{id}                         {"properties": {...}}
  PATCH /crm/objects/2026-09/contacts/{email}?idProperty=email     (".../latest/crm/objects/contacts/
        update-contact": "include the email/property value in the request URL path, and add the
        idProperty query parameter"), so no call goes to the search API and its lower rate limit
  GET   /crm/objects/2026-09/contacts/{email}?idProperty=email&properties=phone,mobilephone
  POST  /crm/objects/2026-09/notes                                 (".../crm/activities/notes/guide":
        "To create a note, make a POST request to /crm/objects/2026-03/notes")
  PUT   /crm/objects/2026-09/notes/{id}/associations/contacts/{id}  [HUBSPOT_DEFINED 202, note to contact]
        (".../crm/associations/associate-records/update-association-labeled")
  GET   /account-info/2026-09/details                              timeZone, when the DAILY limit is hit
The note is created first and attached second: when a create's answer is lost, the retry's note is the
one attached, and the lost one stays off every timeline instead of showing twice.

Which contact (spec 9): an id from the submission is used only when the caller says the route is
signed by HubSpot (`trusted`); elsewhere the contact is read by email and written only when its
`phone` or `mobilephone` is the lead's number (`may_write`), so a stranger's form cannot write on
someone else's contact.
"""

from __future__ import annotations

import html
import json
import re
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Literal
from urllib.parse import quote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers

from .http import Answer, Pool, TransportError, send
from .outgoing import retry_after

API_URL = "https://api.hubapi.com"
API_VERSION = "2026-09"
OBJECTS = f"/crm/objects/{API_VERSION}"
NOTE_TO_CONTACT = 202  # HubSpot-defined association type: note to contact
# HubSpot's 429 carries Retry-After; when a proxy drops it, its limits reset within seconds.
DEFAULT_RETRY_AFTER = 10
# HubSpot's daily limit "resets at midnight based on the time zone setting of the HubSpot account"
# (developers.hubspot.com/apisbytier); without the zone, a day from now has surely crossed it.
DAY = 86_400
# Progress steps, for the caller to keep between attempts (see write_outcome).
CONTACT = "contact"  # the contact is known to be the lead's: trusted id, or its number checked
PROPERTY = "property"
NOTE = "note"
ASSOCIATION = "association"
PHONE_PROPERTIES = ("phone", "mobilephone")
_ID = re.compile(r"^[0-9]{1,20}$")
_EMAIL_MAX = 254
_NOTE_MAX = 65_536  # hs_note_body's documented limit
_MESSAGE_MAX = 200
_PHONE_MAX = 64

# hold: HubSpot's DAILY limit was reached; nothing more until the account's next day (`hold_until`).
# mismatch: a contact has the email, but neither its phone nor mobilephone is the lead's number.
Kind = Literal["delivered", "retry", "hold", "final", "not_found", "mismatch", "lost"]


@dataclass(frozen=True)
class Request:
    """One CRM API request, built without I/O: method, path (with query) under the API URL, JSON body."""

    method: str
    path: str
    body: bytes | None


@dataclass(frozen=True)
class HubSpotResult:
    """What happened, the contact written to (keep it for the next attempt), the note and the steps done.

    `hold_until` (epoch seconds) is set with kind "hold": the account's next day, when its daily limit
    resets; the caller holds the work until then, or gives up when that is past `outcome.give_up`.
    """

    kind: Kind
    retry_after: int | None
    reason: str
    contact_id: str | None
    note_id: str | None = None
    done: frozenset[str] = frozenset()
    hold_until: float | None = None


# ---- pure: requests --------------------------------------------------------------------------


def _json(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _contact_path(key: str) -> str:
    return f"{OBJECTS}/contacts/{quote(key, safe='')}"


def update_contact(contact_id: str, prop: str, value: str) -> Request:
    return Request("PATCH", _contact_path(contact_id), _json({"properties": {prop: value}}))


def update_contact_by_email(email: str, prop: str, value: str) -> Request:
    return Request("PATCH", _contact_path(email) + "?idProperty=email", _json({"properties": {prop: value}}))


def read_contact_by_email(email: str) -> Request:
    """The contact with this email, with the numbers `may_write` compares against the lead's."""
    query = "?idProperty=email&properties=" + ",".join(PHONE_PROPERTIES)
    return Request("GET", _contact_path(email) + query, None)


def create_note(text: str, timestamp_ms: int) -> Request:
    properties = {"hs_timestamp": str(int(timestamp_ms)), "hs_note_body": note_html(text)}
    return Request("POST", f"{OBJECTS}/notes", _json({"properties": properties}))


def associate_note(note_id: str, contact_id: str) -> Request:
    path = f"{OBJECTS}/notes/{quote(note_id, safe='')}/associations/contacts/{quote(contact_id, safe='')}"
    return Request(
        "PUT", path, _json([{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": NOTE_TO_CONTACT}])
    )


def account_details() -> Request:
    return Request("GET", f"/account-info/{API_VERSION}/details", None)


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


# ---- pure: which contact may be written -------------------------------------------------------


def may_write(properties: Mapping[str, Any], e164: str | None) -> bool:
    """True when the contact's `phone` or `mobilephone`, normalised, is the lead's number (E.164).

    A contact's number is read as its owner typed it: international, national to the lead's country
    ("9 6123 4567" for a Chilean lead), or digits with the country code and no "+".
    """
    if not e164:
        return False
    try:
        lead = phonenumbers.parse(e164)
    except phonenumbers.NumberParseException:
        return False
    region = phonenumbers.region_code_for_number(lead)
    for name in PHONE_PROPERTIES:
        value = properties.get(name)
        if not isinstance(value, str) or not value.strip() or len(value) > _PHONE_MAX:
            continue
        digits = "".join(c for c in value if c.isdigit())
        for text in (value, "+" + digits):
            try:
                number = phonenumbers.parse(text, region)
            except phonenumbers.NumberParseException:
                continue
            if phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164) == e164:
                return True
    return False


def next_day(now: float, time_zone: str | None, utc_offset_ms: int | None = None) -> float:
    """The next midnight in the account's time zone (IANA name, else its UTC offset); a day on without."""
    zone: Any = None
    if time_zone:
        try:
            zone = ZoneInfo(time_zone)
        except (ZoneInfoNotFoundError, ValueError):
            zone = None
    if zone is None and utc_offset_ms is not None and abs(utc_offset_ms) <= 14 * 3600 * 1000:
        zone = timezone(timedelta(milliseconds=utc_offset_ms))
    if zone is None:
        return now + DAY
    local = datetime.fromtimestamp(now, zone)
    midnight = datetime(local.year, local.month, local.day, tzinfo=zone) + timedelta(days=1)
    return max(now + 1, midnight.timestamp())


# ---- pure: answers ---------------------------------------------------------------------------


def decode(answer: Answer) -> Any:
    try:
        return json.loads(answer.body)
    except (ValueError, RecursionError):
        return None


def created_id(answer: Answer) -> str | None:
    body = decode(answer)
    return contact_id_of(body.get("id")) if isinstance(body, dict) else None


def contact_of(answer: Answer) -> tuple[str | None, dict[str, Any]]:
    """A contact read's id and properties."""
    body = decode(answer)
    if not isinstance(body, dict):
        return None, {}
    props = body.get("properties")
    return contact_id_of(body.get("id")), dict(props) if isinstance(props, dict) else {}


def account_zone(answer: Answer) -> tuple[str | None, int | None]:
    """The account's `timeZone` and `utcOffsetMilliseconds` from its details."""
    body = decode(answer)
    if not isinstance(body, dict) or not 200 <= answer.status < 300:
        return None, None
    zone, offset = body.get("timeZone"), body.get("utcOffsetMilliseconds")
    return (zone if isinstance(zone, str) else None,
            offset if isinstance(offset, int) and not isinstance(offset, bool) else None)  # fmt: skip


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
        # "The message and policyName will indicate which limit you hit (either daily or secondly)";
        # the daily one lasts until the account's midnight, so retrying it sooner only adds 429s.
        if isinstance(body, dict) and str(body.get("policyName", "")).upper() == "DAILY":
            return "hold", None, f"HubSpot daily limit reached ({detail})"
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


class HubSpotError(Exception):
    """A request that did not do its part: the result's kind, HubSpot's wait, and a reason for the log."""

    def __init__(self, kind: Kind, wait: int | None, reason: str) -> None:
        super().__init__(reason)
        self.kind, self.wait, self.reason = kind, wait, reason


@dataclass
class _Progress:
    contact_id: str | None
    note_id: str | None
    done: set[str]

    def result(self, kind: Kind, wait: int | None, reason: str, hold_until: float | None = None) -> HubSpotResult:
        return HubSpotResult(kind, wait, reason, self.contact_id, self.note_id, frozenset(self.done), hold_until)


def _marked(mark: Callable[[str, HubSpotResult], bool] | None, step: str, state: _Progress) -> None:
    if mark is not None and not mark(step, state.result("retry", None, f"{step} under way")):
        raise HubSpotError("lost", None, "another worker took the lead's outcome work: nothing more sent")


class HubSpotClient:
    """Writes outcomes with a private-app or service-key token (Bearer)."""

    def __init__(self, pool: Pool, token: str, api_url: str = API_URL, timeout: float = 10) -> None:
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
        phone: str | None = None,
        trusted: bool = False,
        mark: Callable[[str, HubSpotResult], bool] | None = None,
    ) -> HubSpotResult:
        """Set `property` on the contact, then create the note and attach it.

        `trusted` (a route signed by HubSpot): the contact is the submission's id, else its email.
        Otherwise the contact is read by email and written only when `may_write(contact, phone)`; an id
        is then used only when a previous attempt checked it (CONTACT in `done`).
        Pass back the previous result's `contact_id`, `note_id` and `done` on a retry: finished steps are
        skipped, so a retry never sets twice or attaches a second note. A contact found neither by id
        nor by email is `not_found`, and one whose numbers are not the lead's is `mismatch`: the
        contact's state, not a failure of the lead.

        `mark(step, progress)`, when given, is called before each step's writes (PROPERTY, NOTE,
        ASSOCIATION) to record on the lead that the step is under way: when it answers False (another
        worker has the lead now) nothing more is sent and the result is `lost`.
        """
        done = set(done)
        known = contact_id_of(contact_id) if (trusted or CONTACT in done) else None
        if known is None:
            done -= {CONTACT, PROPERTY, ASSOCIATION}
        elif trusted:
            done.add(CONTACT)
        state = _Progress(known, contact_id_of(note_id) if NOTE in done else None, done)
        if state.note_id is None:
            state.done -= {NOTE, ASSOCIATION}
        try:
            if PROPERTY not in state.done:
                _marked(mark, PROPERTY, state)
                self._set_property(state, email, phone, trusted, property, value)
            if state.note_id is None:
                _marked(mark, NOTE, state)
                state.note_id = self._create_note(note, timestamp_ms)
                state.done.add(NOTE)
            if ASSOCIATION not in state.done:
                _marked(mark, ASSOCIATION, state)
                self._associate(state)
        except HubSpotError as stop:
            if stop.kind == "hold":
                # The day is the caller's (its clock wrote timestamp_ms), so a test's clock holds here too.
                return state.result("hold", None, stop.reason, self._next_day(timestamp_ms / 1000))
            return state.result(stop.kind, stop.wait, stop.reason)
        return state.result("delivered", None, "contact updated and note attached")

    def read_contact(self, email: str) -> tuple[str, dict[str, Any]]:
        """The contact with this email: its id, and its `phone` and `mobilephone` for `may_write`.

        Raises HubSpotError: kind not_found when no contact has that email, else as `classify` says.
        """
        address = email_of(email)
        if address is None:
            raise HubSpotError("not_found", None, "no contact id, and no email to find the contact by")
        answer = self._send(read_contact_by_email(address))
        # The email stays out of the reason: HubSpot's messages may quote it back.
        verdict = classify(answer, time.time(), echo_message=False)
        if verdict is not None:
            kind, wait, reason = verdict
            raise HubSpotError(kind, wait, "no contact with that email" if kind == "not_found" else reason)
        cid, properties = contact_of(answer)
        if cid is None:
            raise HubSpotError("retry", None, f"HubSpot's contact (HTTP {answer.status}) has no id")
        return cid, properties

    def _set_property(
        self, state: _Progress, email: str | None, phone: str | None, trusted: bool, prop: str, value: str
    ) -> None:
        if state.contact_id is not None:
            verdict = classify(self._send(update_contact(state.contact_id, prop, value)), time.time())
            if verdict is None:
                state.done.add(PROPERTY)
                return
            if verdict[0] != "not_found":
                raise HubSpotError(*verdict)
            # A stale id (merged or deleted contact): the email may still find it.
            state.contact_id = None
            state.done.discard(CONTACT)
        if trusted:
            self._set_by_email(state, email, prop, value)
            return
        cid, properties = self.read_contact(email or "")
        if not may_write(properties, phone):
            raise HubSpotError("mismatch", None, "the contact with that email has another phone number: not written")
        state.contact_id = cid
        state.done.add(CONTACT)
        verdict = classify(self._send(update_contact(cid, prop, value)), time.time())
        if verdict is not None:
            raise HubSpotError(*verdict)
        state.done.add(PROPERTY)

    def _set_by_email(self, state: _Progress, email: str | None, prop: str, value: str) -> None:
        address = email_of(email)
        if address is None:
            raise HubSpotError("not_found", None, "no contact with that id, and no email to find it by")
        answer = self._send(update_contact_by_email(address, prop, value))
        verdict = classify(answer, time.time(), echo_message=False)
        if verdict is not None:
            kind, wait, reason = verdict
            raise HubSpotError(kind, wait, "no contact with that id or email" if kind == "not_found" else reason)
        cid = created_id(answer)
        if cid is None:
            raise HubSpotError("retry", None, f"HubSpot's updated contact (HTTP {answer.status}) has no id")
        state.contact_id = cid
        state.done |= {CONTACT, PROPERTY}

    def _create_note(self, text: str, timestamp_ms: int) -> str:
        answer = self._send(create_note(text, timestamp_ms), creates=True)
        verdict = classify(answer, time.time())
        if verdict is not None:
            raise HubSpotError("retry" if verdict[0] == "not_found" else verdict[0], verdict[1], f"note: {verdict[2]}")
        nid = created_id(answer)
        if nid is None:
            raise HubSpotError("retry", None, f"note: HubSpot's answer (HTTP {answer.status}) has no id")
        return nid

    def _associate(self, state: _Progress) -> None:
        if state.note_id is None or state.contact_id is None:  # unreachable: the steps before set both
            raise HubSpotError("retry", None, "association: no note or no contact yet")
        verdict = classify(self._send(associate_note(state.note_id, state.contact_id)), time.time())
        if verdict is not None:
            kind, wait, reason = verdict
            raise HubSpotError(kind, wait, f"association: {reason}")
        state.done.add(ASSOCIATION)

    def _next_day(self, now: float) -> float:
        """When the account's daily limit resets: its next midnight, read from its details when it answers."""
        try:
            answer = self._send(account_details())
        except HubSpotError:
            return next_day(now, None)
        return next_day(now, *account_zone(answer))

    def _send(self, request: Request, *, creates: bool = False) -> Answer:
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
        if request.body is not None:
            headers["Content-Type"] = "application/json"
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
            raise HubSpotError("retry", None, f"no answer from HubSpot: {err.reason}{lost}") from err


def result_fields(result: HubSpotResult) -> Mapping[str, Any]:
    """The result as plain values, for the lead record."""
    return {
        "kind": result.kind,
        "retry_after": result.retry_after,
        "reason": result.reason,
        "contact_id": result.contact_id,
        "note_id": result.note_id,
        "done": sorted(result.done),
        "hold_until": result.hold_until,
    }
