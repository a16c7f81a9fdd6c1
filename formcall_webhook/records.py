"""Lead records (spec 8): the `Lead` type, its moves, and its JSON at the stores' edge. Pure: no I/O.

A `Lead` is frozen: every change is a transition method that refuses a move the state machine
(`states.can_move`) does not allow, applies `keep_fields` where the lead's call is done, and moves
`version` on (every write is conditional on the version read). The stores keep `to_json()`, a JSON-able
dict with exactly the fields records have always had; `from_json` reads any record written before.
Times a person reads are ISO 8601 (`received_at`, `next_attempt_at`); the store also reads epoch
seconds (`received_ts`, `due_at`, `expires_at`).
"""

from __future__ import annotations

import dataclasses
import os
import random
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, NamedTuple

from .attribution import FIELDS as ATTRIBUTION_FIELDS
from .states import FAILED, PENDING, PLACED, SCHEDULED, LeadState, can_move

__all__ = ["FAILED", "PENDING", "PLACED", "SCHEDULED", "LeadState"]

# The fields `leads list --json` prints, in spec 8's order, then consent (10) and the call's outcome (9).
PUBLIC_FIELDS = (
    "lead_id", "route", "state", "received_at", "attempts", "next_attempt_at", "last_error", "uuid",
    "popup_uuid", "phone", "consent", "call_status", "connected", "successful", "duration_customer",
    "call_at", "calls",
)  # fmt: skip
CALL_RESULT_FIELDS = ("call_status", "connected", "successful", "duration_customer", "call_at")


class MoveRefused(ValueError):
    """A transition the state machine does not allow: a bug in the caller, never a lead's fault."""


# Lead ids need to be unique, not secret (they authorize nothing): a generator seeded from the OS once
# per process (again in each forked worker) costs no system call per lead. Under eight threads each
# os.urandom call is a GIL hand-off, and the request path had two of them.
_ids = random.Random(secrets.token_bytes(16))  # noqa: S311 - unique ids, not secrets
os.register_at_fork(after_in_child=lambda: _ids.seed(secrets.token_bytes(16)))


def new_lead_id() -> str:
    return f"ld_{_ids.getrandbits(80):020x}"


def iso(ts: float | None) -> str | None:
    """Epoch seconds as ISO 8601 UTC to the second, "2026-12-01T14:15:27Z"."""
    if ts is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


# ------------------------------------------------------------------------------------------- the parts

# The parts are NamedTuples, cheap to build at import (see config.py); the lead itself is a frozen dataclass.


class Consent(NamedTuple):
    """Spec 10: the consent given with the lead (JSON field `consent`)."""

    given: bool
    field: str | None = None
    text: str | None = None
    at: str | None = None
    origin: str | None = None
    extra: Mapping[str, Any] = MappingProxyType({})

    @staticmethod
    def from_json(data: Any) -> Consent | None:
        if not isinstance(data, Mapping):
            return None
        known = {"given", "field", "text", "at", "origin"}
        return Consent(
            data.get("given") is True,
            data.get("field"),
            data.get("text"),
            data.get("at"),
            data.get("origin"),
            {k: v for k, v in data.items() if k not in known},
        )

    def to_json(self) -> dict[str, Any]:
        return {"given": self.given, "field": self.field, "text": self.text, "at": self.at, "origin": self.origin,
                **self.extra}  # fmt: skip


