"""Each placed call's outcome, looked up and reported (spec 9); run by the sweeper, one lead at a time.

A lead's `outcome` dict holds the work's progress: the status seen last (to know when it stops
changing), what was recorded, and where each report stands, so a pass that dies halfway resumes there.
Every step is saved conditionally on the version read, before the next one is sent anywhere.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import urllib3

from . import outcomes, records
from .clients import outgoing
from .clients.formcall import ListUnavailable, list_days
from .clients.http import make_pool
from .clients.hubspot import HubSpotClient
from .delivery import Report
from .runtime import Runtime
from .states import DEFAULT_RETRY, OutcomePolicy

if TYPE_CHECKING:  # loaded only by routes with conversions
    from .conversion_work import ConversionWork
    from .conversions import ConversionsPolicy

# A report whose receiver asks for more than this is tried again at this interval at most.
_MAX_WAIT = 6 * 3600
_WEBHOOK_TIMEOUT = 10.0
# HubSpot writes that are over: written, or the contact's own state (none, or not the lead's).
_HUBSPOT_DONE = ("delivered", "not_found", "mismatch")


@dataclass
class Listings:
    """One sweep's reads of /calls/list: each popup and date at most once, however many leads share it."""

    rows: dict[tuple[str, str], dict[str, outcomes.CallResult] | None] = field(default_factory=dict)
    reads: int = 0
    # The pass works on several leads at once: one of them reads a listing, the others wait for it.
    lock: threading.Lock = field(default_factory=threading.Lock)


