"""Conversion events for Google Ads and Meta (spec 12): the route's settings and the request bodies. Pure.

Google: the Data Manager API's `events:ingest`, its user identifiers normalised as Google's own helper
(google-ads-datamanager-util's Formatter) does, SHA-256 hashed and hex encoded. Meta: the Conversions
API's `/{pixel_id}/events`, normalised as the facebook-business SDK's Normalize does. The tests check
these bodies against both libraries' own request models; neither library is imported here.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

GOOGLE_API_URL = "https://datamanager.googleapis.com"
GOOGLE_PATH = "/v1/events:ingest"
GOOGLE_SCOPE = "https://www.googleapis.com/auth/datamanager"
META_API_URL = "https://graph.facebook.com"
META_VERSION = "v26.0"  # the Graph API version facebook-business 26 speaks
# Meta refuses a whole batch with an event older than this (spec 12).
META_MAX_AGE = 7 * 86400
# The click ids a record keeps while its conversions are due (spec 10), as the landing page sends them.
CLICK_IDS = ("gclid", "gbraid", "wbraid", "fbclid", "fbc", "fbp")
# Where a submission may carry them: the id's own name, or the cookie's (`_fbc`, `_fbp`).
_CLICK_FIELDS = {"gclid": ("gclid",), "gbraid": ("gbraid",), "wbraid": ("wbraid",), "fbclid": ("fbclid",),
                 "fbc": ("fbc", "_fbc"), "fbp": ("fbp", "_fbp")}  # fmt: skip
_CLICK_MAX_LENGTH = 512
_CLICK_CHARS = re.compile(r"[A-Za-z0-9._\-]+")
_GOOGLE_CLICKS = ("gclid", "gbraid", "wbraid")
_GMAIL = ("gmail.com", "googlemail.com")
_WHITESPACE = re.compile(r"\s")


@dataclass(frozen=True)
class GoogleConversions:
    """`conversions.google`: the Google Ads customer and its conversion action."""

    account: str
    conversion_action: str
    value: float | None = None
    currency: str | None = None
    api_url: str = GOOGLE_API_URL


@dataclass(frozen=True)
class MetaConversions:
    """`conversions.meta`: the pixel (dataset), its Conversions API token (a secret reference)."""

    pixel_id: str
    token: str
    event_name: str = "Contact"
    api_url: str = META_API_URL


@dataclass(frozen=True)
class ConversionsPolicy:
    google: GoogleConversions | None = None
    meta: MetaConversions | None = None

    def platforms(self) -> tuple[str, ...]:
        return tuple(name for name in ("google", "meta") if getattr(self, name) is not None)


@dataclass(frozen=True)
class Conversion:
    """What one lead tells the platforms: its call, its hashed-to-be contact and its click."""

    uuid: str
    call_time: float
    e164: str | None
    email: str | None = None
    country: str | None = None  # ISO 3166-1 alpha-2, the number's
    clicks: Mapping[str, str] = field(default_factory=dict)
    received_time: float | None = None  # when the click reached us: fbc's creation time from an fbclid
    ads_consent: bool = False


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def google_email(email: str) -> str | None:
    """The email as Google's Formatter.format_email_address has it; None when it is not user@domain."""
    text = email.strip()
    if not text or _WHITESPACE.search(text):
        return None
    parts = text.lower().split("@")
    if len(parts) != 2 or not parts[0] or not parts[1]:
        return None
    user, domain = parts
    if domain in _GMAIL:
        user = user.split("+")[0].replace(".", "")
        if not user:
            return None
    return f"{user}@{domain}"


def google_phone(e164: str) -> str | None:
    """The number as Google's Formatter.format_phone_number has it: + and the digits."""
    digits = re.sub(r"\D", "", e164)
    return "+" + digits if digits else None


def meta_email(email: str) -> str | None:
    """Meta's `em` before hashing: trimmed and lower-cased."""
    text = email.strip().lower()
    return text if "@" in text and not _WHITESPACE.search(text) else None


def meta_phone(e164: str) -> str | None:
    """Meta's `ph` before hashing: the digits with the country code, no + nor leading zeros."""
    digits = re.sub(r"\D", "", e164).lstrip("0")
    return digits or None