class CallWork(NamedTuple):
    """A placed call's outcome work (spec 9; JSON field `outcome`): its lookups and where each report stands.

    Only the fields the work has reached are written, so records keep the shape they always had.
    """

    due: bool = True
    lookups: int = 0
    # The call's row as seen last (set together): status, flags, duration, time, and the fingerprint.
    call_status: str | None = None
    connected: bool | None = None
    successful: bool | None = None
    duration_customer: int | None = None
    call_at: str | None = None
    last: tuple[Any, ...] | None = None
    settled: bool = False
    gave_up_lookup: bool = False
    webhook: str | None = None
    webhook_attempts: int = 0
    hubspot: str | None = None
    hubspot_attempts: int = 0
    hubspot_progress: Mapping[str, Any] | None = None
    # HubSpot's daily limit was reached: nothing is sent there before this time (the account's next day).
    hubspot_hold_until: float | None = None
    # When the outcome was settled: the webhook body's `timestamp`, the same on every retry.
    reported_at: float | None = None
    extra: Mapping[str, Any] = MappingProxyType({})

    @staticmethod
    def from_json(data: Any) -> CallWork | None:
        if not isinstance(data, Mapping):
            return None
        last = data.get("last")
        return CallWork(
            due=data.get("due") is True,
            lookups=int(data.get("lookups") or 0),
            call_status=data.get("call_status"),
            connected=data.get("connected"),
            successful=data.get("successful"),
            duration_customer=data.get("duration_customer"),
            call_at=data.get("call_at"),
            last=tuple(last) if isinstance(last, list) else None,
            settled=data.get("settled") is True,
            gave_up_lookup=data.get("gave_up_lookup") is True,
            webhook=data.get("webhook"),
            webhook_attempts=int(data.get("webhook_attempts") or 0),
            hubspot=data.get("hubspot"),
            hubspot_attempts=int(data.get("hubspot_attempts") or 0),
            hubspot_progress=data.get("hubspot_progress"),
            hubspot_hold_until=data.get("hubspot_hold_until"),
            reported_at=data.get("reported_at"),
            extra={k: v for k, v in data.items() if k not in _CALL_WORK_FIELDS},
        )

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"due": self.due}
        if self.lookups:
            data["lookups"] = self.lookups
        if self.last is not None:
            data.update(self.call_result())
            data["last"] = list(self.last)
        for name in ("settled", "gave_up_lookup"):
            if getattr(self, name):
                data[name] = True
        for name in ("webhook_attempts", "hubspot_attempts"):
            if getattr(self, name):
                data[name] = getattr(self, name)
        for name in ("webhook", "hubspot", "hubspot_progress", "hubspot_hold_until", "reported_at"):
            if getattr(self, name) is not None:
                data[name] = getattr(self, name)
        data.update(self.extra)
        return data

    def call_result(self) -> dict[str, Any]:
        """The call's fields as records and reports name them (spec 9)."""
        return {name: getattr(self, name) for name in CALL_RESULT_FIELDS}

    def but(self, **changes: Any) -> CallWork:
        return self._replace(**changes)


# The JSON fields CallWork reads; any other is kept as it was, in `extra`.
_CALL_WORK_FIELDS = frozenset({"due", "lookups", *CALL_RESULT_FIELDS, "last", "settled", "gave_up_lookup", "webhook",
                               "webhook_attempts", "hubspot", "hubspot_attempts", "hubspot_progress",
                               "hubspot_hold_until", "reported_at"})  # fmt: skip


class Attempt(NamedTuple):
    """The lead's attempts: how many, how the last ended, and when the next is due.

    `since` is set while an attempt may have reached FormCall without its answer reaching us (in flight,
    or its answer lost): before any new attempt, FormCall's list is read for its call.
    """

    made: int = 0  # attempts made (JSON: the record's `attempts`)
    since: float | None = None
    last_error: str | None = None
    due_at: float | None = None
    next_attempt_at: str | None = None


# ------------------------------------------------------------------------------------------------ a lead


