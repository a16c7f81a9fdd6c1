"""The sweeper (spec 8 and 9): one bounded pass over every due lead, each under a lease.

It picks due work by `due_at`, persists each transition conditionally on the version it read, and only
then reports. A lead whose lease another sweeper holds is left to that sweeper.
"""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from . import keys, once
from .attempt import Attempted, SettleView
from .errors import WebhookError
from .failed_report import FailedReports, is_report
from .followup import FollowUp, Listings
from .logs import severity_for
from .records import FAILED, SCHEDULED, Lead
from .runtime import Runtime
from .stores import Heartbeat
from .unread import UnreadLeads

# A pass stops taking new leads after this long, so a scheduler's next call never overlaps much.
BUDGET_SECONDS = 45.0
_BATCH = 200
# Leads worked on at once in a pass; each waits on FormCall or a receiver, not on the CPU.
WORKERS = 8
# Outcome words of attempts -> the count they add to.
_COUNTED = {"placed": "placed", "pending": "pending", "scheduled": "scheduled", "lead_failed": "failed",
            "opted_out": "failed", "recalled": "placed"}  # fmt: skip


@dataclass
class Counts:
    due: int = 0
    placed: int = 0
    pending: int = 0
    scheduled: int = 0
    failed: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, name: str | None) -> None:
        if name:
            with self._lock:
                setattr(self, name, getattr(self, name) + 1)

    def as_dict(self) -> dict[str, int]:
        return {"due": self.due, "placed": self.placed, "pending": self.pending, "scheduled": self.scheduled,
                "failed": self.failed}  # fmt: skip


