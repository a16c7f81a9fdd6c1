"""Spec 9's `lead.failed`: a lead given up is reported to its route's `outcome.url`, signed as the call
outcomes are, retried by the sweep with the lead's backoff until accepted or `outcome.give_up`.

The report's progress rides in the lead's `outcome` field (a `CallWork` whose `report` is `lead.failed`):
`reported_at` is when the lead failed (the body's `timestamp`, the same on every try), `webhook` where
the delivery stands. The lead stays failed while the report is due; `leads retry` still works on it.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from .attempt import Attempted
from .clients import outgoing
from .errors import WebhookError
from .outcomes import OutcomePolicy
from .records import FAILED, CallWork, Lead, iso

if TYPE_CHECKING:
    from .followup import FollowUp

REPORT = "lead.failed"
# Failures that are no loss to flag: the person asked not to be called.
_NOT_REPORTED = frozenset({"opted_out"})
# A receiver asking for more than this is tried again at this interval at most (as for call.outcome).
_MAX_WAIT = 6 * 3600


def payload(lead: Lead) -> dict[str, Any]:
    """The body (spec 9): nothing the person typed, only the lead's id, route and how it ended."""
    return {
        "type": REPORT,
        "lead_id": lead.lead_id,
        "route": lead.route,
        "last_error": lead.last_error,
        "attempts": lead.attempts,
        "received_at": iso(lead.received_ts),
    }


def is_report(work: CallWork | None) -> bool:
    return work is not None and work.extra.get("report") == REPORT


class FailedReports:
    """The sweeper's `lead.failed` work, given the outcome work's parts (config, store, secrets, pool, clock)."""

    def __init__(self, followup: FollowUp) -> None:
        self.followup = followup

    def policy(self, lead: Lead) -> OutcomePolicy | None:
        route = self.followup.config.routes.get(lead.route)
        policy = route.outcome_reporting if route is not None else None
        return policy if policy is not None and policy.url and policy.secret else None

    def begin(self, attempted: Attempted) -> Attempted:
        """A lead the sweep just failed: its report made due and tried once now, in the same turn."""
        lead = attempted.lead
        if lead is None or lead.state != FAILED or lead.last_error in _NOT_REPORTED or self.policy(lead) is None:
            return attempted
        now = self.followup.clock()
        work = CallWork(due=True, reported_at=now, extra={"report": REPORT})
        marked = self._save(lead, lead.failed_report(work, now))
        if marked is None:
            return attempted
        try:
            done = self.work(marked)
        except WebhookError as err:
            # A secret not to be had (the URL's, the signing one): the report stays due for the next pass,
            # and this line stays the lead's `lead_failed`.
            return attempted._replace(lead=marked, extra={**attempted.extra, "report": REPORT, "webhook": err.error})
        return attempted._replace(lead=done.lead or marked, extra={**attempted.extra, **done.extra})

    def work(self, lead: Lead) -> Attempted:
        """One try of the report: `outcome_delivered`, `outcome_failed` (refused for good, or give_up passed),
        or `call_outcome` while it waits for the next try."""
        policy = self.policy(lead)
        work = lead.work or CallWork(extra={"report": REPORT})
        if policy is None or policy.url is None or policy.secret is None:
            # The route no longer reports: nothing left to do.
            return Attempted("", lead.lead_id, self._save(lead, lead.failed_report(work, None)))
        now = self.followup.clock()
        reported_at = work.reported_at if work.reported_at is not None else now
        give_up_at = reported_at + policy.give_up
        url = outgoing.target(policy.url, self.followup.secrets.resolve)
        sent = outgoing.deliver(
            self.followup.pool, url, self.followup.secrets.resolve(policy.secret), "failed_" + lead.lead_id,
            payload(lead), outgoing.TIMEOUT, time.time(), occurred_at=reported_at,
        )  # fmt: skip
        work = work.but(webhook_attempts=work.webhook_attempts + 1, reported_at=reported_at)
        extra: dict[str, Any] = {"report": REPORT}
        outcome = "outcome_delivered"
        due: float | None = None
        reason: str | None = None
        if sent.kind == "delivered":
            work = work.but(webhook="delivered")
        elif sent.kind == "final" or now >= give_up_at:
            work = work.but(webhook="final" if sent.kind == "final" else "gave_up")
            extra["webhook_failed"] = sent.reason
            outcome = "outcome_failed"
        else:
            step = self.followup._step(lead, work.webhook_attempts)
            due = min(now + min(max(step, sent.retry_after or 0), _MAX_WAIT), max(give_up_at, now + 1))
            outcome = "call_outcome"
            reason = sent.reason
        extra["webhook"] = work.webhook or "retry"
        saved = self._save(lead, lead.failed_report(work, due))
        return Attempted(outcome, lead.lead_id, saved, reason=reason, extra=extra)

    def _save(self, old: Lead, new: Lead) -> Lead | None:
        return new if self.followup.store.save_lead(new.to_json(), old.version) else None