class Unread(NamedTuple):
    """A lead kept before its fields could be read from its source (JSON field `unread`): Meta Lead Ads
    names a lead by id, and the Graph API may be down (spec 5). The sweeper reads it first."""

    source: str  # "meta"
    id: str  # the leadgen_id
    # What the delivery said beside the id (ad_id, form_id, created_time...).
    value: Mapping[str, str] = MappingProxyType({})
    reads: int = 0  # reads that failed, for the backoff

    @staticmethod
    def from_json(data: Any) -> Unread | None:
        if not isinstance(data, Mapping) or not isinstance(data.get("id"), str):
            return None
        value = data.get("value")
        return Unread(str(data.get("source", "")), data["id"], dict(value) if isinstance(value, Mapping) else {},
                      int(data.get("reads") or 0))  # fmt: skip

    def to_json(self) -> dict[str, Any]:
        return {"source": self.source, "id": self.id, "value": dict(self.value), "reads": self.reads}


# No generated repr: it would print the person's number, name and email wherever a lead is printed.
@dataclass(frozen=True, repr=False)
class Lead:
    """A lead record (spec 8), as the stores keep it; each move returns a new one."""

    lead_id: str
    route: str
    state: LeadState
    received_ts: float
    received_at: str | None
    expires_at: float
    version: int = 1
    attempt: Attempt = field(default_factory=Attempt)
    uuid: str | None = None
    popup_uuid: str | None = None
    phone: str | None = None  # masked
    phone_hash: str | None = None
    # The FormCall payload without the token: what calling later needs (None once minimized).
    payload: Mapping[str, Any] | None = None
    claims: tuple[tuple[str, float], ...] = ()
    consent: Consent | None = None
    work: CallWork | None = None
    minimized: bool = False
    # Who the outcome is reported on in the CRM (spec 9); the JSON field is absent until it is set.
    contact: Mapping[str, Any] | None = None
    has_contact: bool = False
    placed_at: float | None = None
    retried_at: float | None = None
    # Received out of service hours: the opening its first attempt waits for (max_age counts from there).
    held_until: float | None = None
    # False when a lost answer's call could not be told apart from another lead's (spec 8).
    uuid_certain: bool = True
    # The campaign it came from (spec 10: utm_* fields), kept for keep_days whatever keep_fields says.
    attribution: Mapping[str, str] = field(default_factory=dict)
    # Kept by its id at its source, its fields not read yet: no payload, no number until they are.
    unread: Unread | None = None
    # Spec 12: the click ids of a lead who consented to ads measurement, kept until its conversions are
    # done; and where each conversion stands ({"google": "sent"|"failed"|"skipped: reason", ...}).
    clicks: Mapping[str, str] = field(default_factory=dict)
    conversions: Mapping[str, str] | None = None
    # Spec 11: every call placed for the lead, each with its own outcome (JSON field `calls`), and the
    # attempts that did not become a call before the fallback popup took the lead (`attempts_log`).
    calls: tuple[Mapping[str, Any], ...] = ()
    tried: tuple[Mapping[str, Any], ...] = ()
    # The popup the current call was placed on, when it is not the lead's own (the fallback's).
    call_popup: str | None = None
    # Spec 11's pace: the start of the slot this lead holds on its popup (taken when it was admitted or
    # rescheduled); its next attempt uses it instead of taking another.
    pace_slot: float | None = None
    # When its first call was placed (spec 11: recalls stop retry.max_age after it).
    first_call_at: float | None = None
    # Fields this code does not know: kept as they came, written back as they were.
    extra: Mapping[str, Any] = field(default_factory=dict)

    # -- made --

    @staticmethod
    def kept_unread(
        *,
        lead_id: str,
        route: str,
        received: float,
        unread: Unread,
        keep_days: int,
        claims: list[tuple[str, float]],
        due_at: float,
        last_error: str,
    ) -> Lead:
        """A lead known only by its id at its source, whose fields could not be read (`last_error`):
        scheduled, due at `due_at` for the sweeper to read it, then to call it as any other."""
        return Lead(
            lead_id=lead_id,
            route=route,
            state=SCHEDULED,
            received_ts=received,
            received_at=iso(received),
            expires_at=received + keep_days * 86400,
            attempt=Attempt(last_error=last_error, due_at=due_at, next_attempt_at=iso(due_at)),
            claims=tuple((key, float(ttl)) for key, ttl in claims),
            unread=unread,
        )

    @staticmethod
    def admitted(
        *,
        lead_id: str,
        route: str,
        received: float,
        payload: Mapping[str, Any],
        masked: str,
        phone_hash: str,
        keep_days: int,
        claims: list[tuple[str, float]],
        consent: Mapping[str, Any] | None = None,
        contact: Mapping[str, Any] | None = None,
        attribution: Mapping[str, str] | None = None,
        clicks: Mapping[str, str] | None = None,
        in_flight_until: float | None = None,
    ) -> Lead:
        """A lead as it is kept before its first attempt: scheduled, version 1; with `in_flight_until`,
        that attempt is already in flight (marked and leased until then)."""
        attempt = Attempt()
        if in_flight_until is not None:
            attempt = Attempt(made=1, since=received, due_at=in_flight_until)
        return Lead(
            lead_id=lead_id,
            route=route,
            state=SCHEDULED,
            received_ts=received,
            received_at=iso(received),
            expires_at=received + keep_days * 86400,
            attempt=attempt,
            popup_uuid=payload.get("popup_uuid"),
            phone=masked,
            phone_hash=phone_hash,
            payload={k: v for k, v in payload.items() if k != "security_token"},
            claims=tuple((key, float(ttl)) for key, ttl in claims),
            consent=Consent.from_json(dict(consent)) if consent else None,
            contact=dict(contact) if contact else None,
            has_contact=bool(contact),
            attribution=dict(attribution or {}),
            clicks=dict(clicks or {}),
        )

    # -- the moves --

    def scheduled(self, *, due_at: float, last_error: str, since: float | None = None) -> Lead:
        """Due again at `due_at` after an attempt that ended in `last_error`; `since` keeps a lost answer's
        mark, to be settled from FormCall's list before the next attempt."""
        attempt = self.attempt._replace(since=since, last_error=last_error)
        return self._moved(SCHEDULED, attempt=attempt, due_at=due_at)

    def held(self, opening: float) -> Lead:
        """Received out of service hours (spec 8): no attempt before `opening`, and max_age from then."""
        if self.state is not SCHEDULED or self.attempts:
            raise MoveRefused("only a lead not yet attempted is held for the opening")
        return self._moved(SCHEDULED, due_at=opening, held_until=opening,
                           attempt=self.attempt._replace(last_error="out_of_service_hours"))  # fmt: skip

    def retried(self, now: float) -> Lead:
        """`leads retry`: due now, with a fresh max_age from now (the operator's choice to try again)."""
        # A `lead.failed` report still being retried stops: the lead is no longer given up.
        work = None if self.work is not None and self.work.extra.get("report") == "lead.failed" else self.work
        return self._moved(SCHEDULED, due_at=now, retried_at=now, work=work)

    def unread_again(self, due_at: float, last_error: str) -> Lead:
        """Its source could not give its fields this time either: due again at `due_at`."""
        if self.unread is None:
            raise MoveRefused("only an unread lead is read again")
        unread = self.unread._replace(reads=self.unread.reads + 1)
        attempt = self.attempt._replace(last_error=last_error)
        return self._moved(SCHEDULED, attempt=attempt, due_at=due_at, unread=unread)

    def read(
        self,
        *,
        payload: Mapping[str, Any],
        masked: str,
        phone_hash: str,
        claims: list[tuple[str, float]],
        consent: Mapping[str, Any] | None = None,
        attribution: Mapping[str, str] | None = None,
    ) -> Lead:
        """An unread lead's fields, read: from now on a lead as any other (scheduled, due as it was),
        also known by `claims` (its number's dedupe claim)."""
        if self.unread is None or self.state is not SCHEDULED:
            raise MoveRefused("only a scheduled, unread lead is read")
        return self._edited(
            unread=None,
            popup_uuid=payload.get("popup_uuid"),
            phone=masked,
            phone_hash=phone_hash,
            payload={k: v for k, v in payload.items() if k != "security_token"},
            claims=(*self.claims, *((key, float(ttl)) for key, ttl in claims)),
            consent=Consent.from_json(dict(consent)) if consent else None,
            attribution=dict(attribution or {}),
        )

    def waiting(self, due_at: float) -> Lead:
        """The same lead, due at `due_at` instead (no attempt made: not yet settled, out of hours, list down)."""
        return self._edited(due_at=due_at)

    def in_flight(self, started: float, lease_until: float) -> Lead:
        """One more attempt, sent now: marked so a lost answer is settled from FormCall's list."""
        if self.state is not SCHEDULED:
            raise MoveRefused(f"a {self.state} lead cannot be attempted")
        attempt = self.attempt._replace(made=self.attempt.made + 1, since=started)
        return self._moved(SCHEDULED, attempt=attempt, due_at=lease_until)

    def unmarked(self) -> Lead:
        """The in-flight mark cleared: the lost answer is settled, no call was placed."""
        return self._edited(attempt=self.attempt._replace(since=None))

    def placed(
        self, uuid: str | None, *, pending: bool, now: float, work_after: float | None, keep_fields: str
    ) -> Lead:
        """FormCall placed (or left pending) the call. With `work_after`, due then for its outcome work
        (spec 9); else done, and minimized under keep_fields = "until_done"."""
        state = PENDING if pending else PLACED
        attempt = self.attempt._replace(since=None, last_error=None)
        calls = (*self.calls, new_call(uuid, self.call_popup or self.popup_uuid)) if uuid else self.calls
        first = self.first_call_at if self.first_call_at is not None else now
        if work_after is not None and uuid:
            work = CallWork(due=True)
            return self._moved(state, attempt=attempt, due_at=now + work_after, uuid=uuid, placed_at=now, work=work,
                               calls=calls, pace_slot=None, first_call_at=first)  # fmt: skip
        moved = self._moved(state, attempt=attempt, due_at=None, uuid=uuid, placed_at=now, calls=calls, pace_slot=None,
                            first_call_at=first)  # fmt: skip
        return moved._minimized(keep_fields)

    def fell_back(self, popup: str, error: str, code: int | None, at: float, fallback: str) -> Lead:
        """Spec 11: the lead's popup refused it (error 4, or 2 without pending calls): the attempt is kept
        on the record and the same lead goes to the fallback popup (not saved yet: the caller saves the
        attempt's end, which carries this)."""
        entry = {"popup_uuid": popup, "error": error, "formcall_error_code": code, "at": iso(at)}
        return dataclasses.replace(self, tried=(*self.tried, entry), call_popup=fallback)

    def paced(self, slot: float) -> Lead:
        """Over its popup's pace (spec 11): kept, due at the slot it holds, no attempt yet."""
        return self._edited(due_at=slot, pace_slot=slot)

    def recalled(self, uuid: str, popup: str, *, now: float, work_after: float) -> Lead:
        """Spec 11: one more call placed for a lead whose last call settled not connected."""
        self._working()
        calls = (*self.calls, new_call(uuid, popup))
        own = popup if popup != self.popup_uuid else None
        return self._edited(uuid=uuid, placed_at=now, work=CallWork(due=True), due_at=now + work_after,
                            calls=calls, pace_slot=None, call_popup=own)  # fmt: skip

    def call_settled(self, work: CallWork) -> Lead:
        """The current call's outcome written on its entry in `calls` (not saved: the next step saves it)."""
        if not self.calls:
            return self
        last = {**self.calls[-1], **work.call_result()}
        return dataclasses.replace(self, calls=(*self.calls[:-1], last))

    def uncertain(self) -> Lead:
        """Its uuid is one of several a lost answer could not tell apart: no outcome is reported for it."""
        return dataclasses.replace(self, uuid_certain=False)

    def failed(self, last_error: str, *, keep_fields: str, since: float | None = None) -> Lead:
        """Given up (or refused for good). `since` keeps a lost answer's mark (retry = false)."""
        attempt = self.attempt._replace(since=since, last_error=last_error)
        return self._moved(FAILED, attempt=attempt, due_at=None)._minimized(keep_fields)

    def failed_report(self, work: CallWork, due_at: float | None) -> Lead:
        """Spec 9's `lead.failed` report of a failed lead: its progress saved, the next try due at `due_at`
        (None once it is over). The lead stays failed; nothing it keeps is added back."""
        if self.state != FAILED:
            raise MoveRefused(f"a {self.state} lead has no failure to report")
        return self._edited(work=work if due_at is not None else work.but(due=False), due_at=due_at)

    def outcome_step(self, work: CallWork, due_at: float) -> Lead:
        """One step of the outcome work saved, the next due at `due_at`."""
        self._working()
        return self._edited(work=work, due_at=due_at)

    def outcome_done(self, work: CallWork, keep_fields: str) -> Lead:
        """The outcome work is over: nothing due; what the person typed goes under until_done."""
        self._working()
        return self._edited(work=work.but(due=False), due_at=None)._minimized(keep_fields)

    def converted(self, conversions: Mapping[str, str], *, done: bool) -> Lead:
        """Where the lead's conversions stand (spec 12); once `done`, its click ids leave it (spec 10).
        Saved with the outcome step it belongs to."""
        return dataclasses.replace(self, conversions=dict(conversions), clicks={} if done else self.clicks)

    def idle(self) -> Lead:
        """Nothing left to do for it: never leave a lead due and untouched."""
        return self._edited(due_at=None)

    def _working(self) -> None:
        if self.state not in (PLACED, PENDING):
            raise MoveRefused(f"a {self.state} lead has no call to follow up")

    def _edited(self, **changes: Any) -> Lead:
        """The lead in its state with `changes` (no move of the state machine), version moved on."""
        return self._moved(self.state, edit=True, **changes)

    def _moved(self, state: LeadState, *, edit: bool = False, **changes: Any) -> Lead:
        """The lead moved to `state` with `changes`, version moved on; `due_at` in changes also sets when
        the next attempt is shown (`next_attempt_at`, for a scheduled lead only)."""
        if not edit and not can_move(self.state, state):
            raise MoveRefused(f"a {self.state} lead cannot become {state}")
        attempt = changes.pop("attempt", self.attempt)
        if "due_at" in changes:
            due_at = changes.pop("due_at")
            attempt = attempt._replace(due_at=due_at, next_attempt_at=iso(due_at) if state == SCHEDULED else None)
        return dataclasses.replace(self, state=state, attempt=attempt, version=self.version + 1, **changes)

    def _minimized(self, keep_fields: str) -> Lead:
        """Spec 10, keep_fields = "until_done": the fields that leave a record once its call is done.

        Placed or pending: everything the person typed, the whole number included; the record keeps the
        masked number, states, times, uuid, consent and outcome. Failed: the name, email and other
        `adicional` values go, the number stays until keep_days so `leads retry` can still call it once.
        """
        if keep_fields != "until_done":
            return self
        payload = None
        if self.state == FAILED and self.payload is not None:
            payload = {k: v for k, v in self.payload.items() if k != "adicional"}
        # Click ids never outlive the call's work: conversions, where due, are done by now.
        return dataclasses.replace(self, payload=payload, contact=None, has_contact=True, minimized=True, clicks={})

    # -- read --

    @property
    def due_at(self) -> float | None:
        return self.attempt.due_at

    @property
    def attempts(self) -> int:
        return self.attempt.made

    @property
    def last_error(self) -> str | None:
        return self.attempt.last_error

    @property
    def age_from(self) -> float:
        """When max_age starts: the lead's arrival, the opening it was held for, or an operator's
        `leads retry`, whichever is latest."""
        return max(self.received_ts, self.retried_at or 0.0, self.held_until or 0.0)

    def number(self) -> str | None:
        """The whole number in E.164, while the record still holds it."""
        if self.payload is None:
            return None
        digits = "".join(str(self.payload.get(k) or "") for k in ("country_code", "areacode", "phonenumber"))
        return "+" + digits if digits else None

    # -- the stores' edge --

    def to_json(self) -> dict[str, Any]:
        """The record as the stores keep it: the same fields, names and values as ever."""
        data: dict[str, Any] = {
            "lead_id": self.lead_id,
            "version": self.version,
            "route": self.route,
            "state": str(self.state),
            "received_at": self.received_at,
            "received_ts": self.received_ts,
            "attempts": self.attempt.made,
            "next_attempt_at": self.attempt.next_attempt_at,
            "due_at": self.attempt.due_at,
            "last_error": self.attempt.last_error,
            "uuid": self.uuid,
            "popup_uuid": self.popup_uuid,
            "phone": self.phone,
            "phone_hash": self.phone_hash,
            "payload": dict(self.payload) if self.payload is not None else None,
            "claims": [[key, ttl] for key, ttl in self.claims],
            "consent": self.consent.to_json() if self.consent is not None else None,
            "expires_at": self.expires_at,
            "attempt_since": self.attempt.since,
            "outcome": self.work.to_json() if self.work is not None else None,
            "minimized": self.minimized,
        }
        if self.has_contact:
            data["contact"] = dict(self.contact) if self.contact is not None else None
        for name in ("placed_at", "retried_at", "held_until"):
            if getattr(self, name) is not None:
                data[name] = getattr(self, name)
        if not self.uuid_certain:
            data["uuid_certain"] = False
        if self.unread is not None:
            data["unread"] = self.unread.to_json()
        if self.calls:
            data["calls"] = [dict(c) for c in self.calls]
        if self.tried:
            data["attempts_log"] = [dict(t) for t in self.tried]
        if self.call_popup is not None:
            data["call_popup_uuid"] = self.call_popup
        if self.pace_slot is not None:
            data["pace_slot"] = self.pace_slot
        if self.first_call_at is not None:
            data["first_call_at"] = self.first_call_at
        data.update(self.attribution)
        if self.clicks:
            data["clicks"] = dict(self.clicks)
        if self.conversions is not None:
            data["conversions"] = dict(self.conversions)
        data.update(self.extra)
        return data

    @staticmethod
    def from_json(data: Mapping[str, Any]) -> Lead:
        """A record as any version of this code saved it."""
        received = float(data["received_ts"])
        due = data.get("due_at")
        since = data.get("attempt_since")
        contact = data.get("contact")
        return Lead(
            lead_id=str(data["lead_id"]),
            route=str(data.get("route", "")),
            state=LeadState(data["state"]),
            received_ts=received,
            received_at=data.get("received_at"),
            expires_at=float(data.get("expires_at") or received),
            version=int(data.get("version") or 0),
            attempt=Attempt(
                made=int(data.get("attempts") or 0),
                since=float(since) if since is not None else None,
                last_error=data.get("last_error"),
                due_at=float(due) if due is not None else None,
                next_attempt_at=data.get("next_attempt_at"),
            ),
            uuid=data.get("uuid"),
            popup_uuid=data.get("popup_uuid"),
            phone=data.get("phone"),
            phone_hash=data.get("phone_hash"),
            payload=data["payload"] if isinstance(data.get("payload"), dict) else None,
            claims=tuple((str(k), float(w)) for k, w in data.get("claims") or []),
            consent=Consent.from_json(data.get("consent")),
            work=CallWork.from_json(data.get("outcome")),
            minimized=data.get("minimized") is True,
            contact=contact if isinstance(contact, dict) else None,
            has_contact="contact" in data,
            placed_at=data.get("placed_at"),
            retried_at=data.get("retried_at"),
            held_until=data.get("held_until"),
            uuid_certain=data.get("uuid_certain") is not False,
            attribution={k: str(data[k]) for k in ATTRIBUTION_FIELDS if data.get(k)},
            unread=Unread.from_json(data.get("unread")),
            clicks=_strings(data.get("clicks")),
            conversions=_strings(data["conversions"]) if isinstance(data.get("conversions"), dict) else None,
            calls=tuple(c for c in data.get("calls") or [] if isinstance(c, dict)),
            tried=tuple(t for t in data.get("attempts_log") or [] if isinstance(t, dict)),
            call_popup=data.get("call_popup_uuid"),
            pace_slot=data.get("pace_slot"),
            first_call_at=data.get("first_call_at"),
            extra={k: v for k, v in data.items() if k not in _FIELDS},
        )