class Sweeper:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        attempter = runtime.attempter
        self.clock = attempter.clock
        self.followup = FollowUp(attempter)
        # Spec 9's `lead.failed` to the outcome webhook, for each lead the sweep gives up.
        self.failed_reports = FailedReports(self.followup)
        self.unread = UnreadLeads(runtime)
        # This pass's reads of /calls/list, shared by every lead of the pass (spec 9), and those that
        # settle its lost answers (spec 8).
        self.listings = Listings()
        self.settling = SettleView()

    def run(self, budget_seconds: float = BUDGET_SECONDS, now: float | None = None) -> dict[str, int]:
        """One pass: every lead due at the start of the pass, unless the budget runs out first."""
        store = self.runtime.store
        # Spec 10: a sweeper whose hash key is not the store's refuses (Misconfigured), like the function.
        self.runtime.attempter.hash_key()
        started = time.monotonic()
        now = self.clock() if now is None else now
        counts = Counts()
        self.listings = Listings()
        self.settling = SettleView()
        seen: set[str] = set()
        deadline = started + budget_seconds
        # Several leads at once, each under its own lease: one slow FormCall answer does not hold the pass.
        with ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="formcall-sweep") as pool:
            while time.monotonic() < deadline:
                batch = [r for r in store.due_leads(now, _BATCH) if r["lead_id"] not in seen]
                if not batch:
                    break
                seen.update(r["lead_id"] for r in batch)
                for done in [pool.submit(self._one, record, now, counts, deadline) for record in batch]:
                    done.result()
        # Spec 8's heartbeat: the request path warns when it grows old (a stopped Scheduler job).
        store.write_heartbeat(Heartbeat(at=self.clock(), counts=counts.as_dict()))
        self.runtime.logger.write(
            "INFO" if counts.due else "DEBUG",  # an idle pass every 15 s is not news
            f"sweep: {counts.due} due",
            {
                "outcome": "sweep",
                "source": "sweep",
                "duration_ms": round((time.monotonic() - started) * 1000, 1),
                **counts.as_dict(),
            },
            {},
        )
        return counts.as_dict()

    def retry_now(self, lead_id: str) -> Attempted | None:
        """`leads retry`: a failed or scheduled lead, now, under the same lease as the sweeper's."""
        store = self.runtime.store
        record = store.get_lead(lead_id)
        if record is None:
            return None
        if record["state"] not in (SCHEDULED, FAILED):
            return Attempted(record["state"], lead_id, uuid=record.get("uuid"), reason="already " + record["state"])
        marker = once.new_marker()
        lease = keys.lease(lead_id)
        if store.claim(lease, marker, self.runtime.attempter.lease_seconds) is not None:
            return Attempted("busy", lead_id, reason="another sweeper holds this lead now")
        try:
            lead = Lead.from_json(store.get_lead(lead_id) or record)
            # A failed lead gets a fresh max_age from now on: it was the operator's choice to try again.
            renewed = lead.retried(self.clock())
            if not store.save_lead(renewed.to_json(), lead.version):
                return Attempted("busy", lead_id, reason="the lead changed while it was read")
            logged = renewed.to_json()
            if renewed.unread is not None:
                attempted = self.unread.read(renewed)
                logged = attempted.lead.to_json() if attempted.lead is not None else logged
            else:
                attempted = self.runtime.attempter.attempt(logged)
            if lead.state is not FAILED:  # a lead failed again by the operator's retry was reported before
                attempted = self.failed_reports.begin(attempted)
            self._log(logged, attempted)
            return attempted
        finally:
            store.release(lease, marker)

    def _one(self, record: dict[str, Any], now: float, counts: Counts, deadline: float = float("inf")) -> None:
        if time.monotonic() >= deadline:
            return  # the budget ran out: the next pass takes it
        store = self.runtime.store
        marker = once.new_marker()
        lease = keys.lease(record["lead_id"])
        if store.claim(lease, marker, self.runtime.attempter.lease_seconds) is not None:
            return  # another sweeper, or the request placing it, has it
        try:
            fresh = store.get_lead(record["lead_id"])
            if fresh is None or fresh.get("due_at") is None or fresh["due_at"] > now:
                return
            counts.add("due")
            attempted = Attempted("", fresh["lead_id"])
            logged = fresh
            try:
                lead = Lead.from_json(fresh)
                if lead.state is SCHEDULED and lead.unread is not None:
                    # Kept by its id while its source was down (spec 5): read it, then attempt it.
                    attempted = self.failed_reports.begin(self.unread.read(lead))
                    logged = attempted.lead.to_json() if attempted.lead is not None else fresh
                elif lead.state is SCHEDULED:
                    attempted = self.failed_reports.begin(self.runtime.attempter.attempt(fresh, self.settling))
                elif lead.state is FAILED and is_report(lead.work):
                    attempted = self.failed_reports.work(lead)
                elif lead.work is not None and lead.work.due:
                    attempted = self.followup.work(lead, self.listings)
                else:
                    # Nothing left to do for it: never leave a lead due and untouched.
                    store.save_lead(lead.idle().to_json(), lead.version)
            except WebhookError as err:
                # The store or the token went away mid-lead: the lead stays due for the next pass.
                attempted = Attempted(err.error, fresh["lead_id"], reason=err.reason)
            counts.add(_COUNTED.get(attempted.outcome))
            if attempted.outcome:
                self._log(logged, attempted)
        finally:
            store.release(lease, marker)

    def _log(self, record: dict[str, Any], report: Attempted) -> None:
        outcome = report.outcome
        # The sweep's lines answer nobody: their severity is the outcome word's alone.
        severity = severity_for(outcome, 200)
        fields = {
            "route": str(record.get("route", ""))[:64],
            "outcome": outcome,
            "lead_id": record["lead_id"],
            "uuid": report.uuid,
            "phone": record.get("phone"),
            "popup_uuid": record.get("popup_uuid"),
            "formcall_error_code": report.formcall_error_code,
            "formcall_ms": report.formcall_ms,
            "wait_seconds": report.wait_seconds,
            "attempts": report.attempts,
            "source": "sweep",
            "reason": report.reason,
            **report.extra,
        }
        self.runtime.logger.write(severity, f"{fields['route']}: {outcome} (sweep)", fields, {})


def counts_json(counts: dict[str, int]) -> bytes:
    return json.dumps(counts, separators=(",", ":")).encode()
