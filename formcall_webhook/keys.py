"""Every store key the function writes, in one place (spec 2, 4, 8 and 10). Pure.

Claims, rate counters and leases live under these keys; `leads forget` deletes a person's by asking
here too, never by building one by hand. Keys that name a person (a number, an address, a sender's id)
are hashed, so none of them sits in the store in clear.
"""

from __future__ import annotations

import hashlib

# Dedupe and per_phone are per number across routes (spec 2): their keys name no route.
ANY_ROUTE = "*"


def hashed(scope: str, kind: str, value: str) -> str:
    """formcall:<scope>:<kind>:<the value's sha256, 40 hex digits>."""
    digest = hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:40]
    return f"formcall:{scope}:{kind}:{digest}"


def lead_claim(e164: str, popup_uuid: str) -> str:
    """The default dedupe claim: the same number on the same popup is the same lead, whichever route."""
    return hashed(ANY_ROUTE, "lead", f"{e164}|{popup_uuid}")


def dedupe_claim(route: str, rendered: str) -> str:
    """A route's own `dedupe.key`, rendered: it means something only on that route."""
    return hashed(route, "lead", rendered)


def delivery_claim(route: str, delivery_id: str) -> str:
    """A sender's delivery id (a signed scheme's, or Idempotency-Key): replays of it are caught by this."""
    return hashed(route, "delivery", delivery_id)


def idempotency_key(route: str, key: str) -> str:
    """Which number an unsigned Idempotency-Key was first used for (spec 4: reused for another, it is
    logged); the value is the number's keyed hash, cut."""
    return hashed(route, "idempotency", key)


def rate_ip(route: str, ip_key: str) -> str:
    """The per_ip counter of a route (`ip_key`: guards.rate_key's IPv4 address or IPv6 /64)."""
    return hashed(route, "rate-ip", ip_key)


def rate_phone(e164: str) -> str:
    """The per_phone counter: one number across every route."""
    return hashed(ANY_ROUTE, "rate-phone", e164)


def lease(lead_id: str) -> str:
    """Whoever holds it is working on the lead: one attempt at a time, whatever the number of sweepers."""
    return f"formcall:lease:{lead_id}"


def person(e164: str, popups: set[str]) -> set[str]:
    """The keys a person's number is known by without a record (spec 10, `leads forget`): its per_phone
    counter, and the default dedupe claim on each popup, even for a lead whose record is already gone."""
    return {rate_phone(e164), *(lead_claim(e164, popup) for popup in popups)}
