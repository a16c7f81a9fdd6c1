"""The `retry`, `outcome`, `conversions` and `[leads]` tables (spec 8, 9, 10, 12), read with config's Reader
into the policies of states.py and conversions.py. Loaded only by a config that has one of these tables:
the defaults need none of it."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from .config_reader import Reader, attempt, secret_ref
from .conversions import GOOGLE_API_URL, META_API_URL, ConversionsPolicy, GoogleConversions, MetaConversions
from .outcomes import HUBSPOT_API_URL, OUTCOME_AFTER, OUTCOME_GIVE_UP, HubSpotOutcome, OutcomePolicy, RecallPolicy
from .secret_store import is_reference
from .states import (
    DEFAULT_MAX_AGE,
    DEFAULT_RETRY,
    DEFAULT_SCHEDULE,
    DEFAULT_TIMEZONE,
    KEEP_FIELDS,
    RETRY_WORDS,
    LeadsPolicy,
    RetryPolicy,
    ServiceHours,
    parse_service_hours,
    supported_countries,
    zone,
)

_RETRY_KEYS = frozenset({"on", "schedule", "max_age", "service_hours", "timezone", "holidays"})
_RETRY_EXAMPLE = 'retry = false, or a table such as { schedule = ["1m", "5m"], max_age = "24h" }'
CheckSecret = Callable[[str, Any], str]


def parse_retry(source: str, key: str, value: Any) -> RetryPolicy | None:
    """The `retry` value of a route (spec 8): None (retry off), the default, or a checked policy."""
    if value is None or value is True:
        return DEFAULT_RETRY
    if value is False:
        return None
    table = Reader(source, key, value, _RETRY_KEYS, example=_RETRY_EXAMPLE)
    on = attempt(lambda: _retry_words(table), DEFAULT_RETRY.on) if "on" in value else DEFAULT_RETRY.on
    schedule = attempt(lambda: _schedule(table), DEFAULT_RETRY.schedule) if "schedule" in value else DEFAULT_SCHEDULE
    max_age = DEFAULT_MAX_AGE
    if "max_age" in value:
        max_age = attempt(lambda: table.duration("max_age", value["max_age"], positive=True), DEFAULT_MAX_AGE)
    hours = attempt(lambda: _service_hours(table), None) if "service_hours" in value else None
    zone_name = attempt(lambda: _zone_name(table), DEFAULT_TIMEZONE) if "timezone" in value else DEFAULT_TIMEZONE
    country = attempt(lambda: _holidays(table), None) if "holidays" in value else None
    return RetryPolicy(on, schedule, max_age, hours, zone_name, country)


def _retry_words(table: Reader) -> frozenset[str]:
    words = table.strings("on")
    unknown = [word for word in words if word not in RETRY_WORDS]
    if unknown:
        raise table.fail("on", f"{unknown[0]!r} cannot be retried; use any of {', '.join(sorted(RETRY_WORDS))}")
    if not words:
        raise table.fail("on", "is empty; to turn retries off write retry = false")
    return frozenset(words)


def _schedule(table: Reader) -> tuple[int, ...]:
    texts = table.strings("schedule")
    if not texts:
        raise table.fail("schedule", 'is empty; list the waits between attempts, e.g. ["1m", "5m", "1h"]')
    return tuple(table.duration("schedule", text, positive=True) for text in texts)


def _service_hours(table: Reader) -> ServiceHours:
    try:
        return parse_service_hours(table.string("service_hours"))
    except ValueError as err:
        raise table.fail("service_hours", str(err)) from err


def _zone_name(table: Reader) -> str:
    name = table.string("timezone")
    try:
        zone(name)
    except (KeyError, ValueError, OSError) as err:  # ZoneInfoNotFoundError is a KeyError
        raise table.fail("timezone", f"{name!r} is not a time zone name such as America/Santiago") from err
    return name


def _holidays(table: Reader) -> str:
    country = table.string("holidays").strip().upper()
    try:
        known = supported_countries()
    except ImportError as err:  # pragma: no cover - holidays is in requirements.txt
        raise table.fail("holidays", "needs the holidays library: pip install -r requirements.txt") from err
    if country not in known:
        raise table.fail("holidays", f"{country!r} is not a country code the holidays library knows, e.g. CL")
    return country


_RECALL_KEYS = frozenset({"schedule", "max_calls"})
_RECALL_EXAMPLE = '{ schedule = ["10m", "2h", "1d"], max_calls = 3 }'


def parse_recall(source: str, key: str, value: Any) -> RecallPolicy | None:
    """The `recall` value of a route (spec 11); None when absent or false (recall is off unless set)."""
    if value is None or value is False:
        return None
    if value is True:
        return RecallPolicy()
    table = Reader(source, key, value, _RECALL_KEYS, example=_RECALL_EXAMPLE)
    schedule = RecallPolicy.schedule
    if "schedule" in value:
        texts = table.strings("schedule")
        if not texts:
            raise table.fail("schedule", 'is empty; list the waits between calls, e.g. ["10m", "2h", "1d"]')
        schedule = tuple(table.duration("schedule", text, positive=True) for text in texts)
    max_calls = RecallPolicy.max_calls
    if "max_calls" in value:
        max_calls = table.get("max_calls", int)
        if not 1 <= max_calls <= 20:
            raise table.fail("max_calls", f"must be a whole number from 1 to 20, not {max_calls}")
    return RecallPolicy(schedule, max_calls)


_OUTCOME_KEYS = frozenset({"after", "give_up", "url", "secret", "hubspot"})
_HUBSPOT_KEYS = frozenset({"token", "property", "api_url"})
_OUTCOME_EXAMPLE = '{ url = "https://hooks.zapier.com/...", secret = "env:OUTCOME_SECRET" }'
_HUBSPOT_PROPERTY = re.compile(r"[a-z][a-z0-9_]{0,99}")


def parse_outcome(source: str, key: str, value: Any, check_secret: CheckSecret | None = None) -> OutcomePolicy | None:
    """The `outcome` value of a route (spec 9); None when absent or false. `check_secret(full_key, value)`
    checks secret references (by default, as every secret of the file is checked)."""
    if value is None or value is False:
        return None
    if value is True:
        return OutcomePolicy()
    check = check_secret or (lambda full_key, ref: secret_ref(source, full_key, ref))
    table = Reader(source, key, value, _OUTCOME_KEYS, example=_OUTCOME_EXAMPLE)
    after = table.duration("after", value["after"]) if "after" in value else OUTCOME_AFTER
    give_up = table.duration("give_up", value["give_up"], positive=True) if "give_up" in value else OUTCOME_GIVE_UP
    if give_up <= after:
        raise table.fail("give_up", f'must be longer than after ({after}s), e.g. after = "10m", give_up = "3h"')
    url = secret = None
    if "url" in value:
        # Spec 9: the URL may be a secret reference (a Zapier catch hook's URL is a password).
        if isinstance(value["url"], str) and is_reference(value["url"]):
            url = check(table.key("url"), value["url"])
        else:
            url = table.url("url")
        if "secret" not in value:
            raise table.fail("secret", "missing: outcome.url needs a secret reference to sign its webhooks")
        secret = check(table.key("secret"), value["secret"])
    elif "secret" in value:
        raise table.fail("secret", "is only used with outcome.url; add the url or remove the secret")
    hubspot = attempt(lambda: _hubspot_outcome(table, check), None) if "hubspot" in value else None
    return OutcomePolicy(after, give_up, url, secret, hubspot)


def _hubspot_outcome(outcome: Reader, check: CheckSecret) -> HubSpotOutcome:
    value = outcome.data["hubspot"]
    hub = Reader(
        outcome.source, outcome.key("hubspot"), value, _HUBSPOT_KEYS, example='{ token = "env:HUBSPOT_TOKEN" }'
    )
    if "token" not in value:
        raise hub.fail("token", "missing: a private-app or service-key token, as a secret reference")
    token = check(hub.key("token"), value["token"])
    prop = hub.string("property") if "property" in value else HubSpotOutcome.property
    if not _HUBSPOT_PROPERTY.fullmatch(prop):
        raise hub.fail("property", f"{prop!r} is not a HubSpot property name (lower case, digits, _)")
    api_url = hub.url("api_url") if "api_url" in value else HUBSPOT_API_URL
    return HubSpotOutcome(token, prop, api_url)


_LEADS_KEYS = frozenset({"keep_days", "keep_fields", "hash_key"})
_LEADS = LeadsPolicy()  # the defaults


def parse_leads(source: str, value: Any, check_secret: CheckSecret | None = None) -> LeadsPolicy:
    """The `[leads]` table (spec 8, 10)."""
    if value is None:
        return LeadsPolicy()
    check = check_secret or (lambda full_key, ref: secret_ref(source, full_key, ref))
    table = Reader(source, "leads", value, _LEADS_KEYS, example="[leads] with keep_days = 30")
    keep_days = attempt(lambda: _keep_days(table), _LEADS.keep_days)
    keep_fields = attempt(lambda: _keep_fields(table), _LEADS.keep_fields)
    hash_key = attempt(lambda: check(table.key("hash_key"), value["hash_key"]), None) if "hash_key" in value else None
    return LeadsPolicy(keep_days, keep_fields, hash_key)


def _keep_days(table: Reader) -> int:
    keep_days = table.data.get("keep_days", _LEADS.keep_days)
    if isinstance(keep_days, bool) or not isinstance(keep_days, int) or keep_days <= 0:
        raise table.fail("keep_days", f"must be a whole number of days above 0, not {keep_days!r}")
    return keep_days


def _keep_fields(table: Reader) -> str:
    keep_fields = table.string("keep_fields") if "keep_fields" in table.data else _LEADS.keep_fields
    if keep_fields not in KEEP_FIELDS:
        raise table.fail("keep_fields", f'must be "until_done" or "keep", not {keep_fields!r}')
    return keep_fields


_CONVERSIONS_KEYS = frozenset({"google", "meta"})
_GOOGLE_KEYS = frozenset({"account", "conversion_action", "value", "currency", "api_url"})
_META_KEYS = frozenset({"pixel_id", "token", "event_name", "api_url"})
_CONVERSIONS_EXAMPLE = '{ google = { account = "1234567890", conversion_action = "987654321" } }'
_DIGITS_ID = re.compile(r"\d{1,20}")
_GOOGLE_ACCOUNT = re.compile(r"\d{3}-?\d{3}-?\d{4}")
_CURRENCY = re.compile(r"[A-Z]{3}")
_EVENT_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_ ]{0,49}")


def parse_conversions(
    source: str, key: str, value: Any, check_secret: CheckSecret | None = None
) -> ConversionsPolicy | None:
    """The `conversions` value of a route (spec 12); None when absent or false."""
    if value is None or value is False:
        return None
    check = check_secret or (lambda full_key, ref: secret_ref(source, full_key, ref))
    table = Reader(source, key, value, _CONVERSIONS_KEYS, example=_CONVERSIONS_EXAMPLE)
    google = attempt(lambda: _google_conversions(table), None) if "google" in value else None
    meta = attempt(lambda: _meta_conversions(table, check), None) if "meta" in value else None
    if not value or not any(name in value for name in _CONVERSIONS_KEYS):
        raise table.fail("google", f"missing: name a platform, e.g. conversions = {_CONVERSIONS_EXAMPLE}")
    return ConversionsPolicy(google, meta)


def _id(table: Reader, name: str, pattern: re.Pattern[str], missing: str, what: str) -> str:
    """A required id of an ads platform: present, a string, and of its documented form."""
    if name not in table.data:
        raise table.fail(name, f"missing: {missing}")
    found = table.string(name).strip()
    if not pattern.fullmatch(found):
        raise table.fail(name, f"{found!r} is not {what}")
    return found


def _google_conversions(conversions: Reader) -> GoogleConversions:
    value = conversions.data["google"]
    table = Reader(
        conversions.source, conversions.key("google"), value, _GOOGLE_KEYS,
        example='{ account = "1234567890", conversion_action = "987654321" }',
    )  # fmt: skip
    account = _id(table, "account", _GOOGLE_ACCOUNT, 'the Google Ads customer id, e.g. "1234567890"',
                  "a Google Ads customer id (10 digits, e.g. 123-456-7890)")  # fmt: skip
    action = _id(table, "conversion_action", _DIGITS_ID, 'the conversion action id, e.g. "987654321"',
                 "a conversion action id (digits)")  # fmt: skip
    amount = table.get("value", (int, float))
    if amount is not None and amount < 0:
        raise table.fail("value", f"must be zero or more, not {amount!r}")
    currency = table.string("currency").strip().upper() if "currency" in value else None
    if currency is not None and not _CURRENCY.fullmatch(currency):
        raise table.fail("currency", f"{currency!r} is not an ISO 4217 currency code such as CLP")
    api_url = table.url("api_url") if "api_url" in value else GOOGLE_API_URL
    return GoogleConversions(
        account.replace("-", ""), action, float(amount) if amount is not None else None, currency, api_url
    )


def _meta_conversions(conversions: Reader, check: CheckSecret) -> MetaConversions:
    value = conversions.data["meta"]
    table = Reader(
        conversions.source, conversions.key("meta"), value, _META_KEYS,
        example='{ pixel_id = "123456789012345", token = "env:META_CAPI_TOKEN" }',
    )  # fmt: skip
    pixel = _id(table, "pixel_id", _DIGITS_ID, 'the pixel (dataset) id, e.g. "123456789012345"', "a pixel id (digits)")
    if "token" not in value:
        raise table.fail("token", "missing: the Conversions API access token, as a secret reference")
    token = check(table.key("token"), value["token"])
    event_name = table.string("event_name").strip() if "event_name" in value else MetaConversions.event_name
    if not _EVENT_NAME.fullmatch(event_name):
        raise table.fail("event_name", f"{event_name!r} is not an event name such as Contact or Lead")
    api_url = table.url("api_url") if "api_url" in value else META_API_URL
    return MetaConversions(pixel, token, event_name, api_url)
