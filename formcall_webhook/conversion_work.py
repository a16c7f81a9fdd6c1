"""The conversions step of a lead's outcome work (spec 12): once its call settles, one event to each
platform the route names, when the person consented to ads measurement. Loaded only by the outcome
work of a route with `conversions`, so a cold start without them never imports it (nor google-auth).

The record keeps `conversions: {"google": "sent"|"failed"|"skipped: reason", "meta": ...}`: a platform
in the map is done and never sent again; one not in it yet is tried (again) at the next step.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import phonenumbers

from . import consent, conversions, records
from .clients import conversions as client
from .clients.http import Pool
from .errors import Misconfigured

NO_CONSENT = "skipped: no ads consent"
NOT_SUCCESSFUL = "skipped: call not connected and successful"
TOO_OLD = "skipped: call over 7 days old"
NO_CALL = "skipped: no call"


@dataclass
class Step:
    """What one pass did: the record's map, the waits asked for, and the refusals to log."""

    done: dict[str, str]
    waits: list[int] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        return not self.waits


class ConversionWork:
    """One per process, beside the outcome work: the Google token is fetched once and refreshed."""

    def __init__(self, resolve: Callable[[str], str], pool: Pool) -> None:
        self.resolve = resolve  # a secret reference's value
        self.pool = pool
        self.google_token = client.GoogleToken(conversions.GOOGLE_SCOPE)

    def step(
        self,
        record: Mapping[str, Any],
        call: Mapping[str, Any] | None,
        policy: conversions.ConversionsPolicy,
        now: float,
        give_up_at: float,
    ) -> Step:
        """Send what is still due. `call`: the settled call (uuid, connected, successful, call_at), or None
        when the lead has no connected and successful call to report."""
        done = dict(record.get("conversions") or {})
        due = [name for name in policy.platforms() if name not in done]
        step = Step(done)
        if not due:
            return step
        if not consent.ads_given(record.get("consent")):
            done.update(dict.fromkeys(due, NO_CONSENT))
            return step
        if call is None or not call.get("uuid"):
            done.update(dict.fromkeys(due, NO_CALL))
            return step
        if not (call.get("connected") and call.get("successful")):
            done.update(dict.fromkeys(due, NOT_SUCCESSFUL))
            return step
        event = self._conversion(record, call)
        for name in due:
            if name == "meta" and conversions.meta_too_old(event, now):
                done[name] = TOO_OLD
                continue
            sent = self._send(name, policy, event, now)
            if sent.kind == "sent":
                done[name] = "sent"
            elif sent.kind == "final" or now >= give_up_at:
                done[name] = "failed"
                why = sent.reason if sent.kind == "final" else f"gave up, {sent.reason}"
                step.failures.append(f"{name}: {why}")
            else:
                step.waits.append(sent.retry_after or 0)
        return step

    def _send(
        self, name: str, policy: conversions.ConversionsPolicy, event: conversions.Conversion, now: float
    ) -> client.SendResult:
        if name == "google":
            assert policy.google is not None
            try:
                token = self.google_token.get(self.pool)
            except client.CredentialsUnavailable as err:
                return client.SendResult("retry", None, None, f"no Google credentials: {err}")
            body = conversions.google_body(policy.google, event)
            return client.post_event(self.pool, conversions.google_url(policy.google), body, token, now=now)
        assert policy.meta is not None
        try:
            token = self.resolve(policy.meta.token)
        except Misconfigured as err:  # a secret that cannot be read now is retried until give_up
            return client.SendResult("retry", None, None, f"conversions.meta.token: {err.reason}")
        body = conversions.meta_body(policy.meta, event)
        return client.post_event(self.pool, conversions.meta_url(policy.meta), body, token, now=now)

    @staticmethod
    def _conversion(record: Mapping[str, Any], call: Mapping[str, Any]) -> conversions.Conversion:
        e164 = records.number_of(record)
        contact = record.get("contact") or {}
        received = float(record.get("received_ts") or 0) or None
        return conversions.Conversion(
            uuid=str(call["uuid"]),
            call_time=call_time(call.get("call_at"), float(record.get("placed_at") or received or 0)),
            e164=e164,
            email=contact.get("email") if isinstance(contact, Mapping) else None,
            country=country_of(e164),
            clicks=dict(record.get("clicks") or {}),
            received_time=received,
            ads_consent=True,
        )


def call_time(call_at: Any, fallback: float) -> float:
    """The call's time from /calls/list's call_at (ISO 8601 with its offset), else `fallback`."""
    if isinstance(call_at, str) and call_at:
        try:
            when = datetime.fromisoformat(call_at)
        except ValueError:
            return fallback
        if when.tzinfo is not None:
            return when.timestamp()
    return fallback


def country_of(e164: str | None) -> str | None:
    """The number's ISO 3166 country (Meta's `country`), from its E.164 form."""
    if not e164:
        return None
    try:
        region = phonenumbers.region_code_for_number(phonenumbers.parse(e164))
    except phonenumbers.NumberParseException:
        return None
    return region if region and region != "ZZ" else None
