"""Consent to be called and the opt-out hash (spec 10, Chile's law 21.719); pure."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any, NamedTuple
from urllib.parse import urlsplit, urlunsplit

from .errors import ConfigError, ConsentMissing

GIVEN_WORDS = frozenset({"true", "on", "1", "si", "sí", "yes", "acepto"})
ORIGIN_MAX_LENGTH = 512
_KEYS = frozenset({"field", "required", "text", "ads_field"})
_EXAMPLE = '{ field = "acepto", required = true, text = "v2026-12" }'


class ConsentRule(NamedTuple):
    """A route's consent field; `text` names the wording the person agreed to (a version, a URL);
    `ads_field` the separate consent to ads measurement (spec 12)."""

    field: str
    required: bool = False
    text: str | None = None
    ads_field: str | None = None


def parse_consent(source: str, key: str, value: Any) -> ConsentRule | None:
    """The `consent` value of a route: None when absent or false, a field name, or a table."""
    if value is None or value is False:
        return None
    if isinstance(value, str):
        value = {"field": value}
    if not isinstance(value, Mapping):
        raise ConfigError(source, key, f"must be a table, e.g. {_EXAMPLE}")
    for name in value:
        if name not in _KEYS:
            raise ConfigError(source, f"{key}.{name}", f"unknown key; known keys here: {', '.join(sorted(_KEYS))}")
    field = value.get("field")
    if not isinstance(field, str) or not field.strip():
        raise ConfigError(source, f"{key}.field", f"missing: the name of the form's consent field, e.g. {_EXAMPLE}")
    required = value.get("required", False)
    if not isinstance(required, bool):
        raise ConfigError(source, f"{key}.required", f"must be true or false, not {required!r}")
    text = value.get("text")
    if text is not None and not isinstance(text, str):
        raise ConfigError(source, f"{key}.text", f"must be a string such as a version or a URL, not {text!r}")
    ads_field = value.get("ads_field")
    if ads_field is not None and (not isinstance(ads_field, str) or not ads_field.strip()):
        raise ConfigError(
            source, f"{key}.ads_field", f"must be the name of the form's ads consent field, not {ads_field!r}"
        )
    return ConsentRule(field.strip(), required, text, ads_field.strip() if ads_field else None)


def is_given(value: Any) -> bool:
    """A checked box: true, on, 1, si, sí, yes or acepto in any case; a list when any item is."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value == 1
    if isinstance(value, str):
        return value.strip().lower() in GIVEN_WORDS
    if isinstance(value, list | tuple):
        return any(is_given(item) for item in value)
    return False


def _lookup(body: Mapping[str, Any], field: str) -> Any:
    """The field's value where forms put it: top level, a dotted path, or the nested forms of builders."""
    candidates: list[Any] = [body.get(field)]
    if "." in field:
        node: Any = body
        for part in field.split("."):
            node = node.get(part) if isinstance(node, Mapping) else None
        candidates.append(node)
    # Elementor's webhook (fields[acepto][value]) and HubSpot's (properties.acepto.value).
    for container in ("fields", "form_fields", "properties"):
        nested = body.get(container)
        if isinstance(nested, Mapping):
            candidates.append(nested.get(field))
    # Unbounce sends its fields as JSON inside the data.json field.
    if isinstance(body.get("data.json"), str):
        try:
            unbounce = json.loads(body["data.json"])
        except ValueError:
            unbounce = None
        if isinstance(unbounce, Mapping):
            candidates.append(unbounce.get(field))
    # Tally: a list of {key, label, value} under data.fields.
    data = body.get("data")
    items = data.get("fields") if isinstance(data, Mapping) else None
    if isinstance(items, list):
        candidates.extend(
            item.get("value")
            for item in items
            if isinstance(item, Mapping) and field in (item.get("key"), item.get("label"))
        )
    for found in candidates:
        if isinstance(found, Mapping):
            found = found.get("value")
        if found is not None:
            return found
    return None


def origin_of(headers: Mapping[str, str]) -> str | None:
    """The page a submission came from: Origin, else Referer, without query, fragment or user info."""
    for name in ("origin", "referer"):
        page = _page(headers.get(name))
        if page is not None:
            return page
    return None


def _page(value: str | None) -> str | None:
    if not isinstance(value, str) or any(ord(char) < 0x21 or ord(char) == 0x7F for char in value):
        return None
    try:
        parts = urlsplit(value)
        host = parts.hostname
        port = parts.port
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not host:
        return None
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{port}" if port is not None else host
    return urlunsplit((parts.scheme.lower(), netloc, parts.path, "", ""))[:ORIGIN_MAX_LENGTH]


def record(
    rule: ConsentRule, body: Mapping[str, Any], headers: Mapping[str, str], received_at: str
) -> dict[str, Any] | None:
    """The lead record's `consent`, None when not given and not required; ConsentMissing when required.

    With `ads_field`, the record says whether the person also consented to ads measurement: `ads`."""
    given = is_given(_lookup(body, rule.field))
    if not given and rule.required:
        raise ConsentMissing(
            "Consent to be called was not given.",
            reason=f"consent field {rule.field!r} not given",
        )
    ads = rule.ads_field is not None and is_given(_lookup(body, rule.ads_field))
    if not given and not ads:
        return None
    kept: dict[str, Any] = {"given": given, "field": rule.field, "text": rule.text, "at": received_at,
                            "origin": origin_of(headers)}  # fmt: skip
    if rule.ads_field is not None:
        kept["ads"] = ads
    return kept


def ads_given(consent: Mapping[str, Any] | None) -> bool:
    """Whether a record's consent covers ads measurement (spec 12)."""
    return consent is not None and consent.get("ads") is True


def optout_hash(key: bytes, e164: str) -> str:
    """The opt-out list's entry for a number: hex HMAC-SHA256, so the list never holds numbers."""
    return hmac.new(key, e164.encode(), hashlib.sha256).hexdigest()