_FIELDS = frozenset({
    "lead_id", "version", "route", "state", "received_at", "received_ts", "attempts", "next_attempt_at", "due_at",
    "last_error", "uuid", "popup_uuid", "phone", "phone_hash", "payload", "claims", "consent", "expires_at",
    "attempt_since", "outcome", "minimized", "contact", "placed_at", "retried_at", "uuid_certain",
    "held_until", "unread", "clicks", "conversions", "calls", "attempts_log", "call_popup_uuid", "pace_slot",
    "first_call_at", *ATTRIBUTION_FIELDS,
})  # fmt: skip


def _strings(value: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in value.items() if isinstance(v, str)} if isinstance(value, dict) else {}


# ----------------------------------------------------------------------- records as the stores hold them


def new_call(uuid: str | None, popup: str | None) -> dict[str, Any]:
    """One entry of a record's `calls` (spec 11): the call, its outcome not known yet."""
    return {"uuid": uuid, "popup_uuid": popup, **dict.fromkeys(CALL_RESULT_FIELDS)}


def new_record(*, outcome_due: bool = False, **fields: Any) -> dict[str, Any]:
    """A new lead's JSON record (`Lead.admitted`'s fields), scheduled and not yet attempted; the stores'
    tests build records with it."""
    record = Lead.admitted(**fields).to_json()
    if outcome_due:
        record["outcome"] = {"due": True}
    return record


