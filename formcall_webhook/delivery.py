"""Place once (spec 4 and 8): keep the lead, call FormCall, then settle. No Request, no HTTP.

The request path (`submit`) and the sweeper (`attempt`) share one attempt (`_attempt`), and lost answers
are settled in one place (`_settle_lost`). Every lead is written to the
store before FormCall is called, with its attempt marked in flight, so a process that dies mid-call
leaves a record the sweeper settles from FormCall's own list instead of a lost lead or a second ring.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from . import keys, once, phones
from .config import Config, Route
from .consent import optout_hash
from .errors import (
    FormCallMisconfigured,
    FormCallUnavailable,
    Misconfigured,
    OptedOut,
    RateLimited,
    WebhookError,
)
from .formcall import INVALID_TOKEN, FormCallClient, FormCallUncertain, ListUnavailable, Placed, list_days
from .logs import RequestLogger
from .records import FAILED, SCHEDULED, Lead, new_lead_id
from .secret_store import SecretStore
from .settle import Holder, LostAttempt, Settled, rows_of, settle
from .states import DEFAULT_RETRY, RetryPolicy
from .stores import Admission, Backend, Counter, Finish

MISCONFIGURED = "The function is not configured correctly; its log says why."
# A lost answer is settled from FormCall's list only after this many timeouts since the attempt.
SETTLE_TIMEOUTS = 2
_POLL_SECONDS = 0.05
# Spec 8's heartbeat: a lead kept for later while the last sweep is older than this is logged, at most
# once per this long per process.
STALE_SWEEP_SECONDS = 300.0
# The opt-out list's hashes and the records' phone index are keyed with leads.hash_key; without one,
# with this (a leaked store then needs only this public key to be brute-forced: `check` says so).
DEFAULT_HASH_KEY = b"formcall-webhook/phone-hash/v1"


@dataclass(frozen=True)
class Submission:
    """A lead that passed the guards and whose number is valid: what delivery needs of the request."""

    route: Route
    lead: phones.Lead
    payload: Mapping[str, Any]  # the FormCall payload, without the token
    dedupe_value: str = ""  # the route's dedupe template rendered; "" for the default key
    delivery: tuple[str, int] | None = None  # (a delivery id to catch replays by, its window in seconds)
    ip_key: str | None = None
    consent: Mapping[str, Any] | None = None
    # Who the outcome is reported on in the CRM (spec 9): the contact id and email, kept until it is.
    contact: Mapping[str, Any] | None = None


@dataclass
class Report:
    """What the log line says about a delivery; filled in as it goes."""

    outcome: str = ""
    lead_id: str | None = None
    uuid: str | None = None
    formcall_error_code: int | None = None
    formcall_ms: float | None = None
    attempts: int | None = None
    wait_seconds: float | None = None
    reason: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Deliverer:
    """One per process, beside the config, the store, the FormCall client and the secrets."""

    def __init__(
        self,
        config: Config,
        store: Backend,
        client: FormCallClient,
        secrets: SecretStore,
        clock: Callable[[], float] = time.time,
        logger: RequestLogger | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.client = client
        self.secrets = secrets
        # Epoch seconds now: tests drive the lead's times (due, max_age, service hours) with their own.
        self.clock = clock
        self.logger = logger
        self._hash_key: bytes | None = None
        self._stale_lock = threading.Lock()
        self._stale_next = 0.0

    # -- shared --

    @property
    def settle_after(self) -> float:
        return self.config.timeout_seconds * SETTLE_TIMEOUTS

    @property
    def lease_seconds(self) -> float:
        # Covers one attempt with its token refetch and a slow store, and no more.
        return self.config.timeout_seconds * 2 + 20

    def hash_key(self) -> bytes:
        if self._hash_key is None:
            ref = self.config.leads.hash_key
            self._hash_key = self.secrets.resolve(ref).encode("utf-8") if ref else DEFAULT_HASH_KEY
        return self._hash_key

    def phone_hash(self, e164: str) -> str:
        """The keyed hash a number is known by in the store: the opt-out list never holds numbers."""
        return optout_hash(self.hash_key(), e164)

    def token(self) -> str:
        if self.config.security_token is None:
            raise Misconfigured(
                MISCONFIGURED,
                reason="no FormCall token: set FORMCALL_SECURITY_TOKEN, FORMCALL_SECURITY_TOKEN_SECRET "
                "or formcall.security_token",
            )
        return self.secrets.resolve(self.config.security_token)

    def place(self, payload: Mapping[str, Any], report: Report) -> Placed:
        """One FormCall request (and one more after error 8 when the token was rotated)."""
        token = self.token()
        started = time.perf_counter()
        try:
            try:
                return self.client.place_call({**payload, "security_token": token})
            except FormCallMisconfigured as err:
                if err.formcall_error_code != INVALID_TOKEN or self.config.security_token is None:
                    raise
                # The token may have been rotated: fetch it again and, if it changed, try once more.
                # Error 8 means nothing was queued, so this retry cannot ring anyone twice.
                self.secrets.invalidate(self.config.security_token)
                fresh = self.secrets.resolve(self.config.security_token)
                if fresh == token:
                    raise
                return self.client.place_call({**payload, "security_token": fresh})
        finally:
            report.formcall_ms = round((time.perf_counter() - started) * 1000, 1)

    def policy(self, route_name: str) -> RetryPolicy | None:
        route = self.config.routes.get(route_name)
        if route is None:
            # The route left the config while its lead waited: keep trying it the default way.
            return DEFAULT_RETRY
        return route.retry

    def keep_fields(self) -> str:
        return self.config.leads.keep_fields

    def check_sweeper(self) -> None:
        """Spec 8's heartbeat, read when the request path keeps a lead for later: WARNING sweeper_stale
        when the last sweep is older than 5 minutes (shared stores; memory:// sweeps itself), at most
        once per 5 minutes per process, so a stopped Scheduler job is seen before leads age out."""
        if self.logger is None or self.config.store_url.startswith("memory://"):
            return
        now = self.clock()
        with self._stale_lock:
            if now < self._stale_next:
                return
            self._stale_next = now + STALE_SWEEP_SECONDS
        try:
            beat = self.store.read_heartbeat()
        except WebhookError:
            return  # the lead is kept; an unread heartbeat is no reason to fail its request
        last = beat.get("at") if beat is not None else None
        if isinstance(last, (int, float)) and now - last <= STALE_SWEEP_SECONDS:
            return
        since = f"the last sweep was {round(now - last)} s ago" if isinstance(last, (int, float)) else "no sweep yet"
        self.logger.write(
            "WARNING",
            f"sweeper_stale: {since}; is the Cloud Scheduler job calling formcall_sweep?",
            {"outcome": "sweeper_stale", "source": "request", "reason": since},
            {},
        )

    # -- the request path --

    def submit(self, sub: Submission, report: Report) -> once.FirstAnswer:
        """The first answer for this lead: placed, pending, scheduled, or a duplicate's (report.outcome says).

        Raises the table's error when the lead is refused or not kept (a 5xx keeps nothing).
        """
        route, person = sub.route, sub.lead
        now = self.clock()
        number_hash = self.phone_hash(person.e164)
        claims, windows = self._claims(sub)
        counters = []
        if sub.ip_key is not None and route.rate_per_ip is not None:
            rate = route.rate_per_ip
            counters.append(Counter(keys.rate_ip(route.name, sub.ip_key), rate.seconds, rate.count))
        if route.rate_per_phone is not None:
            rate = route.rate_per_phone
            counters.append(Counter(keys.rate_phone(person.e164), rate.seconds, rate.count))
        lead_id = new_lead_id()
        # Spec 8: no attempt outside service_hours, the first one included; such a lead is kept for the
        # next opening and FormCall hears nothing before then.
        policy = route.retry
        closed = policy is not None and not policy.in_service(now)
        # Kept before FormCall is asked, its attempt in flight: a process that dies now leaves a lead the
        # sweeper settles.
        lead = Lead.admitted(
            lead_id=lead_id,
            route=route.name,
            received=now,
            payload=sub.payload,
            masked=person.masked,
            phone_hash=number_hash,
            keep_days=self.config.leads.keep_days,
            claims=list(windows),
            consent=sub.consent,
            contact=sub.contact,
            in_flight_until=None if closed else now + self.lease_seconds,
        )
        if closed:
            assert policy is not None
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
            lease=None if closed else (keys.lease(lead_id), self.lease_seconds),
        )
        report.lead_id = lead_id
        deadline = time.monotonic() + self.config.timeout_seconds + 2
        while True:
            admitted = self.store.admit(admission)
            if admitted.refused == "opted_out":
                report.lead_id = None
                raise OptedOut("This number asked not to be called.", reason="number on the opt-out list")
            if admitted.refused == "rate_limited":
                report.lead_id = None
                kind = "per_ip" if "rate-ip" in admitted.counter else "per_phone"
                raise RateLimited(
                    "Too many submissions; try again later.",
                    retry_after=admitted.retry_after,
                    reason=f"rate limit {kind} exceeded",
                )
            if admitted.ok:
                break
            first = self._held(sub, admitted.held, report)
            if first is not None:
                return first
            if time.monotonic() >= deadline:
                report.lead_id = None
                raise FormCallUnavailable(
                    "The same submission is still being processed; try again shortly.",
                    retry_after=5,
                    reason="identical submission still in flight",
                )
            time.sleep(_POLL_SECONDS)
        if closed:
            return self._keep_until_open(lead, policy, marker, windows, report)
        return self._first_attempt(sub, lead, marker, windows, report)

    def _keep_until_open(
        self, lead: Lead, policy: RetryPolicy | None, marker: str, windows: list[tuple[str, float]], report: Report
    ) -> once.FirstAnswer:
        """A lead received out of hours (or on a holiday), kept due at the next opening: its claims answer
        as scheduled (the record stays as admitted)."""
        answer = once.FirstAnswer(lead.lead_id, scheduled=True)
        self._finish(lead, lead, marker, self._holding(windows, policy), answer)
        self.check_sweeper()
        report.outcome = "scheduled"
        report.attempts = 0
        report.reason = "outside service hours"
        return answer

    @staticmethod
    def _holding(windows: list[tuple[str, float]], policy: RetryPolicy | None) -> list[tuple[str, float]]:
        """While a lead waits, a resend is still this lead: its claims last until it can no longer be called."""
        return [(k, max(w, float((policy or DEFAULT_RETRY).max_age))) for k, w in windows]

    def _claims(self, sub: Submission) -> tuple[list[tuple[str, int]], list[tuple[str, float]]]:
        """The keys this lead is known by, with their windows (dedupe, and the delivery id when any)."""
        route = sub.route
        if sub.dedupe_value:
            lead_key = keys.dedupe_claim(route.name, sub.dedupe_value)
        else:
            # The same lead whichever route it came through (spec 2).
            lead_key = keys.lead_claim(sub.lead.e164, str(sub.payload["popup_uuid"]))
        claims = [(lead_key, route.dedupe_window_seconds)]
        if sub.delivery is not None:
            delivery_id, window = sub.delivery
            claims.insert(0, (keys.delivery_claim(route.name, delivery_id), max(window, route.dedupe_window_seconds)))
        return claims, [(k, float(w)) for k, w in claims]

    def _held(self, sub: Submission, held: Mapping[str, str], report: Report) -> once.FirstAnswer | None:
        """Another submission holds a key: its first answer (a duplicate), or None to wait and ask again."""
        values = list(held.values())
        answers = [v for v in values if not v.startswith((once.PENDING, once.UNCERTAIN))]
        if answers:
            first = once.FirstAnswer.loads(answers[0])
            report.outcome = "duplicate"
            report.lead_id = first.lead_id
            report.uuid = first.uuid
            return first
        uncertain = [(k, v) for k, v in held.items() if v.startswith(once.UNCERTAIN)]
        if uncertain:
            return self._settle_uncertain(sub, uncertain, report)
        return None

    def _settle_uncertain(
        self, sub: Submission, held: list[tuple[str, str]], report: Report
    ) -> once.FirstAnswer | None:
        """retry = false and an earlier attempt's answer was lost: find its call before calling again."""
        since, old_lead = once.parse_uncertain(held[0][1])
        waited = self.clock() - since
        if waited < self.settle_after:
            # FormCall may still be working on the first request: its call would not be listed yet.
            raise FormCallUnavailable(
                "The previous attempt is still being confirmed; try again shortly.",
                retry_after=max(1, math.ceil(self.settle_after - waited)),
                reason="previous attempt's outcome not settled yet",
            )
        stored = self._load(old_lead) if old_lead else None
        person = sub.lead
        lost = LostAttempt(
            old_lead or "", str(sub.payload["popup_uuid"]), since, since + self.config.timeout_seconds,
            person.country_code + person.areacode + person.phonenumber,
        )  # fmt: skip
        try:
            found = self._settle_lost(lost)
        except ListUnavailable as err:
            raise FormCallUnavailable(
                "The previous attempt could not be confirmed yet; try again later.",
                reason=f"previous attempt unconfirmed ({err})",
            ) from err
        if found.uuid is None:
            for store_key, value in held:
                self.store.release(store_key, value)
            if old_lead:
                # That attempt placed nothing: its record was a lead this delivery now carries on.
                self.store.delete_lead(old_lead)
            report.reason = "previous attempt placed no call; calling"
            return None
        answer = once.FirstAnswer(old_lead or None, found.uuid)
        for store_key, value in held:
            self.store.replace(store_key, value, answer.dumps(), sub.route.dedupe_window_seconds)
        if stored is not None and stored.state in (SCHEDULED, FAILED):
            self._save(stored, self._placed(stored, Placed(found.uuid), found.certain))
        report.outcome = "duplicate"
        report.lead_id, report.uuid = answer.lead_id, found.uuid
        return answer

    def _first_attempt(
        self, sub: Submission, lead: Lead, marker: str, windows: list[tuple[str, float]], report: Report
    ) -> once.FirstAnswer:
        policy = sub.route.retry
        started = lead.received_ts
        report.attempts = 1
        try:
            placed = self.place(sub.payload, report)
        except WebhookError as err:
            report.formcall_error_code = err.formcall_error_code
            report.reason = err.reason
            after = self._after_error(lead, err, policy, started, first=True)
            if after is not None and after.state == SCHEDULED:
                # The sweeper attempts it later (a lost answer: settled from FormCall's list first).
                answer = once.FirstAnswer(lead.lead_id, scheduled=True)
                self._finish(lead, after, marker, self._holding(windows, policy), answer)
                self.check_sweeper()
                report.outcome = "scheduled"
                return answer
            if after is not None and after.attempt.since is not None:
                # retry = false and the answer was lost: the sender's retry settles it (the claims say so).
                self.store.finish(Finish(lead.lead_id, after.to_json(), lead.version, [], marker, None,
                                         keys.lease(lead.lead_id)))  # fmt: skip
                uncertain = once.uncertain_value(started, lead.lead_id)
                for store_key, window in windows:
                    self.store.replace(store_key, marker, uncertain, window)
                raise
            # Refused for good (FormCall errors 1, 5, 6): kept as failed, so it can be seen. A 5xx keeps
            # nothing: the sender retries, and its retry is a new lead.
            self._finish(lead, after, marker, windows, None)
            if after is None:
                report.lead_id = None
            raise
        except BaseException:
            self._finish(lead, None, marker, windows, None)
            report.lead_id = None
            raise
        now = self.clock()
        done = self._placed(lead, placed)
        answer = once.FirstAnswer(lead.lead_id, placed.uuid, pending=placed.pending)
        try:
            self._finish(lead, done, marker, windows, answer)
        except WebhookError as err:
            # The call exists: answer it as placed. The record's attempt mark lets the sweeper settle it.
            report.reason = err.reason
        report.outcome = str(done.state)
        report.uuid = placed.uuid
        report.wait_seconds = round(now - lead.received_ts, 1)
        return answer

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

    # -- one rule for both paths --

    def _after_error(
        self, lead: Lead, err: WebhookError, policy: RetryPolicy | None, started: float, *, first: bool
    ) -> Lead | None:
        """What a lead becomes after an attempt that ended in `err`; None: nothing is kept (a first
        attempt's 5xx, which the sender retries as a new lead)."""
        now = self.clock()
        if isinstance(err, FormCallUncertain):
            if first and (policy is None or not policy.covers(err.error)):
                # retry = false: failed, its attempt still marked until the sender's retry settles it.
                return lead.failed(err.error, keep_fields=self.keep_fields(), since=started)
            # Scheduled: the sweeper settles it from FormCall's list before any new attempt.
            policy = policy or DEFAULT_RETRY
            due = max(policy.next_attempt(lead.attempts, err.error, now), started + self.settle_after)
            return lead.scheduled(due_at=due, last_error=err.error, since=started)
        if first:
            if policy is not None and policy.covers(err.error):
                return lead.scheduled(due_at=policy.next_attempt(1, err.error, now), last_error=err.error)
            return lead.failed(err.error, keep_fields=self.keep_fields()) if err.status < 500 else None
        policy = policy or DEFAULT_RETRY
        if err.status == 422:
            # FormCall refused the number or its country for good: no later attempt can succeed.
            return lead.failed(err.error, keep_fields=self.keep_fields())
        # Anything else may mend (FormCall back, the token fixed): until max_age, try again.
        due = policy.next_attempt(lead.attempts, err.error, now)
        if due >= lead.age_from + policy.max_age:
            return lead.failed(err.error, keep_fields=self.keep_fields())
        return lead.scheduled(due_at=due, last_error=err.error)

    def _placed(self, lead: Lead, placed: Placed, certain: bool = True) -> Lead:
        """A placed or pending lead: due again for its outcome work (spec 9), else done and minimized.
        A uuid that could not be told apart gets no outcome report."""
        route = self.config.routes.get(lead.route)
        outcome = route.outcome if route is not None and certain else None
        done = lead.placed(placed.uuid, pending=placed.pending, now=self.clock(),
                           work_after=outcome.after if outcome is not None else None,
                           keep_fields=self.keep_fields())  # fmt: skip
        return done if certain else done.uncertain()

    def _settle_lost(self, lost: LostAttempt) -> Settled:
        """The one place a lost answer is settled (spec 8): FormCall's list for the attempt's window, the
        uuids other leads on the popup hold, and the other lost answers there. ListUnavailable when the
        list cannot be read whole."""
        token = self.token()
        rows = []
        for day in list_days(lost.start, lost.end + 60):
            listing = self.client.list_calls(token, lost.popup_uuid, day)
            if not isinstance(listing, list):
                raise ListUnavailable("/calls/list did not answer a list")
            rows.extend(rows_of(listing))
        holders: list[Holder] = []
        rivals: list[LostAttempt] = []
        # A lead holding a uuid from this window was received at most its max_age (or a day) before.
        ages = [r.retry.max_age for r in self.config.routes.values() if r.retry is not None]
        horizon = lost.start - max([DEFAULT_RETRY.max_age, *ages]) - 86400
        for record in self.store.scan_leads(since=horizon):
            other = Lead.from_json(record)
            if other.lead_id == lost.lead_id or (other.popup_uuid or "").lower() != lost.popup_uuid.lower():
                continue
            if other.uuid:
                holders.append(Holder(other.lead_id, other.uuid.lower(), other.uuid_certain))
            elif other.attempt.since is not None:
                since = other.attempt.since
                rivals.append(LostAttempt(other.lead_id, lost.popup_uuid, since, since + self.config.timeout_seconds))
        return settle(lost, rows, holders, rivals)

    # -- the sweeper's attempts --

    def attempt(self, record: Mapping[str, Any], report: Report) -> Lead | None:
        """Deliver one due, scheduled lead (the caller holds its lease); the lead as saved, or None when
        another writer changed it first. Every change is conditional on the version read."""
        lead = Lead.from_json(record)
        policy = self.policy(lead.route) or DEFAULT_RETRY
        now = self.clock()
        report.lead_id = lead.lead_id
        report.attempts = lead.attempts
        if lead.phone_hash and self.store.is_opted_out(lead.phone_hash):
            report.outcome = "opted_out"
            return self._save(lead, lead.failed("opted_out", keep_fields="keep"))
        if policy.expired(lead.age_from, now):
            return self._give_up(lead, lead.last_error or "formcall_unavailable", report)
        if lead.attempt.since is not None:
            handled, saved = self._settle_record(lead, lead.attempt.since, policy, now, report)
            if handled:
                return saved
            unmarked = self._save(lead, lead.unmarked())
            if unmarked is None:
                return None
            lead = unmarked
        if not policy.in_service(now):
            report.outcome = "scheduled"
            report.reason = "outside service hours"
            return self._save(lead, lead.waiting(policy.next_opening(now)))
        if lead.payload is None:
            return self._give_up(lead, "misconfigured", report, reason="the record no longer holds the number")
        payload = lead.payload
        started = self.clock()
        in_flight = self._save(lead, lead.in_flight(started, started + self.lease_seconds))
        if in_flight is None:
            return None
        report.attempts = in_flight.attempts
        try:
            placed = self.place(payload, report)
        except WebhookError as err:
            if not isinstance(err, FormCallUncertain):
                report.formcall_error_code = err.formcall_error_code
            report.reason = err.reason
            after = self._after_error(in_flight, err, policy, started, first=False)
            assert after is not None
            if after.state == FAILED:
                report.outcome = "lead_failed"
                report.reason = report.reason or f"given up after {after.attempts} attempts: {err.error}"
            else:
                report.outcome = "scheduled"
            return self._save(in_flight, after)
        return self._sweep_placed(in_flight, placed, report)

    def _settle_record(
        self, lead: Lead, since: float, policy: RetryPolicy, now: float, report: Report
    ) -> tuple[bool, Lead | None]:
        """An attempt whose answer was lost: its call, from FormCall's list, before any new attempt.
        (True, the lead as saved or None when another writer won) when this settles it for now (placed,
        or waiting); (False, None) to go on and call."""
        if now - since < self.settle_after:
            report.outcome = "scheduled"
            report.reason = "previous attempt not settled yet"
            return True, self._save(lead, lead.waiting(since + self.settle_after))
        payload = lead.payload or {}
        digits = "".join(str(payload.get(k) or "") for k in ("country_code", "areacode", "phonenumber"))
        lost = LostAttempt(lead.lead_id, str(lead.popup_uuid), since, since + self.config.timeout_seconds, digits)
        try:
            found = self._settle_lost(lost)
        except ListUnavailable as err:
            report.outcome = "scheduled"
            report.reason = f"previous attempt unconfirmed ({err})"
            due = policy.next_attempt(lead.attempts or 1, "formcall_unavailable", now)
            return True, self._save(lead, lead.waiting(due))
        if found.uuid is None:
            report.reason = "previous attempt placed no call; calling"
            return False, None
        report.reason = "previous attempt's call found in FormCall's list"
        if not found.certain:
            report.extra["uuid_certain"] = False
        return True, self._sweep_placed(lead, Placed(found.uuid), report, found.certain)

    def _sweep_placed(self, lead: Lead, placed: Placed, report: Report, certain: bool = True) -> Lead | None:
        now = self.clock()
        saved = self._save(lead, self._placed(lead, placed, certain))
        if saved is None:
            return None
        # Duplicates from now on carry the uuid too.
        scheduled = once.FirstAnswer(lead.lead_id, scheduled=True).dumps()
        answer = once.FirstAnswer(lead.lead_id, placed.uuid, pending=placed.pending).dumps()
        for store_key, window in lead.claims:
            self.store.replace(store_key, scheduled, answer, window)
        report.outcome = str(saved.state)
        report.uuid = placed.uuid
        report.wait_seconds = round(now - lead.received_ts, 1)
        return saved

    def _give_up(self, lead: Lead, word: str, report: Report, reason: str | None = None) -> Lead | None:
        report.outcome = "lead_failed"
        report.reason = reason or report.reason or f"given up after {lead.attempts} attempts: {word}"
        return self._save(lead, lead.failed(word, keep_fields=self.keep_fields()))

    def _load(self, lead_id: str) -> Lead | None:
        record = self.store.get_lead(lead_id)
        return Lead.from_json(record) if record is not None else None

    def _save(self, old: Lead, new: Lead) -> Lead | None:
        """`new` written when the stored lead is still `old`'s version; None when another writer won."""
        return new if self.store.save_lead(new.to_json(), old.version) else None
