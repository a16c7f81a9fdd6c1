"""Leads kept unread (spec 5 and 8): Meta named them by id while its Graph API was down. The sweeper reads
each one here, then it is a lead as any other: mapped as the request path maps it, known by its number's
dedupe claim too, and attempted by the one attempt engine. Until the Graph API answers, it waits on the
route's retry schedule, and it fails (lead_failed) after max_age."""

from __future__ import annotations

from . import consent, keys, once
from .attempt import Attempted
from .clients.meta_graph import GraphUnavailable, flat_body
from .errors import WebhookError
from .records import Lead, iso
from .routing import pool_key
from .runtime import Runtime
from .senders.base import secret
from .states import DEFAULT_RETRY
from .submission import map_submission

GRAPH_UNAVAILABLE = "graph_unavailable"


class UnreadLeads:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def read(self, lead: Lead) -> Attempted:
        """Read one due, unread lead (the caller holds its lease) and, once read, attempt it."""
        attempter = self.runtime.attempter
        config = self.runtime.config()
        unread = lead.unread
        assert unread is not None
        route = config.routes.get(lead.route)
        policy = attempter.policy(lead.route) or DEFAULT_RETRY
        now = attempter.clock()
        facts = Attempted("", lead.lead_id, attempts=lead.attempts)
        if route is None or route.auth.type != unread.source:
            return self._give_up(
                lead, "misconfigured", facts._replace(reason=f"route {lead.route} reads no {unread.source} leads")
            )
        if policy.expired(lead.age_from, now):
            return self._give_up(lead, lead.last_error or GRAPH_UNAVAILABLE, facts)
        auth = route.auth
        try:
            token = secret(auth, self.runtime.secrets.resolve, auth.page_token)
            data = self.runtime.graph.read(auth.graph_url, auth.graph_version, unread.id, token)
        except GraphUnavailable as err:
            due = policy.next_attempt(unread.reads + 2, GRAPH_UNAVAILABLE, now)
            if due >= lead.age_from + policy.max_age:
                return self._give_up(lead, GRAPH_UNAVAILABLE, facts._replace(reason=err.reason))
            waiting = attempter.save(lead, lead.unread_again(due, GRAPH_UNAVAILABLE))
            return facts._replace(outcome="scheduled", lead=waiting, reason=err.reason)
        body = flat_body(data, unread.value, unread.id)
        try:
            mapped = map_submission(route, body, {}, {})
            given = consent.record(route.consent, body, {}, iso(now) or "") if route.consent is not None else None
        except WebhookError as err:
            # Refused as the request path would have refused it (no phone, no consent...): for good.
            failed = attempter.save(lead, lead.failed(err.error, keep_fields=attempter.keep_fields()))
            return facts._replace(outcome=err.error, lead=failed, reason=err.reason)
        number = mapped.lead
        if route.popups:
            # Spec 11: the lead's popup by the route's round robin, as the request path picks it.
            mapped.payload["popup_uuid"] = self.runtime.deliverer.router.pick(route.name, route.popups)
        if route.dedupe_key is not None:
            number_key = keys.dedupe_claim(
                route.name, route.dedupe_key.render(mapped.context), key=attempter.hash_key()
            )
        else:
            # As the request path claims it: a weighted route's number on its pool of popups.
            popup = pool_key(route.popups) if route.popups else str(mapped.payload["popup_uuid"])
            number_key = keys.lead_claim(number.e164, popup, key=attempter.hash_key())
        window = float(max(route.dedupe_window_seconds, policy.max_age))
        scheduled = once.FirstAnswer(lead.lead_id, scheduled=True).dumps()
        held = self.runtime.store.claim(number_key, scheduled, window)
        if held is not None and held != scheduled:
            if held.startswith((once.PENDING, once.UNCERTAIN)):
                # Another submission of this number is being called now: its answer decides, shortly.
                waiting = attempter.save(lead, lead.waiting(now + config.timeout_seconds + 5))
                return facts._replace(outcome="scheduled", lead=waiting, reason="the same number is being called now")
            # The same person, already a lead (another form, another delivery): this id answers as that one.
            first = once.FirstAnswer.loads(held)
            for key, key_window in lead.claims:
                self.runtime.store.replace(key, scheduled, held, key_window)
            self.runtime.store.delete_lead(lead.lead_id)
            return facts._replace(outcome="duplicate", lead_id=first.lead_id, uuid=first.uuid,
                           reason=f"the number is already lead {first.lead_id}")  # fmt: skip
        read = lead.read(
            payload={k: v for k, v in mapped.payload.items() if k != "security_token"},
            masked=number.masked,
            phone_hash=attempter.phone_hash(number.e164),
            claims=[(number_key, window)],
            consent=given,
        )
        saved = attempter.save(lead, read)
        if saved is None:
            self.runtime.store.release(number_key, scheduled)
            return facts
        attempted = attempter.attempt(saved.to_json())
        return attempted._replace(reason=attempted.reason or f"read from its source after {unread.reads + 1} tries")

    def _give_up(self, lead: Lead, word: str, facts: Attempted) -> Attempted:
        attempter = self.runtime.attempter
        saved = attempter.save(lead, lead.failed(word, keep_fields=attempter.keep_fields()))
        reason = facts.reason or f"given up unread after {lead.unread.reads + 1 if lead.unread else 1} reads: {word}"
        return facts._replace(outcome="lead_failed", reason=reason, lead=saved)