class FollowUp:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._pool: urllib3.PoolManager | None = None
        self._unknown_logged: set[str] = set()
        self._conversions: ConversionWork | None = None

    @property
    def pool(self) -> urllib3.PoolManager:
        if self._pool is None:
            self._pool = make_pool(self.runtime.config().ca_bundle, maxsize=8)
        return self._pool

    def work(self, record: dict[str, Any], report: Report, listings: Listings) -> dict[str, Any] | None:
        """One step of the lead's outcome work; the record as saved (None when another writer won)."""
        config = self.runtime.config()
        route = config.routes.get(record["route"])
        policy = route.outcome_reporting if route is not None else None
        state = dict(record.get("outcome") or {})
        report.lead_id = record["lead_id"]
        report.uuid = record.get("uuid")
        if policy is None or not record.get("uuid"):
            return self._done(record, state)
        now = time.time()
        give_up_at = float(record.get("placed_at") or record["received_ts"]) + policy.give_up
        if not state.get("settled"):
            step = self._lookup(record, state, policy, listings, now, give_up_at, report)
            if step is not None:
                return step
        return self._report(record, state, policy, now, give_up_at, report)

    # -- the lookup --

    def _lookup(
        self,
        record: dict[str, Any],
        state: dict[str, Any],
        policy: OutcomePolicy,
        listings: Listings,
        now: float,
        give_up_at: float,
        report: Report,
    ) -> dict[str, Any] | None:
        """Read the call's row; the record as saved while the status may still change, None when settled."""
        lookups = int(state.get("lookups") or 0) + 1
        state["lookups"] = lookups
        result = self._find(record, listings, now)
        if result is None:
            report.reason = "call not listed yet" if "down" not in state else "listing unavailable"
        else:
            previous = state.get("last")
            current = list(result.fingerprint())
            state.update(
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
                report.extra["unknown_status"] = result.call_status[:64]
            if previous == current:
                state["settled"] = True
                report.outcome = "call_outcome"
                report.extra.update(
                    call_status=result.call_status[:64], connected=result.connected, successful=result.successful
                )
                return None
        state.pop("down", None)
        if now >= give_up_at:
            # The status never settled (or the call was never listed): report what is known, once.
            state["settled"] = True
            state["gave_up_lookup"] = True
            report.outcome = "call_outcome"
            report.reason = "outcome lookup gave up"
            return None
        return self._save(record, outcome=state, due_at=min(now + self._step(record, lookups), give_up_at))

    def _find(self, record: Mapping[str, Any], listings: Listings, now: float) -> outcomes.CallResult | None:
        popup = str(record.get("popup_uuid") or "")
        uuid = str(record.get("uuid") or "").lower()
        for day in list_days(float(record.get("placed_at") or record["received_ts"]), now):
            key = (popup, day)
            with listings.lock:
                if key not in listings.rows:
                    listings.reads += 1
                    try:
                        rows = self.runtime.client.list_calls(self.runtime.deliverer.token(), popup, day)
                        listings.rows[key] = outcomes.parse_rows(rows)[0]
                    except ListUnavailable:
                        listings.rows[key] = None
                found = listings.rows[key]
            if found is not None and uuid in found:
                return found[uuid]
        return None

    # -- the reports --

    def _report(
        self,
        record: dict[str, Any],
        state: dict[str, Any],
        policy: OutcomePolicy,
        now: float,
        give_up_at: float,
        report: Report,
    ) -> dict[str, Any] | None:
        # Spec 12: the conversion events, on routes with `conversions`, once the call has settled.
        route = self.runtime.config().routes.get(record["route"])
        ads = route.conversions if route is not None else None
        waits: list[int] = []
        fields: dict[str, Any] = {}
        if ads is not None and state.get("conversions") != "done":
            fields = self._convert(record, state, ads, now, give_up_at, report, waits)
        view = {**records.public(record), **{k: state.get(k) for k in outcomes.PAYLOAD_KEYS if k in state}}
        view.update(lead_id=record["lead_id"], route=record["route"], uuid=record.get("uuid"),
                    received_at=record.get("received_at"))  # fmt: skip
        if policy.url and policy.secret and state.get("webhook") not in ("delivered", "final", "gave_up"):
            secret = self.runtime.secrets.resolve(policy.secret)
            sent = outgoing.deliver(
                self.pool, policy.url, secret, "outcome_" + record["lead_id"], outcomes.outcome_payload(view),
                outgoing.TIMEOUT, now, occurred_at=state.setdefault("reported_at", now),
            )  # fmt: skip
            state["webhook_attempts"] = int(state.get("webhook_attempts") or 0) + 1
            if sent.kind == "delivered":
                state["webhook"] = "delivered"
            elif sent.kind == "final" or now >= give_up_at:
                state["webhook"] = "final" if sent.kind == "final" else "gave_up"
                report.extra["webhook_failed"] = sent.reason
            else:
                waits.append(sent.retry_after or 0)
            report.extra["webhook"] = state.get("webhook", "retry")
        holds: list[float] = []  # HubSpot's daily limit: nothing sent there before the account's next day
        if policy.hubspot is not None and state.get("hubspot") not in (*_HUBSPOT_DONE, "final", "gave_up"):
            held = float(state.get("hubspot_hold_until") or 0)
            if now < held:
                holds.append(held)
            else:
                holds += self._hubspot(record, state, policy, view, now, give_up_at, report, waits)
            report.extra["hubspot"] = "hold" if holds else state.get("hubspot", "retry")
        if waits or holds:
            attempts = max(int(state.get("webhook_attempts") or 0), int(state.get("conversion_attempts") or 0), 1)
            step = self._step(record, attempts)
            dues = [min(now + min(max([step, *waits]), _MAX_WAIT), max(give_up_at, now + 1))] if waits else []
            due = min([*dues, *holds])
            report.outcome = report.outcome or "call_outcome"
            if "conversion_failed" in report.extra and report.outcome == "call_outcome":
                report.outcome = "conversion_failed"
            return self._save(record, outcome=state, due_at=due, **fields)
        failed = "webhook_failed" in report.extra or "hubspot_failed" in report.extra
        if not report.outcome or report.outcome == "call_outcome":
            report.outcome = "outcome_failed" if failed else ("outcome_delivered" if (policy.url or policy.hubspot)
                                                               else "call_outcome")  # fmt: skip
        if "conversion_failed" in report.extra and report.outcome != "outcome_failed":
            report.outcome = "conversion_failed"
        return self._done(record, state, **fields)

    def _convert(
        self,
        record: Mapping[str, Any],
        state: dict[str, Any],
        ads: ConversionsPolicy,
        now: float,
        give_up_at: float,
        report: Report,
        waits: list[int],
    ) -> dict[str, Any]:
        """One step of the lead's conversion events (spec 12); the record's fields it changes."""
        if self._conversions is None:
            from .conversion_work import ConversionWork  # only routes with conversions load it

            self._conversions = ConversionWork(self.runtime.secrets.resolve, self.pool)
        call = {"uuid": record.get("uuid"), **{k: state.get(k) for k in ("connected", "successful", "call_at")}}
        step = self._conversions.step(record, call, ads, now, give_up_at)
        report.extra["conversions"] = step.done
        if step.failures:
            report.extra["conversion_failed"] = "; ".join(step.failures)
        if not step.finished:
            state["conversion_attempts"] = int(state.get("conversion_attempts") or 0) + 1
            waits.extend(step.waits)
            return {"conversions": step.done}
        state["conversions"] = "done"
        # Spec 10: the click ids leave the record once the conversions are done.
        return {"conversions": step.done, "clicks": None}

    def _hubspot(
        self,
        record: Mapping[str, Any],
        state: dict[str, Any],
        policy: OutcomePolicy,
        view: Mapping[str, Any],
        now: float,
        give_up_at: float,
        report: Report,
        waits: list[int],
    ) -> list[float]:
        """One attempt at the HubSpot write; the time to hold it until when the daily limit is reached."""
        assert policy.hubspot is not None
        contact = record.get("contact") or {}
        route = self.runtime.config().routes.get(record["route"])
        client = HubSpotClient(
            self.pool, self.runtime.secrets.resolve(policy.hubspot.token), policy.hubspot.api_url, _WEBHOOK_TIMEOUT
        )
        progress = state.get("hubspot_progress") or {}
        result = client.write_outcome(
            contact_id=progress.get("contact_id") or contact.get("contact_id"),
            email=contact.get("email"),
            property=policy.hubspot.property,
            value=str(state.get("call_status") or "sin estado"),
            note=outcomes.note_text(view),
            timestamp_ms=int(now * 1000),
            done=progress.get("done") or (),
            note_id=progress.get("note_id"),
            # Spec 9: a submitted id counts only where HubSpot's signature vouches for it; elsewhere the
            # contact found by email is written only when its number is the lead's.
            phone=records.number_of(record),
            trusted=route is not None and route.auth.type == "hubspot",
        )
        state["hubspot_progress"] = {"contact_id": result.contact_id, "note_id": result.note_id,
                                     "done": sorted(result.done)}  # fmt: skip
        hold = result.hold_until if result.kind == "hold" else None
        if result.kind in _HUBSPOT_DONE:
            state["hubspot"] = result.kind
        elif result.kind == "final" or now >= give_up_at or (hold is not None and hold >= give_up_at):
            state["hubspot"] = "final" if result.kind == "final" else "gave_up"
            report.extra["hubspot_failed"] = result.reason
        elif hold is not None:
            state["hubspot_hold_until"] = hold
            return [hold]
        else:
            waits.append(result.retry_after or 0)
        return []

    def _step(self, record: Mapping[str, Any], attempts: int) -> int:
        """The wait before the next lookup or report: the lead's own backoff (its route's retry schedule)."""
        route = self.runtime.config().routes.get(record["route"])
        schedule = route.retry.schedule if route is not None and route.retry is not None else DEFAULT_RETRY.schedule
        return schedule[min(attempts, len(schedule)) - 1]

    def _done(self, record: dict[str, Any], state: dict[str, Any], **changes: Any) -> dict[str, Any] | None:
        state["due"] = False
        fields: dict[str, Any] = {"outcome": state, "due_at": None, **changes}
        if self.runtime.config().leads.keep_fields == "until_done":
            # Spec 10: the call and its outcome work are done; what the person typed goes.
            fields.update(records.minimized(record, record["state"]))
        return self._save(record, **fields)

    def _save(self, record: Mapping[str, Any], **fields: Any) -> dict[str, Any] | None:
        new = records.changed(record, **fields)
        return new if self.runtime.store.save_lead(new, record["version"]) else None
