"""Each placed call's outcome, looked up and reported (spec 9); run by the sweeper, one lead at a time.

A lead's `CallWork` (the record's `outcome` field) holds the work's progress: the status seen last (to
know when it stops changing), what was recorded, and where each report stands, so a pass that dies
halfway resumes there.
Every step is saved conditionally on the version read, before the next one is sent anywhere.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import outcomes, records
from .attempt import Attempted, Attempter, recall_since
from .clients import hubspot as hubspot_client
from .clients import outgoing
from .clients.formcall import FormCallUncertain, ListUnavailable, list_days
from .clients.http import Pool, make_pool
from .clients.hubspot import HubSpotClient, HubSpotResult
from .outcomes import OutcomePolicy
from .records import CallWork, Lead
from .settle import LostAttempt
from .states import DEFAULT_RETRY, RetryPolicy

if TYPE_CHECKING:  # loaded only by routes with conversions
    from .conversion_work import ConversionWork
    from .conversions import ConversionsPolicy

# A report whose receiver asks for more than this is tried again at this interval at most.
_MAX_WAIT = 6 * 3600
_WEBHOOK_TIMEOUT = 10.0
# HubSpot writes that are over: written, or the contact's own state (none, or not the lead's).
_HUBSPOT_DONE = ("delivered", "not_found", "mismatch")
# A HubSpot step marked under way on the record is another worker's for this long (its requests time out
# well before): meanwhile no one else writes there; past it, the worker is gone and the step is picked up,
# except a note, which may exist: it is never created twice.
_MARK_SECONDS = 600.0


class _Lost(Exception):
    """Another worker has the lead's HubSpot write under way, or saved the lead first: leave it."""


@dataclass
class _Notes:
    """What one step of the outcome work will say in its log line, gathered as the step goes."""

    outcome: str = ""
    reason: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Listings:
    """One sweep's reads of /calls/list: each popup and date at most once, however many leads share it."""

    rows: dict[tuple[str, str], dict[str, outcomes.CallResult] | None] = field(default_factory=dict)
    reads: int = 0
    # The pass works on several leads at once: one of them reads a listing, the others wait for it.
    lock: threading.Lock = field(default_factory=threading.Lock)


