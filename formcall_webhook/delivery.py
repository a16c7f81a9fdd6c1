"""Place once (spec 4 and 8), the request path: keep the lead, call FormCall, then settle. No Request, no HTTP.

Every lead is written to the store before FormCall is called, with its attempt marked in flight, so a
process that dies mid-call leaves a record the sweeper settles from FormCall's own list instead of a lost
lead or a second ring. The attempt itself, and what the lead becomes, is attempt.py's, shared with the
sweeper; `submit` returns a `Delivered` value.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Any, NamedTuple

from . import keys, once, phones
from .attempt import Attempted, Attempter
from .clients.formcall import ListUnavailable, Placed
from .config import Config, Route
from .errors import FormCallUnavailable, OptedOut, RateLimited, WebhookError
from .records import FAILED, SCHEDULED, Lead, Unread, new_lead_id
from .routing import Router, pool_key
from .states import DEFAULT_RETRY, RetryPolicy
from .stores import Admission, Backend, Counter, Finish, Pace

_POLL_SECONDS = 0.05


class Submission(NamedTuple):
    """A lead that passed the guards and whose number is valid: what delivery needs of the request."""

    route: Route
    number: phones.Number  # the person's number, normalized
    payload: Mapping[str, Any]  # the FormCall payload, without the token
    dedupe_value: str = ""  # the route's dedupe template rendered; "" for the default key
    delivery_id: tuple[str, int] | None = None  # (an id to catch the sender's replays by, its window in seconds)
    delivery_scope: str | None = None  # whose ids they are: a signer's, across routes (spec 5); else the route's
    ip_key: str | None = None
    consent: Mapping[str, Any] | None = None
    # Who the outcome is reported on in the CRM (spec 9): the contact id and email, kept until it is.
    contact: Mapping[str, Any] | None = None
    # The campaign it came from (spec 10: utm_* fields, kept for keep_days whatever keep_fields says).
    attribution: Mapping[str, str] | None = None
    # The click ids of a lead who consented to ads measurement (spec 12), kept until its conversions are done.
    clicks: Mapping[str, str] | None = None

    def __repr__(self) -> str:  # the object's own: a tuple's repr would print the lead's payload
        return object.__repr__(self)


class Delivered(NamedTuple):
    """The request path's result: the first answer (None when the lead is refused or not kept), what the
    request's log line says, and the error the sender is answered with when there is one."""

    answer: once.FirstAnswer | None
    attempted: Attempted
    error: WebhookError | None = None