def changed(record: Mapping[str, Any], **fields: Any) -> dict[str, Any]:
    """A record with `fields` set as-is and the version moved on, for the stores' own tests, which write
    any shape; the function itself changes leads only through `Lead`'s moves."""
    new = dict(record)
    new.update(fields)
    new["version"] = int(record.get("version", 0)) + 1
    if "due_at" in fields:
        new["next_attempt_at"] = iso(fields["due_at"]) if new.get("state") == SCHEDULED else None
    return new


def public(record: Mapping[str, Any], phone: str | None = None) -> dict[str, Any]:
    """The record as `leads` prints it: spec 8's fields; `phone` replaces the masked number."""
    work = record.get("outcome") or {}
    view: dict[str, Any] = {}
    for name in PUBLIC_FIELDS:
        view[name] = work.get(name) if name in CALL_RESULT_FIELDS else record.get(name)
    if phone is not None:
        view["phone"] = phone
    if record.get("uuid_certain") is False:
        # Spec 8: a lost answer's call that could not be told apart from another lead's.
        view["uuid_certain"] = False
    # Spec 11: every call placed for the lead, each with its own outcome.
    view["calls"] = record.get("calls") or []
    if record.get("attempts_log"):
        view["attempts_log"] = record["attempts_log"]
    payload = record.get("payload")
    if isinstance(payload, dict) and payload.get("adicional"):
        view["adicional"] = payload["adicional"]
    return view


def number_of(record: Mapping[str, Any]) -> str | None:
    """The whole number in E.164, while the record still holds it."""
    payload = record.get("payload")
    if not isinstance(payload, dict):
        return None
    digits = "".join(str(payload.get(k) or "") for k in ("country_code", "areacode", "phonenumber"))
    return "+" + digits if digits else None
