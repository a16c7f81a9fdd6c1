"""One attempt of a lead (spec 4 and 8), for the request path and the sweeper alike. No Request, no HTTP.

`attempt_once` asks FormCall for a lead already marked in flight and says what the lead becomes
(`after_error`, `placed`: one rule for both paths); `settle_lost` is the one place a lost answer is
settled; `attempt` is the sweeper's turn of a kept lead. Each returns a value (`Asked`, `Attempted`),
never a report filled in place. The request path's own steps (claims, the first answer) are delivery.py's.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, NamedTuple

from . import keys, once
from .clients.formcall import INVALID_TOKEN, FormCallClient, FormCallUncertain, ListUnavailable, Placed, list_days
from .config import Config
from .consent import optout_hash
from .errors import MISCONFIGURED, FormCallMisconfigured, Misconfigured, WebhookError
from .logs import RequestLogger
from .records import FAILED, Lead
from .secret_store import SecretStore
from .states import DEFAULT_RETRY, RetryPolicy
from .stores import Backend, Pace

if TYPE_CHECKING:
    from .settle import LostAttempt, Row, Settled

# FormCall's errors that send a lead to the route's fallback_popup (spec 11): popup not found, and out of
# service hours (a popup keeping calls pending answers pending instead).
FALLBACK_CODES = (2, 4)
# A lost answer is settled from FormCall's list only after this many timeouts since the attempt.
SETTLE_TIMEOUTS = 2
# Spec 8's heartbeat: a lead kept for later while the last sweep is older than this is logged, at most
# once per this long per process.
STALE_SWEEP_SECONDS = 300.0
# The opt-out list's hashes and the records' phone index are keyed with leads.hash_key; without one,
# with this (a leaked store then needs only this public key to be brute-forced: `check` says so).
DEFAULT_HASH_KEY = b"formcall-webhook/phone-hash/v1"


def check_fingerprint(store: Backend, key: bytes) -> None:
    """The store's hash-key fingerprint, written on first use; Misconfigured when it is another key's."""
    mine = keys.fingerprint(key)
    kept = store.claim(keys.FINGERPRINT, mine, keys.FINGERPRINT_SECONDS)
    if kept is not None and kept != mine:
        raise Misconfigured(
            MISCONFIGURED,
            reason="leads.hash_key is not the key this store's hashes were made with (its fingerprint differs): "
            "set the store's own key (FORMCALL_HASH_KEY or leads.hash_key); nothing was written",
        )


def recall_since(lead: Lead) -> float | None:
    """When the lead's recall under way was asked of FormCall (spec 11), its answer not yet had or lost;
    None when no recall is marked."""
    since = lead.work.extra.get("since") if lead.work is not None else None
    return float(since) if isinstance(since, int | float) and not isinstance(since, bool) else None


class SettleView:
    """One sweep pass's reads for settling lost answers (spec 8), shared by every lost answer of the pass:
    FormCall's list of a popup's day and then the popup's leads are read once, at the first lost answer
    there, and kept up to date as each is settled. Without it each lost answer would read the ledger
    anew, which a sweep over hundreds of lost answers on Firestore cannot afford."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.rows: dict[tuple[str, str], list[Row]] = {}
        self.leads: dict[str, dict[str, Lead]] = {}


class Asked(NamedTuple):
    """One FormCall request (with its retry after a rotated token): the call, or the error it ended in."""

    placed: Placed | None
    error: WebhookError | None
    ms: float


class Attempted(NamedTuple):
    """What one turn of a lead came to (an attempt, a lost answer settled, a wait, a refusal): the word its
    log line says and the facts beside it. `lead` is the lead as saved (None: another writer changed it
    first, or nothing was kept)."""

    outcome: str
    lead_id: str | None = None
    lead: Lead | None = None
    uuid: str | None = None
    attempts: int | None = None
    formcall_ms: float | None = None
    formcall_error_code: int | None = None
    wait_seconds: float | None = None
    reason: str | None = None
    extra: Mapping[str, Any] = MappingProxyType({})