class FollowUp:
    """A placed call's outcome work. It is given its parts, through the Attempter that holds them: the
    config, the store, FormCall's list with its token, the secrets and the clock."""

    def __init__(self, parts: Attempter) -> None:
        self.parts = parts
        self.config = parts.config
        self.store = parts.store
        self.client = parts.client
        self.secrets = parts.secrets
        self.token = parts.token
        self.clock = parts.clock
        self._pool: Pool | None = None
        self._unknown_logged: set[str] = set()
        self._conversions: ConversionWork | None = None

    @property
    def pool(self) -> Pool:
        if self._pool is None:
            self._pool = make_pool(self.config.ca_bundle, maxsize=8)
        return self._pool

    def work(self, lead: Lead, listings: Listings) -> Attempted:
        """One step of the lead's outcome work; in the result, the lead as saved (None when another writer
        won) and what its log line says."""
        notes = _Notes()
        try:
            saved = self._work(lead, notes, listings)
        except _Lost as lost:
            notes.reason, saved = str(lost), None
        return Attempted(notes.outcome, lead.lead_id, saved, uuid=lead.uuid, reason=notes.reason, extra=notes.extra)

    def _work(self, lead: Lead, notes: _Notes, listings: Listings) -> Lead | None:
        route = self.config.routes.get(lead.route)
        policy = route.outcome_reporting if route is not None else None
        work = lead.work or CallWork()
        if policy is None or not lead.uuid or not lead.uuid_certain:
            return self._done(lead, work)
        now = self.clock()
        if work.extra.get("recall"):
            return self._recall(lead, work, notes, now)
        give_up_at = (lead.placed_at or lead.received_ts) + policy.give_up
        if not work.settled:
            work, saved = self._lookup(lead, work, listings, now, give_up_at, notes)
            if not work.settled:
                return saved
        return self._report(lead, work, policy, now, give_up_at, notes)

    # -- the lookup --

    def _lookup(
        self, lead: Lead, work: CallWork, listings: Listings, now: float, give_up_at: float, notes: _Notes
    ) -> tuple[CallWork, Lead | None]:
        """Read the call's row. While the status may still change: the work and the lead as saved; once
        it is settled (or given up), the work to report, nothing saved yet."""
        work = work.but(lookups=work.lookups + 1)
        result = self._find(lead, listings, now)
        if result is None:
            notes.reason = "call not listed yet" if "down" not in work.extra else "listing unavailable"
        else:
            previous = work.last
            current = tuple(result.fingerprint())
            work = work.but(
                call_status=result.call_status,
                connected=result.connected,
                successful=result.successful,
                duration_customer=result.duration_customer,
                call_at=result.call_at,
                last=current,
            )
            if not outcomes.is_known(result.call_status) and result.call_status not in self._unknown_logged:
                # Recorded as it came; said once per process, so a new platform word is noticed.
                self._unknown_logged.add(result.call_status)
                notes.extra["unknown_status"] = result.call_status[:64]
            if previous == current:
                notes.outcome = "call_outcome"
                notes.extra.update(
                    call_status=result.call_status[:64], connected=result.connected, successful=result.successful
                )
                return work.but(settled=True), None
        work = work.but(extra={k: v for k, v in work.extra.items() if k != "down"})
        if now >= give_up_at:
            # The status never settled (or the call was never listed): report what is known, once.
            notes.outcome = "call_outcome"
            notes.reason = "outcome lookup gave up"
            return work.but(settled=True, gave_up_lookup=True), None
        due = min(now + self._step(lead, work.lookups), give_up_at)
        return work, self._save(lead, lead.outcome_step(work, due))

    def _find(self, lead: Lead, listings: Listings, now: float) -> outcomes.CallResult | None:
        popup = str(lead.call_popup or lead.popup_uuid or "")
        uuid = str(lead.uuid or "").lower()
        for day in list_days(lead.placed_at or lead.received_ts, now):
            key = (popup, day)
            with listings.lock:
                if key not in listings.rows:
                    listings.reads += 1
                    try:
                        rows = self.client.list_calls(self.token(), popup, day)
                        listings.rows[key] = outcomes.parse_rows(rows)[0]
                    except ListUnavailable:
                        listings.rows[key] = None
                found = listings.rows[key]
            if found is not None and uuid in found:
                return found[uuid]
        return None

    # -- the reports --

    def _report(
        self, lead: Lead, work: CallWork, policy: OutcomePolicy, now: float, give_up_at: float, notes: _Notes
    ) -> Lead | None:
        view = records.public(lead.to_json())
        if work.last is not None:
            view.update(work.call_result())
        number = max(1, len(lead.calls))
        view["call_number"] = number
        waits: list[int] = []
        # Spec 12: the conversion events, on a route with `conversions`, once the call has settled.
        route = self.config.routes.get(lead.route)
        ads = route.conversions if route is not None else None
        # With recalls, only a connected call can be the lead's conversion: an unanswered one is followed by
        # another call, so it is not yet "no conversion".
        recalls = route is not None and route.recall is not None
        if (
            ads is not None
            and not set(ads.platforms()) <= set(lead.conversions or {})
            and (not recalls or work.connected)
        ):
            lead, work = self._convert(lead, work, ads, now, give_up_at, notes, waits)
        if policy.url and policy.secret and work.webhook not in ("delivered", "final", "gave_up"):
            secret = self.secrets.resolve(policy.secret)
            if work.reported_at is None:
                work = work.but(reported_at=now)  # the event's time: the same on every retry
            reported_at = work.reported_at
            # Signed at the wall clock's time: the receiver checks it against its own.
            url = outgoing.target(policy.url, self.secrets.resolve)  # spec 9: may be a secret reference
            sent = outgoing.deliver(
                self.pool, url, secret, "outcome_" + lead.lead_id + (f"_{number}" if number > 1 else ""),
                outcomes.outcome_payload(view),
                outgoing.TIMEOUT, time.time(), occurred_at=reported_at,
            )  # fmt: skip
            work = work.but(webhook_attempts=work.webhook_attempts + 1)
            if sent.kind == "delivered":
                work = work.but(webhook="delivered")
            elif sent.kind == "final" or now >= give_up_at:
                work = work.but(webhook="final" if sent.kind == "final" else "gave_up")
                notes.extra["webhook_failed"] = sent.reason
            else:
                waits.append(sent.retry_after or 0)
            notes.extra["webhook"] = work.webhook or "retry"
        holds: list[float] = []  # HubSpot's daily limit: nothing sent there before the account's next day
        if policy.hubspot is not None and work.hubspot not in (*_HUBSPOT_DONE, "final", "gave_up"):
            held = work.hubspot_hold_until or 0.0
            if now < held:
                holds.append(held)
            else:
                latest = [lead]
                work, hold = self._hubspot(latest, work, policy, view, now, give_up_at, notes, waits)
                lead = latest[0]  # the record as the HubSpot steps' marks left it
                holds += hold
            notes.extra["hubspot"] = "hold" if holds else (work.hubspot or "retry")
        if waits or holds:
            # Every channel backs off the same way: on the lead's schedule, by its most tried channel.
            tried = (work.webhook_attempts, work.hubspot_attempts, int(work.extra.get("conversion_attempts") or 0))
            step = self._step(lead, max(*tried, 1))
            dues = [min(now + min(max([step, *waits]), _MAX_WAIT), max(give_up_at, now + 1))] if waits else []
            due = min([*dues, *holds])
            notes.outcome = notes.outcome or "call_outcome"
            if "conversion_failed" in notes.extra and notes.outcome == "call_outcome":
                notes.outcome = "conversion_failed"
            return self._save(lead, lead.outcome_step(work, due))
        failed = "webhook_failed" in notes.extra or "hubspot_failed" in notes.extra
        if not notes.outcome or notes.outcome == "call_outcome":
            reported = "outcome_delivered" if (policy.url or policy.hubspot) else "call_outcome"
            notes.outcome = "outcome_failed" if failed else reported
        if "conversion_failed" in notes.extra and notes.outcome != "outcome_failed":
            notes.outcome = "conversion_failed"  # ERROR: the account, the token or the event needs someone
        return self._call_over(lead, work, now, notes)

    # -- recalls (spec 11) --

    def _call_over(self, lead: Lead, work: CallWork, now: float, notes: _Notes) -> Lead | None:
        """The call's outcome is recorded and reported: another call after the recall's next wait when it
        settled not connected and the route recalls; else the lead's work is done."""
        settled = lead.call_settled(work)
        due = self._recall_at(settled, work, now)
        if due is None:
            return self._save(lead, settled.outcome_done(work, self.config.leads.keep_fields))
        notes.extra["recall_at"] = records.iso(due)
        fresh = CallWork(due=True, extra={"recall": True})
        return self._save(lead, settled.outcome_step(fresh, due))

    def _recall_at(self, lead: Lead, work: CallWork, now: float) -> float | None:
        """When the next call is due; None when there is none: the route does not recall, the call
        connected or never settled (a row still enqueued), max_calls reached, or retry.max_age from the
        first call passed by then."""
        route = self.config.routes.get(lead.route)
        recall = route.recall if route is not None else None
        if recall is None or work.connected is not False or work.gave_up_lookup or lead.payload is None:
            return None
        if len(lead.calls) >= recall.max_calls:
            return None
        retry = route.retry if route is not None and route.retry is not None else DEFAULT_RETRY
        due = now + recall.wait(len(lead.calls))
        if not retry.in_service(due):
            due = retry.next_opening(due)
        first = lead.first_call_at if lead.first_call_at is not None else (lead.placed_at or lead.received_ts)
        return due if due < first + retry.max_age else None

    def _recall(self, lead: Lead, work: CallWork, notes: _Notes, now: float) -> Lead | None:
        """The recall due: checked again (opt-out, hours, max_age, pace), then one more call, on the
        lead's own popup, marked before it is asked so that a lost answer never rings the lead twice."""
        route = self.config.routes.get(lead.route)
        retry = route.retry if route is not None and route.retry is not None else DEFAULT_RETRY
        outcome = route.outcome_reporting if route is not None else None
        first = lead.first_call_at if lead.first_call_at is not None else (lead.placed_at or lead.received_ts)
        stop = None
        if route is None or route.recall is None or outcome is None or lead.payload is None:
            stop = "the route no longer recalls"
        else:
            if recall_since(lead) is not None:
                # Spec 8: the last recall's answer was lost (or its worker died): its call, from FormCall's
                # list, before any other. Found, or to look again later: done for now; none: recall now.
                settled, saved = self._settle_recall(lead, outcome, retry, first, notes, now)
                if settled or saved is None:
                    return saved
                lead, work = saved, saved.work or work
            if lead.phone_hash and self.store.is_opted_out(lead.phone_hash):
                stop = "opted out"
            elif now >= first + retry.max_age:
                stop = "max_age passed"
            elif len(lead.calls) >= route.recall.max_calls:
                stop = "max_calls reached"
        if stop is not None:
            notes.outcome, notes.reason = "recall_stopped", stop
            return self._save(lead, lead.outcome_done(work.but(extra={}), self.config.leads.keep_fields))
        assert route is not None
        assert outcome is not None
        assert lead.payload is not None
        if not retry.in_service(now):
            notes.outcome, notes.reason = "recall_scheduled", "outside service hours"
            return self._save(lead, lead.outcome_step(work, retry.next_opening(now)))
        slot = self.parts.pace_slot(lead, now)
        if slot is not None:
            notes.outcome, notes.reason = "recall_scheduled", "over the popup's pace"
            return self._save(lead, lead.paced(slot))
        marked = self._save(lead, lead.outcome_step(work.but(extra={**work.extra, "since": now}),
                                                   now + self.parts.lease_seconds))  # fmt: skip
        if marked is None:
            return None
        popup = str(lead.popup_uuid or lead.payload.get("popup_uuid"))
        asked = self.parts.ask({**lead.payload, "popup_uuid": popup})
        notes.extra["formcall_ms"] = asked.ms
        if asked.placed is not None and asked.placed.uuid:
            notes.outcome = "recalled"
            notes.reason = f"call {len(lead.calls) + 1}"
            notes.extra["uuid"] = asked.placed.uuid
            return self._save(marked, marked.recalled(asked.placed.uuid, popup, now=self.clock(),
                                                      work_after=outcome.after))  # fmt: skip
        err = asked.error
        if isinstance(err, FormCallUncertain) or err is None:
            # It may have rung: never asked again before FormCall's list says (the mark stays; the next turn
            # settles it).
            notes.outcome, notes.reason = "recall_uncertain", err.reason if err is not None else "no uuid"
            return self._save(marked, marked.outcome_step(marked.work or work, now + self.parts.settle_after))
        notes.outcome, notes.reason = "recall_scheduled", err.reason or err.error
        notes.extra["formcall_error_code"] = err.formcall_error_code
        due = retry.next_attempt(len(lead.calls), err.error, now)
        if err.status == 422 or due >= first + retry.max_age:
            notes.outcome = "recall_stopped"
            return self._save(marked, marked.outcome_done(work.but(extra={}), self.config.leads.keep_fields))
        return self._save(marked, marked.outcome_step(work, due))

    def _settle_recall(
        self, lead: Lead, outcome: OutcomePolicy, retry: RetryPolicy, first: float, notes: _Notes, now: float
    ) -> tuple[bool, Lead | None]:
        """A recall whose answer was lost, settled as any lost answer (spec 8): (True, the lead as saved) when
        its call was found (the lead's next call) or the list must be read again later; (False, the lead
        as saved without the mark) when no call was placed and the recall is to be made again."""
        since = recall_since(lead)
        assert since is not None
        work = lead.work or CallWork()
        if now - since < self.parts.settle_after:
            notes.outcome, notes.reason = "recall_scheduled", "the last recall not settled yet"
            return True, self._save(lead, lead.outcome_step(work, since + self.parts.settle_after))
        assert lead.payload is not None
        popup = str(lead.popup_uuid or lead.payload.get("popup_uuid"))
        digits = "".join(str(lead.payload.get(k) or "") for k in ("country_code", "areacode", "phonenumber"))
        try:
            found = self.parts.settle_lost(
                LostAttempt(lead.lead_id, popup, since, since + self.config.timeout_seconds, digits)
            )
        except ListUnavailable as err:
            due = retry.next_attempt(len(lead.calls), "formcall_unavailable", now)
            if due >= first + retry.max_age:
                notes.outcome, notes.reason = "recall_stopped", f"the last recall never confirmed ({err})"
                return True, self._save(lead, lead.outcome_done(work.but(extra={}), self.config.leads.keep_fields))
            notes.outcome, notes.reason = "recall_scheduled", f"the last recall unconfirmed ({err})"
            return True, self._save(lead, lead.outcome_step(work, due))
        if found.wait_until is not None:
            notes.outcome, notes.reason = "recall_scheduled", "another attempt on the popup not settled yet"
            return True, self._save(lead, lead.outcome_step(work, found.wait_until))
        if found.uuid is None:
            notes.reason = "the last recall placed no call; calling"
            unmarked = work.but(extra={k: v for k, v in work.extra.items() if k != "since"})
            return False, self._save(lead, lead.outcome_step(unmarked, now))
        notes.outcome = "recalled"
        notes.reason = f"call {len(lead.calls) + 1}, its answer lost: found in FormCall's list"
        notes.extra["uuid"] = found.uuid
        recalled = lead.recalled(found.uuid, popup, now=since, work_after=outcome.after)
        if not found.certain:
            notes.extra["uuid_certain"] = False
            recalled = recalled.uncertain()
        return True, self._save(lead, recalled)

    def _convert(
        self,
        lead: Lead,
        work: CallWork,
        ads: ConversionsPolicy,
        now: float,
        give_up_at: float,
        notes: _Notes,
        waits: list[int],
    ) -> tuple[Lead, CallWork]:
        """One step of the lead's conversion events (spec 12): the lead with where they stand (its click
        ids gone once they are done), and the work with the attempts the backoff counts."""
        if self._conversions is None:
            from .conversion_work import ConversionWork  # only routes with conversions load it

            self._conversions = ConversionWork(self.secrets.resolve, self.pool)
        call = {"uuid": lead.uuid, "connected": work.connected, "successful": work.successful, "call_at": work.call_at}
        step = self._conversions.step(lead.to_json(), call, ads, now, give_up_at)
        notes.extra["conversions"] = step.done
        if step.failures:
            notes.extra["conversion_failed"] = "; ".join(step.failures)
        if not step.finished:
            attempts = int(work.extra.get("conversion_attempts") or 0) + 1
            work = work.but(extra={**work.extra, "conversion_attempts": attempts})
            waits.extend(step.waits)
        return lead.converted(step.done, done=step.finished), work

    def _hubspot(
        self,
        latest: list[Lead],
        work: CallWork,
        policy: OutcomePolicy,
        view: Mapping[str, Any],
        now: float,
        give_up_at: float,
        notes: _Notes,
        waits: list[int],
    ) -> tuple[CallWork, list[float]]:
        """One attempt at the HubSpot write: the work as it then stands, and the time to hold it until when
        the daily limit is reached."""
        assert policy.hubspot is not None
        lead = latest[0]
        contact = lead.contact or {}
        route = self.config.routes.get(lead.route)
        client = HubSpotClient(
            self.pool, self.secrets.resolve(policy.hubspot.token), policy.hubspot.api_url, _WEBHOOK_TIMEOUT
        )
        progress = work.hubspot_progress or {}
        sending = progress.get("sending")
        if isinstance(sending, str):
            since = progress.get("since")
            if isinstance(since, int | float) and now - since < _MARK_SECONDS:
                raise _Lost(f"HubSpot {sending} under way by another worker")
            if sending == hubspot_client.NOTE and not progress.get("note_id"):
                # Spec 9: once per call. The note may exist; it is not created a second time.
                notes.extra["hubspot_failed"] = "interrupted while creating the note: not created again"
                return work.but(hubspot="final"), []

        def mark(step: str, under_way: HubSpotResult) -> bool:
            """Spec 9, once per call: each write is marked on the record before it is sent."""
            marked = work.but(hubspot_progress={**_progress(under_way), "sending": step, "since": now})
            current = latest[0]
            saved = self._save(current, current.outcome_step(marked, current.due_at or now))
            if saved is not None:
                latest[0] = saved
            return saved is not None

        result = client.write_outcome(
            contact_id=progress.get("contact_id") or contact.get("contact_id"),
            email=contact.get("email"),
            property=policy.hubspot.property,
            value=str(work.call_status or "sin estado"),
            note=outcomes.note_text(view),
            timestamp_ms=int(now * 1000),
            done=progress.get("done") or (),
            note_id=progress.get("note_id"),
            # Spec 9: a submitted id counts only where HubSpot's signature vouches for it; elsewhere the
            # contact found by email is written only when its number is the lead's.
            phone=lead.number(),
            trusted=route is not None and route.auth.type == "hubspot",
            mark=mark,
        )
        if result.kind == "lost":
            raise _Lost(result.reason)
        work = work.but(hubspot_progress=_progress(result), hubspot_attempts=work.hubspot_attempts + 1)
        hold = result.hold_until if result.kind == "hold" else None
        if result.kind in _HUBSPOT_DONE:
            return work.but(hubspot=result.kind), []
        if result.kind == "final" or now >= give_up_at or (hold is not None and hold >= give_up_at):
            notes.extra["hubspot_failed"] = result.reason
            return work.but(hubspot="final" if result.kind == "final" else "gave_up"), []
        if hold is not None:
            return work.but(hubspot_hold_until=hold), [hold]
        waits.append(result.retry_after or 0)
        return work, []

    def _step(self, lead: Lead, attempts: int) -> int:
        """The wait before the next lookup or report: the lead's own backoff (its route's retry schedule)."""
        route = self.config.routes.get(lead.route)
        schedule = route.retry.schedule if route is not None and route.retry is not None else DEFAULT_RETRY.schedule
        return schedule[min(attempts, len(schedule)) - 1]

    def _done(self, lead: Lead, work: CallWork) -> Lead | None:
        """Spec 10: the call and its outcome work are done; what the person typed goes (until_done)."""
        return self._save(lead, lead.outcome_done(work, self.config.leads.keep_fields))

    def _save(self, old: Lead, new: Lead) -> Lead | None:
        return new if self.store.save_lead(new.to_json(), old.version) else None


def _progress(result: HubSpotResult) -> dict[str, Any]:
    """Where the HubSpot write stands, as the record keeps it."""
    return {"contact_id": result.contact_id, "note_id": result.note_id, "done": sorted(result.done)}
