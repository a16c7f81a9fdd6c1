"""Attribution (spec 10): the campaign a lead came from, kept on its record for keep_days. Pure.

`utm_source`, `utm_medium`, `utm_campaign`, `utm_term` and `utm_content` are not personal: they name a
campaign, not a person, so they stay on the record whatever `leads.keep_fields` says, and `leads stats`
and `leads report` compare campaigns by them. They are read from the first of these that has any:
the submission's own fields (a form's hidden inputs), the query string the submission was posted to,
and the page's query string (the Referer; Origin carries none). Click ids (gclid, fbclid, ...) are not
read here: they identify a person's click, and are kept only as long as conversions need (spec 12).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlsplit

FIELDS = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")
MAX_LENGTH = 200  # a campaign name, not a document: longer values are cut


def _clean(value: Any) -> str | None:
    if isinstance(value, list):
        value = next((v for v in value if v not in (None, "")), None)
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return None
    text = "".join(char for char in str(value) if char.isprintable()).strip()
    return text[:MAX_LENGTH] or None


def _from(fields: Mapping[str, Any]) -> dict[str, str]:
    """The utm_* values among `fields`, their names in any case ("UTM_Source" too)."""
    lowered = {str(key).lower(): value for key, value in fields.items() if isinstance(key, str)}
    found = {}
    for name in FIELDS:
        value = _clean(lowered.get(name))
        if value is not None:
            found[name] = value
    return found


def _page_query(headers: Mapping[str, str]) -> dict[str, Any]:
    referer = headers.get("referer")
    if not isinstance(referer, str) or len(referer) > 8192:
        return {}
    try:
        query = urlsplit(referer).query
    except ValueError:
        return {}
    return dict(parse_qsl(query, keep_blank_values=False))


def extract(body: Mapping[str, Any], query: Mapping[str, Any], headers: Mapping[str, str]) -> dict[str, str]:
    """The lead's utm_* fields, from one source only (one click's values are never mixed with another's)."""
    fields = {key: value for key, value in body.items() if key != "query"}
    for source in (fields, query, _page_query(headers)):
        found = _from(source)
        if found:
            return found
    return {}
