"""Place once (spec 4 and 8): keep the lead, call FormCall, then settle. No Request, no HTTP.

The request path (`submit`) and the sweeper (`attempt`) share it. Every lead is written to the
store before FormCall is called, with its attempt marked in flight, so a process that dies mid-call
leaves a record the sweeper settles from FormCall's own list instead of a lost lead or a second ring.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from . import once, phones, records
from .clients.formcall import (
    INVALID_TOKEN,
    FormCallClient,
    FormCallUncertain,
    ListUnavailable,
    Placed,
    ReconcileUnknown,
)
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
from .secret_store import SecretStore
from .states import DEFAULT_RETRY, RetryPolicy
from .stores import Admission, Backend, Counter, Finish

MISCONFIGURED = "The function is not configured correctly; its log says why."
# A lost answer is settled from FormCall's list only after this many timeouts since the attempt.
SETTLE_TIMEOUTS = 2
_POLL_SECONDS = 0.05
# The opt-out list's hashes and the records' phone index are keyed with leads.hash_key; without one,
# with this (a leaked store then needs only this public key to be brute-forced: `check` says so).
DEFAULT_HASH_KEY = b"formcall-webhook/phone-hash/v1"


@dataclass(frozen=True)
class Submission:
    """A lead that passed the guards and whose number is valid: what delivery needs of the request."""

    route: Route
    lead: phones.Number
    payload: Mapping[str, Any]  # the FormCall payload, without the token
    dedupe_value: str = ""  # the route's dedupe template rendered; "" for the default key
    delivery: tuple[str, int] | None = None  # (a delivery id to catch replays by, its window in seconds)
    ip_key: str | None = None
    consent: Mapping[str, Any] | None = None
    # Who the outcome is reported on in the CRM (spec 9): the contact id and email, kept until it is.
    contact: Mapping[str, Any] | None = None
    # The campaign it came from (spec 10: utm_* fields, kept for keep_days whatever keep_fields says).
    attribution: Mapping[str, str] | None = None


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

    def __init__(self, config: Config, store: Backend, client: FormCallClient, secrets: SecretStore) -> None:
        self.config = config
        self.store = store
        self.client = client
        self.secrets = secrets
        self._hash_key: bytes | None = None

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

    # -- the request path --

    def submit(self, sub: Submission, report: Report) -> once.FirstAnswer:
        """The first answer for this lead: placed, pending, scheduled, or a duplicate's (report.outcome says).

        Raises the table's error when the lead is refused or not kept (a 5xx keeps nothing).
        """
        route, lead = sub.route, sub.lead
        now = time.time()
        number_hash = self.phone_hash(lead.e164)
        claims, windows = self._claims(sub)
        counters = []
        if sub.ip_key is not None and route.rate_per_ip is not None:
            rate = route.rate_per_ip
            counters.append(Counter(once.key(route.name, "rate-ip", sub.ip_key), rate.seconds, rate.count))
        if route.rate_per_phone is not None:
            rate = route.rate_per_phone
            counters.append(Counter(once.key(once.ANY_ROUTE, "rate-phone", lead.e164), rate.seconds, rate.count))
        lead_id = records.new_lead_id()
        record = records.new_record(
            lead_id=lead_id,
            route=route.name,
            received=now,
            payload=sub.payload,
            masked=lead.masked,
            phone_hash=number_hash,
            keep_days=self.config.leads.keep_days,
            claims=list(windows),
            consent=sub.consent,
        )
        # Kept before FormCall is asked: a process that dies now leaves a lead the sweeper settles.
        record = {**record, "attempts": 1, "attempt_since": now, "due_at": now + self.lease_seconds}
        if sub.contact:
            record["contact"] = dict(sub.contact)
        if sub.attribution:
            record.update(sub.attribution)
        # The lead's own id marks its claims: unique per submission, and no second random draw.
        marker = once.PENDING + lead_id
        pending_ttl = self.config.timeout_seconds + 30
        admission = Admission(
            claims=[(k, pending_ttl) for k, _ in claims],
            marker=marker,
            record=record,
            counters=counters,
            optout=number_hash,
            lease=(once.lease_key(lead_id), self.lease_seconds),
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
        return self._first_attempt(sub, record, marker, windows, report)

    def _claims(self, sub: Submission) -> tuple[list[tuple[str, int]], list[tuple[str, float]]]:
        """The keys this lead is known by, with their windows (dedupe, and the delivery id when any)."""
        route = sub.route
        if sub.dedupe_value:
            lead_key = once.key(route.name, "lead", sub.dedupe_value)
        else:
            # The same lead whichever route it came through (spec 2).
            lead_key = once.key(once.ANY_ROUTE, "lead", f"{sub.lead.e164}|{sub.payload['popup_uuid']}")
        claims = [(lead_key, route.dedupe_window_seconds)]
        if sub.delivery is not None:
            delivery_id, window = sub.delivery
            claims.insert(0, (once.key(route.name, "delivery", delivery_id), max(window, route.dedupe_window_seconds)))
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
        waited = time.time() - since
        if waited < self.settle_after:
            # FormCall may still be working on the first request: its call would not be listed yet.
            raise FormCallUnavailable(
                "The previous attempt is still being confirmed; try again shortly.",
                retry_after=max(1, math.ceil(self.settle_after - waited)),
                reason="previous attempt's outcome not settled yet",
            )
        digits = sub.lead.country_code + sub.lead.areacode + sub.lead.phonenumber
        try:
            uuid = self.client.find_call(self.token(), str(sub.payload["popup_uuid"]), digits, since)
        except ListUnavailable as err:
            raise FormCallUnavailable(
                "The previous attempt could not be confirmed yet; try again later.",
                reason=f"previous attempt unconfirmed ({err})",
            ) from err
        except ReconcileUnknown as err:
            uuid = None
            report.reason = f"previous attempt unconfirmed ({err}); calling again"
        if uuid is None:
            for store_key, value in held:
                self.store.release(store_key, value)
            if old_lead:
                # That attempt placed nothing: its record was a lead this delivery now carries on.
                self.store.delete_lead(old_lead)
            if report.reason is None:
                report.reason = "previous attempt placed no call; calling"
            return None
        answer = once.FirstAnswer(old_lead or None, uuid)
        for store_key, value in held:
            self.store.replace(store_key, value, answer.dumps(), sub.route.dedupe_window_seconds)
        stored = self.store.get_lead(old_lead) if old_lead else None
        if stored is not None and stored["state"] != records.PLACED:
            self.store.save_lead(
                records.changed(stored, state=records.PLACED, uuid=uuid, last_error=None, attempt_since=None),
                stored["version"],
            )
        report.outcome = "duplicate"
        report.lead_id, report.uuid = answer.lead_id, uuid
        return answer

    def _first_attempt(
        self,
        sub: Submission,
        record: dict[str, Any],
        marker: str,
        windows: list[tuple[str, float]],
        report: Report,
    ) -> once.FirstAnswer:
        lead_id = record["lead_id"]
        policy = sub.route.retry
        started = record["attempt_since"]
        report.attempts = 1
        try:
            placed = self.place(sub.payload, report)
        except FormCallUncertain as err:
            report.reason = err.reason
            if policy is not None and policy.covers(err.error):
                # Scheduled: the sweeper settles it from FormCall's list before any new attempt.
                due = max(policy.next_attempt(1, err.error, time.time()), started + self.settle_after)
                return self._keep(record, marker, windows, err, due, policy, report, attempt_since=started)
            # retry = false: the sender's retry settles it (the claims say so); nothing stays due.
            failed = records.changed(
                record,
                state=records.FAILED,
                last_error=err.error,
                due_at=None,
                **self._minimized(record, records.FAILED),
            )
            uncertain = once.uncertain_value(started, lead_id)
            self.store.finish(Finish(lead_id, failed, record["version"], [], marker, None, once.lease_key(lead_id)))
            for store_key, window in windows:
                self.store.replace(store_key, marker, uncertain, window)
            raise
        except WebhookError as err:
            report.formcall_error_code = err.formcall_error_code
            report.reason = err.reason
            if policy is not None and policy.covers(err.error):
                due = policy.next_attempt(1, err.error, time.time())
                return self._keep(record, marker, windows, err, due, policy, report)
            if err.status < 500:
                # Refused for good (FormCall errors 1, 5, 6): kept as failed, so it can be seen.
                failed = records.changed(record, state=records.FAILED, last_error=err.error, due_at=None,
                                         attempt_since=None, **self._minimized(record, records.FAILED))  # fmt: skip
                self._finish(record, failed, marker, windows, None)
            else:
                # A 5xx keeps nothing: the sender retries, and its retry is a new lead.
                self._finish(record, None, marker, windows, None)
                report.lead_id = None
            raise
        except BaseException:
            self._finish(record, None, marker, windows, None)
            report.lead_id = None
            raise
        return self._placed(record, marker, windows, placed, report)

    def _keep(
        self,
        record: dict[str, Any],
        marker: str,
        windows: list[tuple[str, float]],
        err: WebhookError,
        due: float,
        policy: RetryPolicy,
        report: Report,
        attempt_since: float | None = None,
    ) -> once.FirstAnswer:
        kept = records.changed(
            record, state=records.SCHEDULED, last_error=err.error, due_at=due, attempt_since=attempt_since
        )
        answer = once.FirstAnswer(record["lead_id"], scheduled=True)
        # While the lead waits, a resend is still this lead: hold the claims until it can no longer be called.
        holding = [(k, max(w, float(policy.max_age))) for k, w in windows]
        self._finish(record, kept, marker, holding, answer)
        report.outcome = "scheduled"
        return answer

    def _placed(
        self, record: dict[str, Any], marker: str, windows: list[tuple[str, float]], placed: Placed, report: Report
    ) -> once.FirstAnswer:
        now = time.time()
        state, fields = self._placed_fields(record, placed, now)
        done = records.changed(record, **fields)
        answer = once.FirstAnswer(record["lead_id"], placed.uuid, pending=placed.pending)
        try:
            self._finish(record, done, marker, windows, answer)
        except WebhookError as err:
            # The call exists: answer it as placed. The record's attempt mark lets the sweeper settle it.
            report.reason = err.reason
        report.outcome = state
        report.uuid = placed.uuid
        report.wait_seconds = round(now - record["received_ts"], 1)
        return answer

    def _placed_fields(self, record: Mapping[str, Any], placed: Placed, now: float) -> tuple[str, dict[str, Any]]:
        """A placed or pending lead: due again for its outcome work (spec 9), else done and minimized."""
        route = self.config.routes.get(record["route"])
        outcome = route.outcome_reporting if route is not None else None
        state = records.PENDING if placed.pending else records.PLACED
        fields: dict[str, Any] = {"state": state, "uuid": placed.uuid, "last_error": None, "attempt_since": None,
                                  "placed_at": now, "due_at": None}  # fmt: skip
        if outcome is not None and placed.uuid:
            fields["due_at"] = now + outcome.after
            fields["outcome"] = {"due": True}
        else:
            fields.update(self._minimized(record, state))
        return state, fields

    def _minimized(self, record: Mapping[str, Any], state: str) -> dict[str, Any]:
        return records.minimized(record, state) if self.config.leads.keep_fields == "until_done" else {}

    def _finish(
        self,
        record: Mapping[str, Any],
        new: Mapping[str, Any] | None,
        marker: str,
        windows: list[tuple[str, float]],
        answer: once.FirstAnswer | None,
    ) -> None:
        lead_id = record["lead_id"]
        self.store.finish(
            Finish(
                lead_id,
                new,
                record["version"],
                windows,
                marker,
                answer.dumps() if answer is not None else None,
                once.lease_key(lead_id),
            )
        )

    # -- the sweeper's attempts --

    def attempt(self, record: dict[str, Any], report: Report) -> dict[str, Any] | None:
        """Deliver one due, scheduled lead (the caller holds its lease); the record as saved, or None
        when another writer changed it first. Every change is conditional on the version read."""
        policy = self.policy(record["route"]) or DEFAULT_RETRY
        now = time.time()
        report.lead_id = record["lead_id"]
        report.attempts = record.get("attempts") or 0
        if record.get("phone_hash") and self.store.is_opted_out(record["phone_hash"]):
            report.outcome = "opted_out"
            return self._save(record, state=records.FAILED, last_error="opted_out", due_at=None, attempt_since=None)
        if policy.expired(_age_from(record), now):
            return self._give_up(record, record.get("last_error") or "formcall_unavailable", report)
        since = record.get("attempt_since")
        if since is not None:
            settled = self._settle_record(record, since, policy, now, report)
            if settled is not None:
                return settled
            record = self._save(record, attempt_since=None) or {}
            if not record:
                return None
        if not policy.in_service(now):
            report.outcome = "scheduled"
            report.reason = "outside service hours"
            return self._save(record, due_at=policy.next_opening(now))
        payload = record.get("payload")
        if not isinstance(payload, dict):
            return self._give_up(record, "misconfigured", report, reason="the record no longer holds the number")
        attempts = int(record.get("attempts") or 0) + 1
        report.attempts = attempts
        started = time.time()
        in_flight = self._save(record, attempts=attempts, attempt_since=started, due_at=started + self.lease_seconds)
        if in_flight is None:
            return None
        try:
            placed = self.place(payload, report)
        except FormCallUncertain as err:
            report.reason = err.reason
            due = max(policy.next_attempt(attempts, err.error, time.time()), started + self.settle_after)
            return self._reschedule(in_flight, err.error, due, policy, report, attempt_since=started)
        except WebhookError as err:
            report.formcall_error_code = err.formcall_error_code
            report.reason = err.reason
            if err.status == 422:
                # FormCall refused the number or its country for good: no later attempt can succeed.
                return self._give_up(in_flight, err.error, report)
            # Anything else may mend (FormCall back, the token fixed): until max_age, try again.
            due = policy.next_attempt(attempts, err.error, time.time())
            return self._reschedule(in_flight, err.error, due, policy, report)
        return self._sweep_placed(in_flight, placed, report)

    def _settle_record(
        self, record: dict[str, Any], since: float, policy: RetryPolicy, now: float, report: Report
    ) -> dict[str, Any] | None:
        """An attempt whose answer was lost: its call, from FormCall's list, before any new attempt.
        The record as saved when this settles it (placed, or waiting); None to go on and call."""
        if now - since < self.settle_after:
            report.outcome = "scheduled"
            report.reason = "previous attempt not settled yet"
            return self._save(record, due_at=since + self.settle_after) or {}
        payload = record.get("payload") or {}
        digits = "".join(str(payload.get(k) or "") for k in ("country_code", "areacode", "phonenumber"))
        try:
            uuid = self.client.find_call(self.token(), str(record.get("popup_uuid")), digits, since)
        except ListUnavailable as err:
            report.outcome = "scheduled"
            report.reason = f"previous attempt unconfirmed ({err})"
            due = policy.next_attempt(int(record.get("attempts") or 1), "formcall_unavailable", now)
            return self._save(record, due_at=due) or {}
        except ReconcileUnknown as err:
            report.reason = f"previous attempt unconfirmed ({err}); calling again"
            return None
        if uuid is None:
            report.reason = "previous attempt placed no call; calling"
            return None
        report.reason = "previous attempt's call found in FormCall's list"
        return self._sweep_placed(record, Placed(uuid), report) or {}

    def _sweep_placed(self, record: dict[str, Any], placed: Placed, report: Report) -> dict[str, Any] | None:
        now = time.time()
        state, fields = self._placed_fields(record, placed, now)
        saved = self._save(record, **fields)
        if saved is None:
            return None
        # Duplicates from now on carry the uuid too.
        scheduled = once.FirstAnswer(record["lead_id"], scheduled=True).dumps()
        answer = once.FirstAnswer(record["lead_id"], placed.uuid, pending=placed.pending).dumps()
        for store_key, window in record.get("claims") or []:
            self.store.replace(store_key, scheduled, answer, window)
        report.outcome = state
        report.uuid = placed.uuid
        report.wait_seconds = round(now - record["received_ts"], 1)
        return saved

    def _reschedule(
        self,
        record: dict[str, Any],
        word: str,
        due: float,
        policy: RetryPolicy,
        report: Report,
        attempt_since: float | None = None,
    ) -> dict[str, Any] | None:
        if due >= _age_from(record) + policy.max_age and attempt_since is None:
            return self._give_up(record, word, report)
        report.outcome = "scheduled"
        return self._save(record, state=records.SCHEDULED, last_error=word, due_at=due, attempt_since=attempt_since)

    def _give_up(
        self, record: dict[str, Any], word: str, report: Report, reason: str | None = None
    ) -> dict[str, Any] | None:
        report.outcome = "lead_failed"
        report.reason = reason or report.reason or f"given up after {record.get('attempts') or 0} attempts: {word}"
        fields: dict[str, Any] = {"state": records.FAILED, "last_error": word, "due_at": None, "attempt_since": None}
        if self.config.leads.keep_fields == "until_done":
            fields.update(records.minimized(record, records.FAILED))
        return self._save(record, **fields)

    def _save(self, record: Mapping[str, Any], **fields: Any) -> dict[str, Any] | None:
        new = records.changed(record, **fields)
        return new if self.store.save_lead(new, record["version"]) else None


def _age_from(record: Mapping[str, Any]) -> float:
    """When max_age starts: the lead's arrival, or an operator's `leads retry`, whichever is later."""
    return max(float(record["received_ts"]), float(record.get("retried_at") or 0))