def clicks_of(body: Mapping[str, Any], query: Mapping[str, Any]) -> dict[str, str]:
    """The click ids a submission carried, from its fields, else the page's query string."""
    found: dict[str, str] = {}
    for name, fields in _CLICK_FIELDS.items():
        for source in (body, query):
            value = next((source.get(f) for f in fields if _click_value(source.get(f))), None)
            if value is not None:
                found[name] = _click_value(value) or ""
                break
    return found


def _click_value(value: Any) -> str | None:
    if isinstance(value, list) and value:
        value = value[0]
    if not isinstance(value, str):
        return None
    text = value.strip()
    return text if 0 < len(text) <= _CLICK_MAX_LENGTH and _CLICK_CHARS.fullmatch(text) else None


def timestamp(ts: float) -> str:
    """RFC 3339 UTC, as a protobuf Timestamp is written in JSON."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def google_body(policy: GoogleConversions, conv: Conversion) -> dict[str, Any]:
    """The `events:ingest` request (JSON as the REST API takes it) for one conversion."""
    identifiers: list[dict[str, str]] = []
    email = google_email(conv.email) if conv.email else None
    if email:
        identifiers.append({"emailAddress": sha256_hex(email)})
    phone = google_phone(conv.e164) if conv.e164 else None
    if phone:
        identifiers.append({"phoneNumber": sha256_hex(phone)})
    granted = "CONSENT_GRANTED" if conv.ads_consent else "CONSENT_DENIED"
    event: dict[str, Any] = {
        "transactionId": conv.uuid,
        "eventTimestamp": timestamp(conv.call_time),
        "eventSource": "PHONE",
        "consent": {"adUserData": granted, "adPersonalization": granted},
    }
    click = {name: conv.clicks[name] for name in _GOOGLE_CLICKS if conv.clicks.get(name)}
    if click:
        # One click id: Google takes gclid, else gbraid, else wbraid.
        name = next(iter(click))
        event["adIdentifiers"] = {name: click[name]}
    if identifiers:
        event["userData"] = {"userIdentifiers": identifiers}
    if policy.value is not None:
        event["conversionValue"] = policy.value
    if policy.currency:
        event["currency"] = policy.currency
    return {
        "destinations": [
            {
                "operatingAccount": {"accountType": "GOOGLE_ADS", "accountId": policy.account},
                "productDestinationId": policy.conversion_action,
            }
        ],
        "encoding": "HEX",
        "events": [event],
    }


def google_url(policy: GoogleConversions) -> str:
    return policy.api_url.rstrip("/") + GOOGLE_PATH


def meta_too_old(conv: Conversion, now: float) -> bool:
    return now - conv.call_time > META_MAX_AGE


def meta_fbc(conv: Conversion) -> str | None:
    """The `_fbc` cookie's value when sent, else one made from the fbclid as Meta documents:
    fb.1.<the click's time in ms>.<fbclid>."""
    cookie = conv.clicks.get("fbc")
    if cookie and cookie.startswith("fb."):
        return cookie
    fbclid = conv.clicks.get("fbclid")
    if fbclid:
        return f"fb.1.{int((conv.received_time or conv.call_time) * 1000)}.{fbclid}"
    return None


def meta_body(policy: MetaConversions, conv: Conversion) -> dict[str, Any]:
    """The Conversions API request (`data`, one event) for one conversion; the token goes in a header."""
    user: dict[str, Any] = {}
    phone = meta_phone(conv.e164) if conv.e164 else None
    if phone:
        user["ph"] = [sha256_hex(phone)]
    email = meta_email(conv.email) if conv.email else None
    if email:
        user["em"] = [sha256_hex(email)]
    if conv.country and re.fullmatch(r"[A-Za-z]{2}", conv.country):
        user["country"] = [sha256_hex(conv.country.lower())]
    fbc = meta_fbc(conv)
    if fbc:
        user["fbc"] = fbc
    if conv.clicks.get("fbp"):
        user["fbp"] = conv.clicks["fbp"]
    event = {
        "event_name": policy.event_name,
        "event_time": int(conv.call_time),
        "action_source": "phone_call",
        "event_id": conv.uuid,
        "user_data": user,
    }
    return {"data": [event]}


def meta_url(policy: MetaConversions) -> str:
    return f"{policy.api_url.rstrip('/')}/{META_VERSION}/{policy.pixel_id}/events"