class Deliverer:
    """The request path, one per process, beside the Attempter it shares with the sweeper."""

    def __init__(self, attempts: Attempter) -> None:
        self.attempts = attempts
        self.router = Router()

    @property
    def config(self) -> Config:
        return self.attempts.config

    @property
    def store(self) -> Backend:
        return self.attempts.store

    def submit(self, sub: Submission) -> Delivered:
        """The first answer for this lead: placed, pending, scheduled, or a duplicate's; or the table's error
        when the lead is refused or not kept (a 5xx keeps nothing)."""
        try:
            return self._submit(sub)
        except WebhookError as err:
            return Delivered(None, Attempted(err.error, reason=err.reason), err)

    def _submit(self, sub: Submission) -> Delivered:
        route, number = sub.route, sub.number
        now = self.attempts.clock()
        number_hash = self.attempts.phone_hash(number.e164)
        claims, windows = self._claims(sub)
        counters = []
        if sub.ip_key is not None and route.rate_per_ip is not None:
            rate = route.rate_per_ip
            counters.append(Counter(keys.rate_ip(route.name, sub.ip_key), rate.seconds, rate.limit))
        if route.rate_per_phone is not None:
            rate = route.rate_per_phone
            counters.append(
                Counter(keys.rate_phone(number.e164, key=self.attempts.hash_key()), rate.seconds, rate.limit)
            )
        lead_id = new_lead_id()
        # Spec 8: no attempt outside service_hours, the first one included; such a lead is kept for the
        # next opening and FormCall hears nothing before then.
        policy = route.retry
        closed = policy is not None and not policy.in_service(now)
        # Kept before FormCall is asked, its attempt in flight: a process that dies now leaves a lead the
        # sweeper settles.
        fields: dict[str, Any] = {
            "lead_id": lead_id,
            "route": route.name,
            "received": now,
            "payload": sub.payload,
            "masked": number.masked,
            "phone_hash": number_hash,
            "keep_days": self.config.leads.keep_days,
            "claims": list(windows),
            "consent": sub.consent,
            "contact": sub.contact,
            "attribution": sub.attribution,
            "clicks": sub.clicks,
        }
        lead = Lead.admitted(**fields, in_flight_until=None if closed else now + self.attempts.lease_seconds)
        # Spec 11: the popup's pace is counted in the same round trip; over it, this record is kept instead.
        pace = deferred = None
        if route.pace is not None and not closed:
            popup = str(sub.payload["popup_uuid"])
            pace = Pace(keys.pace(popup), route.pace.seconds, route.pace.limit, now)
            deferred = Lead.admitted(**fields)
        if policy is not None and closed:
            # Kept due at the opening from the first write: a process that dies now leaves it due.
            lead = lead.held(policy.next_opening(now))
        # The lead's own id marks its claims: unique per submission, and no second random draw.
        marker = once.PENDING + lead_id
        pending_ttl = self.config.timeout_seconds + 30
        admission = Admission(
            claims=[(k, pending_ttl) for k, _ in claims],
            marker=marker,
            record=lead.to_json(),
            counters=counters,
            optout=number_hash,
            lease=None if closed else (keys.lease(lead_id), self.attempts.lease_seconds),
            pace=pace,
            deferred=deferred.to_json() if deferred is not None else None,
        )
        note = None
        deadline = time.monotonic() + self.config.timeout_seconds + 2
        while True:
            admitted = self.store.admit(admission)
            if admitted.refused == "opted_out":
                raise OptedOut("This number asked not to be called.", reason="number on the opt-out list")
            if admitted.refused == "rate_limited":
                kind = "per_ip" if "rate-ip" in admitted.counter else "per_phone"
                raise RateLimited(
                    "Too many submissions; try again later.",
                    retry_after=admitted.retry_after,
                    reason=f"rate limit {kind} exceeded",
                )
            if admitted.ok:
                break
            held = self._held(sub, admitted.held)
            if isinstance(held, Delivered):
                return held
            note = note or held
            if time.monotonic() >= deadline:
                raise FormCallUnavailable(
                    "The same submission is still being processed; try again shortly.",
                    retry_after=5,
                    reason="identical submission still in flight",
                )
            time.sleep(_POLL_SECONDS)
        if closed:
            return self._keep_until_open(lead, policy, marker, windows)
        if deferred is not None and admitted.later and admitted.slot is not None:
            return self._keep_for_slot(deferred, admitted.slot, policy, marker, windows)
        return self._first_attempt(sub, lead, marker, windows, note)

    def keep_unread(
        self, route: Route, delivery_id: tuple[str, int], unread: Unread, error: str, reason: str
    ) -> Delivered:
        """A lead whose fields its source could not give now (`error`: Meta's Graph API down, spec 5): kept
        by its id alone, due at the retry schedule's first step for the sweeper to read and then call it. Its
        delivery claim answers as scheduled; a replay of one already kept or placed is its duplicate."""
        policy = route.retry or DEFAULT_RETRY
        now = self.attempts.clock()
        lead_id = new_lead_id()
        key = keys.delivery_claim(route.name, delivery_id[0])
        windows = self._holding([(key, float(max(delivery_id[1], route.dedupe_window_seconds)))], policy)
        lead = Lead.kept_unread(
            lead_id=lead_id, route=route.name, received=now, unread=unread, keep_days=self.config.leads.keep_days,
            claims=windows, due_at=policy.next_attempt(1, error, now), last_error=error,
        )  # fmt: skip
        marker = once.PENDING + lead_id
        admission = Admission(claims=[(key, self.config.timeout_seconds + 30)], marker=marker, record=lead.to_json())
        deadline = time.monotonic() + self.config.timeout_seconds + 2
        while True:
            admitted = self.store.admit(admission)
            if admitted.ok:
                break
            answers = [v for v in admitted.held.values() if not v.startswith((once.PENDING, once.UNCERTAIN))]
            if answers:
                first = once.FirstAnswer.loads(answers[0])
                return Delivered(first, Attempted("duplicate", first.lead_id, uuid=first.uuid))
            if time.monotonic() >= deadline:
                raise FormCallUnavailable(
                    "The same lead is still being processed; try again shortly.",
                    retry_after=5,
                    reason="identical lead still in flight",
                )
            time.sleep(_POLL_SECONDS)
        answer = once.FirstAnswer(lead_id, scheduled=True)
        self._finish(lead, lead, marker, windows, answer)
        self.attempts.check_sweeper()
        return Delivered(answer, Attempted("scheduled", lead_id, lead, attempts=0, reason=reason))

    def _keep_until_open(
        self, lead: Lead, policy: RetryPolicy | None, marker: str, windows: list[tuple[str, float]]
    ) -> Delivered:
        """A lead received out of hours (or on a holiday), kept due at the next opening: its claims answer
        as scheduled (the record stays as admitted)."""
        answer = once.FirstAnswer(lead.lead_id, scheduled=True)
        self._finish(lead, lead, marker, self._holding(windows, policy), answer)
        self.attempts.check_sweeper()
        return Delivered(answer, Attempted("scheduled", lead.lead_id, lead, attempts=0, reason="outside service hours"))

    def _keep_for_slot(
        self, lead: Lead, slot: float, policy: RetryPolicy | None, marker: str, windows: list[tuple[str, float]]
    ) -> Delivered:
        """Over the popup's pace (spec 11): kept, due at the slot it took, answered as scheduled."""
        answer = once.FirstAnswer(lead.lead_id, scheduled=True)
        paced = lead.paced(slot)
        self._finish(lead, paced, marker, self._holding(windows, policy), answer)
        self.attempts.check_sweeper()
        wait = round(slot - lead.received_ts, 1)
        return Delivered(answer, Attempted("scheduled", lead.lead_id, paced, attempts=0, wait_seconds=wait,
                                           reason="over the popup's pace"))  # fmt: skip

    @staticmethod
    def _holding(windows: list[tuple[str, float]], policy: RetryPolicy | None) -> list[tuple[str, float]]:
        """While a lead waits, a resend is still this lead: its claims last until it can no longer be called."""
        return [(k, max(w, float((policy or DEFAULT_RETRY).max_age))) for k, w in windows]

    def _claims(self, sub: Submission) -> tuple[list[tuple[str, int]], list[tuple[str, float]]]:
        """The keys this lead is known by, with their windows (dedupe, and the delivery id when any)."""
        route = sub.route
        if sub.dedupe_value:
            lead_key = keys.dedupe_claim(route.name, sub.dedupe_value, key=self.attempts.hash_key())
        else:
            # The same lead whichever route it came through (spec 2).
            # A weighted route's leads go to any of its popups: the same number there is the same lead.
            popup = pool_key(route.popups) if route.popups else str(sub.payload["popup_uuid"])
            lead_key = keys.lead_claim(sub.number.e164, popup, key=self.attempts.hash_key())
        claims = [(lead_key, route.dedupe_window_seconds)]
        if sub.delivery_id is not None:
            delivery_id, window = sub.delivery_id
            scope = sub.delivery_scope or route.name
            claims.insert(0, (keys.delivery_claim(scope, delivery_id), max(window, route.dedupe_window_seconds)))
        return claims, [(k, float(w)) for k, w in claims]

    def _held(self, sub: Submission, held: Mapping[str, str]) -> Delivered | str | None:
        """Another submission holds a key: its first answer (a duplicate); or None (or a note for the log,
        when a lost answer proved no call) to wait and ask again."""
        answers = [v for v in held.values() if not v.startswith((once.PENDING, once.UNCERTAIN))]
        if answers:
            first = once.FirstAnswer.loads(answers[0])
            return Delivered(first, Attempted("duplicate", first.lead_id, uuid=first.uuid))
        uncertain = [(k, v) for k, v in held.items() if v.startswith(once.UNCERTAIN)]
        if uncertain:
            return self._settle_uncertain(sub, uncertain)
        return None

    def _settle_uncertain(self, sub: Submission, held: list[tuple[str, str]]) -> Delivered | str:
        """retry = false and an earlier attempt's answer was lost: find its call before calling again.
        The duplicate's answer when it was placed; a note for the log when it was not (call now)."""
        since, old_lead = once.parse_uncertain(held[0][1])
        waited = self.attempts.clock() - since
        if waited < self.attempts.settle_after:
            # FormCall may still be working on the first request: its call would not be listed yet.
            raise FormCallUnavailable(
                "The previous attempt is still being confirmed; try again shortly.",
                retry_after=max(1, math.ceil(self.attempts.settle_after - waited)),
                reason="previous attempt's outcome not settled yet",
            )
        stored = self.attempts.load(old_lead) if old_lead else None
        number = sub.number
        from .settle import LostAttempt  # a lost answer only: a cold start's requests never load it

        lost = LostAttempt(
            old_lead or "", str(sub.payload["popup_uuid"]), since, since + self.config.timeout_seconds,
            number.country_code + number.areacode + number.phonenumber,
        )  # fmt: skip
        try:
            found = self.attempts.settle_lost(lost)
        except ListUnavailable as err:
            raise FormCallUnavailable(
                "The previous attempt could not be confirmed yet; try again later.",
                reason=f"previous attempt unconfirmed ({err})",
            ) from err
        if found.wait_until is not None:
            raise FormCallUnavailable(
                "The previous attempt is still being confirmed; try again shortly.",
                retry_after=max(1, math.ceil(found.wait_until - self.attempts.clock())),
                reason="another attempt on the popup not settled yet",
            )
        if found.uuid is None:
            for store_key, value in held:
                self.store.release(store_key, value)
            if old_lead:
                # That attempt placed nothing: its record was a lead this delivery now carries on.
                self.store.delete_lead(old_lead)
            return "previous attempt placed no call; calling"
        answer = once.FirstAnswer(old_lead or None, found.uuid)
        for store_key, value in held:
            self.store.replace(store_key, value, answer.dumps(), sub.route.dedupe_window_seconds)
        if stored is not None and stored.state in (SCHEDULED, FAILED):
            self.attempts.save(stored, self.attempts.placed(stored, Placed(found.uuid), found.certain))
        return Delivered(answer, Attempted("duplicate", answer.lead_id, uuid=found.uuid))

    def _first_attempt(
        self, sub: Submission, lead: Lead, marker: str, windows: list[tuple[str, float]], note: str | None
    ) -> Delivered:
        policy = sub.route.retry
        started = lead.received_ts
        try:
            turn = self.attempts.attempt_once(lead, sub.payload, policy, started, first=True)
        except BaseException:
            self._finish(lead, None, marker, windows, None)
            raise
        asked, after = turn
        facts = Attempted("", lead.lead_id, after, attempts=1, formcall_ms=asked.ms, reason=note)
        err = asked.error
        if err is not None:
            facts = facts._replace(outcome=err.error, formcall_error_code=err.formcall_error_code, reason=err.reason)
            if after is not None and after.state == SCHEDULED:
                # The sweeper attempts it later (a lost answer: settled from FormCall's list first).
                answer = once.FirstAnswer(lead.lead_id, scheduled=True)
                try:
                    self._finish(lead, after, marker, self._holding(windows, policy), answer)
                except WebhookError as failed:
                    # The record admitted before FormCall was asked stands, its attempt marked: the sweeper
                    # settles it from the list and calls it. It is kept, so the sender hears so; a 503 here
                    # would have its resend kept (and called) a second time.
                    kept = f"kept as admitted ({failed.reason})"
                    facts = facts._replace(reason=f"{facts.reason}; {kept}" if facts.reason else kept)
                self.attempts.check_sweeper()
                return Delivered(answer, facts._replace(outcome="scheduled"))
            if after is not None and after.attempt.since is not None:
                # retry = false and the answer was lost: the sender's retry settles it (the claims say so).
                self.store.finish(Finish(lead.lead_id, after.to_json(), lead.version, [], marker, None,
                                         keys.lease(lead.lead_id)))  # fmt: skip
                uncertain = once.uncertain_value(started, lead.lead_id)
                for store_key, window in windows:
                    self.store.replace(store_key, marker, uncertain, window)
                return Delivered(None, facts, err)
            # Refused for good (FormCall errors 1, 5, 6): kept as failed, so it can be seen. A 5xx keeps
            # nothing: the sender retries, and its retry is a new lead.
            self._finish(lead, after, marker, windows, None)
            return Delivered(None, facts if after is not None else facts._replace(lead_id=None), err)
        assert asked.placed is not None
        assert after is not None
        answer = once.FirstAnswer(lead.lead_id, asked.placed.uuid, pending=asked.placed.pending)
        try:
            self._finish(lead, after, marker, windows, answer)
        except WebhookError as failed:
            # The call exists: answer it as placed. The record's attempt mark lets the sweeper settle it.
            facts = facts._replace(reason=failed.reason)
        wait = round(after.placed_at - lead.received_ts, 1) if after.placed_at is not None else None
        return Delivered(answer, facts._replace(outcome=str(after.state), uuid=asked.placed.uuid, wait_seconds=wait))

    def _finish(
        self,
        lead: Lead,
        new: Lead | None,
        marker: str,
        windows: list[tuple[str, float]],
        answer: once.FirstAnswer | None,
    ) -> None:
        self.store.finish(
            Finish(
                lead.lead_id,
                new.to_json() if new is not None else None,
                lead.version,
                windows,
                marker,
                answer.dumps() if answer is not None else None,
                keys.lease(lead.lead_id),
            )
        )
