"""A submission parsed and mapped for FormCall: body and query, phone, popup and adicional (spec 2, 3).

Pure: no store, no network, no runtime. The request path (app.py) and `try` (cli/check.py) share it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from . import mapping, parsing, phones
from .config import Route, is_uuid
from .errors import MISCONFIGURED, BadRequest, Misconfigured
from .senders import private_headers
from .templates import TemplateFailed

MASKED_TOKEN = "***"  # noqa: S105 - the mask, not a secret


class Mapped(NamedTuple):
    """A submission mapped for FormCall: the template context, the lead and the payload."""

    context: dict[str, Any]
    lead: phones.Number
    payload: dict[str, Any]

    def __repr__(self) -> str:  # the object's own: a tuple's repr would print the payload
        return object.__repr__(self)


def parse_submission(
    route: Route, method: str, headers: Mapping[str, str], query_string: bytes, raw: bytes
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The submission (body with the query merged in under "query") and the query itself."""
    query = parsing.parse_query(query_string)
    if route.auth.type == "token":
        query.pop("token", None)  # a credential, not data a template could copy out
    # A GET webhook (HubSpot, Zapier) carries the submission in the query string.
    body = dict(query) if method == "GET" else parsing.parse_body(headers.get("content-type"), raw)
    body["query"] = query
    return body, query


def map_submission(
    route: Route,
    body: dict[str, Any],
    query: dict[str, Any],
    headers: Mapping[str, str],
) -> Mapped:
    """Phone, popup and adicional from the route's templates (or the built-in finder). Pure: no I/O."""
    context = mapping.template_context(body, query, headers, route.name, private_headers(route.auth))
    finder = mapping.Finder(body)
    typed = mapping.typed_phone(route, context, finder)
    lead = phones.normalize(typed, route.region, route.allowed_regions, route.allowed_number_types)
    context["lead"] = mapping.lead_context(lead)
    assert route.popup_uuid is not None
    try:
        popup = route.popup_uuid.render_strict(context)
    except TemplateFailed as err:
        # The data's fault, not the config's: the same submission would fail again, so no 5xx.
        raise BadRequest(
            "The submission's fields do not fit this route's popup_uuid template.",
            reason=f"routes.{route.name}.popup_uuid failed on this submission ({err})",
        ) from err
    if not is_uuid(popup):
        raise Misconfigured(
            MISCONFIGURED, reason=f"routes.{route.name}.popup_uuid rendered to something that is not a UUID"
        )
    payload: dict[str, Any] = {
        "popup_uuid": popup,
        "country_code": lead.country_code,
        "areacode": lead.areacode,
        "phonenumber": lead.phonenumber,
        "security_token": "",
    }
    extra = mapping.adicional(route, context, finder)
    if extra:
        payload["adicional"] = extra
    return Mapped(context, lead, payload)