class Attempter:
    """One per process, beside the config, the store, the FormCall client and the secrets: one attempt of
    a lead for both paths, and the sweeper's attempts of kept leads."""

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

    @property
    def settle_after(self) -> float:
        return self.config.timeout_seconds * SETTLE_TIMEOUTS

    @property
    def lease_seconds(self) -> float:
        # Covers one attempt with its token refetch and a slow store, and no more.
        return self.config.timeout_seconds * 2 + 20

    def hash_key(self) -> bytes:
        """leads.hash_key, once the store's fingerprint says its hashes were made with it (spec 10): a
        process with another key refuses (500 misconfigured) instead of writing hashes nobody finds."""
        if self._hash_key is None:
            ref = self.config.leads.hash_key
            key = self.secrets.resolve(ref).encode("utf-8") if ref else DEFAULT_HASH_KEY
            check_fingerprint(self.store, key)
            self._hash_key = key
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

    def ask(self, payload: Mapping[str, Any]) -> Asked:
        """One FormCall request (and one more after error 8 when the token was rotated). A token that
        cannot be read ends it like FormCall's own refusal would: an error, never an exception."""
        started = time.perf_counter()
        try:
            placed = self._place(payload, self.token())
        except WebhookError as err:
            return Asked(None, err, round((time.perf_counter() - started) * 1000, 1))
        return Asked(placed, None, round((time.perf_counter() - started) * 1000, 1))

    def _place(self, payload: Mapping[str, Any], token: str) -> Placed:
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
        when the last sweep is older than 5 minutes (shared stores; memory:// and sqlite:// sweep themselves), at most
        once per 5 minutes per process, so a stopped Scheduler job is seen before leads age out."""
        if self.logger is None or self.config.store_url.startswith(("memory://", "sqlite://")):
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
        last = beat.at if beat is not None else None
        if last is not None and now - last <= STALE_SWEEP_SECONDS:
            return
        since = f"the last sweep was {round(now - last)} s ago" if last is not None else "no sweep yet"
        self.logger.write(
            "WARNING",
            f"sweeper_stale: {since}; is the Cloud Scheduler job calling formcall_sweep?",
            {"outcome": "sweeper_stale", "source": "request", "reason": since},
            {},
        )

    # -- one attempt, for both paths --

    def attempt_once(
        self, lead: Lead, payload: Mapping[str, Any], policy: RetryPolicy | None, started: float, *, first: bool
    ) -> tuple[Asked, Lead | None]:
        """Ask FormCall for the call of a lead already marked in flight; what the lead becomes (not yet
        saved: the request path finishes it with its claims, the sweeper saves it)."""
        asked = self.ask(payload)
        if lead.call_popup is not None:
            lead = replace(lead, call_popup=None)  # this attempt went to the lead's own popup
        route = self.config.routes.get(lead.route)
        fallback = route.fallback_popup if route is not None else None
        err = asked.error
        popup = str(payload.get("popup_uuid") or "")
        if (
            err is not None
            and fallback is not None
            and err.formcall_error_code in FALLBACK_CODES
            and popup.lower() != fallback.lower()
        ):
            # Spec 11: the popup cannot take the lead (not found; or out of hours and keeping nothing
            # pending, which is what error 2 says): the same lead, at once and once, on the fallback.
            lead = lead.fell_back(popup, err.error, err.formcall_error_code, started, fallback)
            again = self.ask({**payload, "popup_uuid": fallback})
            asked = Asked(again.placed, again.error, round(asked.ms + again.ms, 1))
        if asked.placed is not None:
            return asked, self.placed(lead, asked.placed)
        assert asked.error is not None
        return asked, self.after_error(lead, asked.error, policy, started, first=first)

    def after_error(
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

    def placed(self, lead: Lead, placed: Placed, certain: bool = True) -> Lead:
        """A placed or pending lead: due again for its outcome work (spec 9), else done and minimized.
        A uuid that could not be told apart gets no outcome report."""
        route = self.config.routes.get(lead.route)
        outcome = route.outcome_reporting if route is not None and certain else None
        done = lead.placed(placed.uuid, pending=placed.pending, now=self.clock(),
                           work_after=outcome.after if outcome is not None else None,
                           keep_fields=self.keep_fields())  # fmt: skip
        return done if certain else done.uncertain()

    def pace_slot(self, lead: Lead, now: float, popup: str | None = None) -> float | None:
        """Spec 11, the sweeper keeps the pace: None when the lead may be called now (the slot it holds
        is this one, or it took one now); else the start of the later slot it took."""
        route = self.config.routes.get(lead.route)
        if route is None or route.pace is None:
            return None
        period = route.pace.seconds
        if lead.pace_slot is not None and lead.pace_slot <= now < lead.pace_slot + period:
            return None
        popup = popup or str(lead.popup_uuid or "")
        slot = self.store.take_slot(Pace(keys.pace(popup), period, route.pace.limit, now))
        return slot if slot > now else None

    def settle_lost(self, lost: LostAttempt, view: SettleView | None = None) -> Settled:
        """The one place a lost answer is settled (spec 8): FormCall's list for the attempt's window, the
        uuids other leads on the popup hold, and the other lost answers there. ListUnavailable when the
        list cannot be read whole. With a sweep pass's `view`, the list and the leads it has read already
        serve, and what this lead comes to is noted there for the next lost answer of the pass.

        The list is read before the leads: a row listed then belongs to a lead already attempted, so the
        read that follows finds it holding its uuid or still marked in flight. When the lead could only share
        a row while another attempt in the window is younger than settle_after (its answer may still come,
        and with it its uuid), nothing is settled yet: `wait_until` says when to look again."""
        popup = lost.popup_uuid.lower()
        if view is None:
            rows = self._listed(lost, {})
            return self._settled(lost, rows, self._leads_on(popup, self._horizon(lost.start)))
        with view.lock:
            read = len(view.rows)
            rows = self._listed(lost, view.rows)
            if popup not in view.leads or len(view.rows) != read:
                # Read after the list, as above; the oldest lost answer a pass can meet is max_age old.
                view.leads[popup] = self._leads_on(popup, self._horizon(self.clock() - self._max_age()))
            leads = view.leads[popup]
            found = self._settled(lost, rows, leads)
            mine = leads.get(lost.lead_id)
            if mine is not None and found.wait_until is None:
                # What the lead becomes, for the rest of the pass: holding its call, or in flight again now.
                attempt = mine.attempt._replace(since=None if found.uuid else self.clock())
                leads[lost.lead_id] = replace(mine, uuid=found.uuid or mine.uuid, uuid_certain=found.certain,
                                              attempt=attempt)  # fmt: skip
            return found

    def _listed(self, lost: LostAttempt, cache: dict[tuple[str, str], list[Row]]) -> list[Row]:
        """The rows FormCall lists on the popup for every date the attempt's window can fall on."""
        # Loaded by the first lost answer: a cold start's requests never need it.
        from .settle import rows_of

        token = self.token()
        rows: list[Row] = []
        for day in list_days(lost.start, lost.end + 60):
            key = (lost.popup_uuid.lower(), day)
            if key not in cache:
                listing = self.client.list_calls(token, lost.popup_uuid, day)
                if not isinstance(listing, list):
                    raise ListUnavailable("/calls/list did not answer a list")
                cache[key] = rows_of(listing)
            rows.extend(cache[key])
        return rows

    def _max_age(self) -> float:
        ages = [r.retry.max_age for r in self.config.routes.values() if r.retry is not None]
        return max([DEFAULT_RETRY.max_age, *ages])

    def _horizon(self, start: float) -> float:
        # A lead holding a uuid from this window was received at most its max_age (or a day) before.
        return start - self._max_age() - 86400

    def _leads_on(self, popup: str, since: float) -> dict[str, Lead]:
        """The leads on the popup received since `since`, by lead_id."""
        leads = (Lead.from_json(record) for record in self.store.scan_leads(since=since))
        return {lead.lead_id: lead for lead in leads if (lead.popup_uuid or "").lower() == popup}

    def _settled(self, lost: LostAttempt, rows: list[Row], leads: Mapping[str, Lead]) -> Settled:
        from .settle import Holder, LostAttempt, Settled, settle

        holders: list[Holder] = []
        rivals: list[LostAttempt] = []
        own: set[str] = set()
        for other in leads.values():
            if other.lead_id == lost.lead_id:
                # A recall's lost answer: the lead's earlier calls are not this one.
                own = {str(call.get("uuid") or "").lower() for call in other.calls}
                continue
            if other.uuid:
                holders.append(Holder(other.lead_id, other.uuid.lower(), other.uuid_certain))
            # Another lost answer in flight or not settled yet: a first attempt's, or a recall's (spec 11).
            since = other.attempt.since if other.attempt.since is not None else recall_since(other)
            if since is not None:
                rivals.append(LostAttempt(other.lead_id, lost.popup_uuid, since, since + self.config.timeout_seconds))
        found = settle(lost, [row for row in rows if row.uuid not in own], holders, rivals)
        if found.uuid is None or found.certain:
            return found
        # Told apart from nothing: wait for the rivals whose answers may still come (with their uuids).
        young = [r.start for r in rivals if r.overlaps(lost) and self.clock() - r.start < self.settle_after]
        return Settled(None, wait_until=max(young) + self.settle_after) if young else found

    # -- the sweeper's attempts --

    def attempt(self, record: Mapping[str, Any], view: SettleView | None = None) -> Attempted:
        """Deliver one due, scheduled lead (the caller holds its lease). Every change is conditional on
        the version read; `lead` is None in the result when another writer changed it first. `view`: the
        sweep pass's reads for settling a lost answer (SettleView)."""
        lead = Lead.from_json(record)
        policy = self.policy(lead.route) or DEFAULT_RETRY
        now = self.clock()
        facts = Attempted("", lead.lead_id, attempts=lead.attempts)
        if lead.phone_hash and self.store.is_opted_out(lead.phone_hash):
            # Failed as it stands: the record keeps what it held (as it always did), for `leads export`.
            opted_out = lead.failed("opted_out", keep_fields="keep")
            return facts._replace(outcome="opted_out", lead=self.save(lead, opted_out))
        if policy.expired(lead.age_from, now):
            return self._give_up(lead, lead.last_error or "formcall_unavailable", facts)
        if lead.attempt.since is not None:
            settled = self._settle_record(lead, lead.attempt.since, policy, now, facts, view)
            if settled.outcome:
                return settled
            unmarked = self.save(lead, lead.unmarked())
            if unmarked is None:
                return settled
            lead, facts = unmarked, settled
        if not policy.in_service(now):
            waiting = self.save(lead, lead.waiting(policy.next_opening(now)))
            return facts._replace(outcome="scheduled", lead=waiting, reason="outside service hours")
        if lead.payload is None:
            return self._give_up(lead, "misconfigured", facts._replace(reason="the record no longer holds the number"))
        slot = self.pace_slot(lead, now)
        if slot is not None:
            waiting = self.save(lead, lead.paced(slot))
            return facts._replace(outcome="scheduled", lead=waiting, reason="over the popup's pace")
        started = self.clock()
        in_flight = self.save(lead, lead.in_flight(started, started + self.lease_seconds))
        if in_flight is None:
            return facts
        asked, after = self.attempt_once(in_flight, lead.payload, policy, started, first=False)
        assert after is not None
        facts = facts._replace(attempts=in_flight.attempts, formcall_ms=asked.ms)
        if asked.placed is not None:
            return self._sweep_placed(in_flight, after, asked.placed, facts)
        err = asked.error
        assert err is not None
        code = None if isinstance(err, FormCallUncertain) else err.formcall_error_code
        facts = facts._replace(formcall_error_code=code, reason=err.reason)
        if after.state == FAILED:
            reason = err.reason or f"given up after {after.attempts} attempts: {err.error}"
            return facts._replace(outcome="lead_failed", reason=reason, lead=self.save(in_flight, after))
        return facts._replace(outcome="scheduled", lead=self.save(in_flight, after))

    def _settle_record(
        self, lead: Lead, since: float, policy: RetryPolicy, now: float, facts: Attempted, view: SettleView | None
    ) -> Attempted:
        """An attempt whose answer was lost: its call, from FormCall's list, before any new attempt. What
        settling it came to (placed, or waiting); an empty outcome to go on and call."""
        if now - since < self.settle_after:
            waiting = self.save(lead, lead.waiting(since + self.settle_after))
            return facts._replace(outcome="scheduled", lead=waiting, reason="previous attempt not settled yet")
        payload = lead.payload or {}
        digits = "".join(str(payload.get(k) or "") for k in ("country_code", "areacode", "phonenumber"))
        from .settle import LostAttempt  # a lost answer only

        lost = LostAttempt(lead.lead_id, str(lead.popup_uuid), since, since + self.config.timeout_seconds, digits)
        try:
            found = self.settle_lost(lost, view)
        except ListUnavailable as err:
            due = policy.next_attempt(lead.attempts or 1, "formcall_unavailable", now)
            waiting = self.save(lead, lead.waiting(due))
            return facts._replace(outcome="scheduled", lead=waiting, reason=f"previous attempt unconfirmed ({err})")
        if found.wait_until is not None:
            waiting = self.save(lead, lead.waiting(found.wait_until))
            return facts._replace(
                outcome="scheduled", lead=waiting, reason="another attempt on the popup not settled yet"
            )
        if found.uuid is None:
            return facts._replace(reason="previous attempt placed no call; calling")
        facts = facts._replace(reason="previous attempt's call found in FormCall's list")
        if not found.certain:
            facts = facts._replace(extra={"uuid_certain": False})
        placed = Placed(found.uuid)
        return self._sweep_placed(lead, self.placed(lead, placed, found.certain), placed, facts)

    def _sweep_placed(self, lead: Lead, after: Lead, placed: Placed, facts: Attempted) -> Attempted:
        saved = self.save(lead, after)
        facts = facts._replace(outcome=str(after.state), lead=saved, uuid=placed.uuid)
        if saved is None:
            return facts._replace(outcome="")
        # Duplicates from now on carry the uuid too.
        scheduled = once.FirstAnswer(lead.lead_id, scheduled=True).dumps()
        answer = once.FirstAnswer(lead.lead_id, placed.uuid, pending=placed.pending).dumps()
        for store_key, window in lead.claims:
            if not self.store.replace(store_key, scheduled, answer, window):
                # Still the admission's mark, when the request path could not finish: a resend after it
                # expired would be a second lead.
                self.store.replace(store_key, once.PENDING + lead.lead_id, answer, window)
        wait = round((saved.placed_at or self.clock()) - lead.received_ts, 1)
        return facts._replace(wait_seconds=wait)

    def _give_up(self, lead: Lead, word: str, facts: Attempted) -> Attempted:
        reason = facts.reason or f"given up after {lead.attempts} attempts: {word}"
        saved = self.save(lead, lead.failed(word, keep_fields=self.keep_fields()))
        return facts._replace(outcome="lead_failed", reason=reason, lead=saved)

    def load(self, lead_id: str) -> Lead | None:
        record = self.store.get_lead(lead_id)
        return Lead.from_json(record) if record is not None else None

    def save(self, old: Lead, new: Lead) -> Lead | None:
        """`new` written when the stored lead is still `old`'s version; None when another writer won."""
        return new if self.store.save_lead(new.to_json(), old.version) else None
