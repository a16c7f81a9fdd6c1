"""Every store key the function writes, in one place (spec 2, 4, 8 and 10). Pure.

Claims, rate counters and leases live under these keys; `leads forget` deletes a person's by asking
here too, never by building one by hand. Keys that name a person (a number, an address, a sender's id)
are hashed, so none of them sits in the store in clear.
"""

from __future__ import annotations

import hashlib
import hmac

# Dedupe and per_phone are per number across routes (spec 2): their keys name no route.
ANY_ROUTE = "*"
# Where the store keeps its hash key's fingerprint (spec 10), written on first use, checked by every
# process and `leads` command; and how long it lasts (as long as the store).
FINGERPRINT = "formcall:hash-key-fingerprint"
FINGERPRINT_SECONDS = 100 * 365 * 86400


def hashed(scope: str, kind: str, value: str) -> str:
    """formcall:<scope>:<kind>:<the value's sha256, 40 hex digits>."""
    digest = hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:40]
    return f"formcall:{scope}:{kind}:{digest}"


def keyed(scope: str, kind: str, value: str, key: bytes) -> str:
    """formcall:<scope>:<kind>:<the value's HMAC-SHA256 with leads.hash_key, 40 hex digits>: for what
    names a number (spec 10), so a leaked store cannot be reversed by hashing every number."""
    digest = hmac.new(key, value.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()[:40]
    return f"formcall:{scope}:{kind}:{digest}"


def fingerprint(key: bytes) -> str:
    """What the store keeps of its hash key: enough to tell another key, nothing to rebuild it."""
    return hmac.new(key, b"formcall-fingerprint", hashlib.sha256).hexdigest()[:16]


def lead_claim(e164: str, popup_uuid: str, *, key: bytes) -> str:
    """The default dedupe claim: the same number on the same popup is the same lead, whichever route."""
    return keyed(ANY_ROUTE, "lead", f"{e164}|{popup_uuid}", key)


def dedupe_claim(route: str, rendered: str, *, key: bytes) -> str:
    """A route's own `dedupe.key`, rendered (often the number or a person's id): it means something only
    on that route."""
    return keyed(route, "lead", rendered, key)


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


def rate_phone(e164: str, *, key: bytes) -> str:
    """The per_phone counter: one number across every route."""
    return keyed(ANY_ROUTE, "rate-phone", e164, key)


def lease(lead_id: str) -> str:
    """Whoever holds it is working on the lead: one attempt at a time, whatever the number of sweepers."""
    return f"formcall:lease:{lead_id}"


def pace(popup_uuid: str) -> str:
    """Spec 11: a popup's pace counters (one per slot: this key, ":" and the slot's index). A popup's
    uuid names no one: kept in clear."""
    return f"formcall:pace:{popup_uuid.lower()}"


def person(e164: str, popups: set[str], *, key: bytes) -> set[str]:
    """The keys a person's number is known by without a record (spec 10, `leads forget`): its per_phone
    counter, and the default dedupe claim on each popup, even for a lead whose record is already gone."""
    return {rate_phone(e164, key=key), *(lead_claim(e164, popup, key=key) for popup in popups)}
