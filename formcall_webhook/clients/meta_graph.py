"""A Meta lead read from the Graph API by its leadgen_id (spec section 5).

Pure request builder and answer parser first; `GraphClient` runs them over the shared transport.
  GET {graph_url}/{graph_version}/{leadgen_id}     Authorization: Bearer {page token}
answers {"id", "created_time", "field_data": [{"name", "values": [...]}]} (developers.facebook.com/docs/
marketing-api/guides/lead-ads/retrieving). The token travels in the header, never in the URL, so no
proxy or request log keeps it.

Every failure is one kind, GraphUnavailable: Graph answers an id it cannot read (deleted, or a token that
lost leads_retrieval) with the same error 100/33, so no answer proves a lead does not exist, and the
caller keeps the id to read again later rather than dropping a lead on an ambiguous answer.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .http import Answer, Pool, TransportError, make_pool, send

GRAPH_URL = "https://graph.facebook.com"
# One lead read, whatever FormCall's timeout: a delivery may name several leads, and Meta waits for all.
TIMEOUT_SECONDS = 5.0
_ID = re.compile(r"^[0-9]{1,32}$")
_MAX_FIELDS = 200
_MAX_VALUE = 2000


class GraphUnavailable(Exception):
    """No lead read: Graph unreachable, slow, refusing the token, or answering something else. `reason`
    is for the log (never the token, never a field value)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Read:
    """One lead read, built without I/O."""

    url: str
    headers: Mapping[str, str]


def build_read(graph_url: str, version: str, leadgen_id: str, page_token: str) -> Read:
    if not _ID.match(leadgen_id):  # never let a sender's string into the path
        raise ValueError("leadgen_id must be digits")
    url = f"{graph_url.rstrip('/')}/{version}/{leadgen_id}"
    return Read(url, {"Authorization": f"Bearer {page_token}", "Accept": "application/json"})


def parse_read(answer: Answer, leadgen_id: str) -> dict[str, Any]:
    """The lead Graph answered, or GraphUnavailable saying why not."""
    data = _json(answer.body) if not answer.truncated else None
    if answer.status != 200:
        error = data.get("error") if isinstance(data, dict) else None
        if isinstance(error, dict):
            code, sub = error.get("code"), error.get("error_subcode")
            raise GraphUnavailable(f"Graph API {answer.status}, error {code}" + (f"/{sub}" if sub else ""))
        raise GraphUnavailable(f"Graph API {answer.status}")
    if not isinstance(data, dict) or not isinstance(data.get("field_data"), list):
        raise GraphUnavailable("Graph API answered something that is not a lead")
    if str(data.get("id", "")) != leadgen_id:
        raise GraphUnavailable("Graph API answered another lead's id")
    return data


def flat_body(lead: Mapping[str, Any], change: Mapping[str, str], leadgen_id: str) -> dict[str, Any]:
    """The lead as the mapping reads a form: each answer by its field name (phone_number, full_name,
    email and the custom questions), plus ad_id, form_id, leadgen_id and created_time. The ids come last,
    so no question named like one can stand in for it."""
    body: dict[str, Any] = {}
    for item in lead.get("field_data", [])[:_MAX_FIELDS]:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            continue
        values = item.get("values")
        values = values if isinstance(values, list) else [values] if values is not None else []
        # A multiple-choice answer holds several values: one text, as a form would send them.
        text = ", ".join(str(v) for v in values if isinstance(v, (str, int, float)) and not isinstance(v, bool))
        body[item["name"]] = text[:_MAX_VALUE]
    for key in ("ad_id", "form_id"):
        value = lead.get(key, change.get(key))
        if value is not None:
            body[key] = str(value)
    body["leadgen_id"] = leadgen_id
    created = lead.get("created_time", change.get("created_time"))
    if created is not None:
        body["created_time"] = str(created)
    return body


class GraphClient:
    """Lead reads over one pooled connection set (clients/http.py), each within its own timeout."""

    def __init__(self, pool: Pool | None = None, timeout: float = TIMEOUT_SECONDS) -> None:
        self._pool = pool
        self.timeout = timeout

    @property
    def pool(self) -> Pool:
        if self._pool is None:
            self._pool = make_pool(maxsize=8)
        return self._pool

    def read(self, graph_url: str, version: str, leadgen_id: str, page_token: str) -> dict[str, Any]:
        request = build_read(graph_url, version, leadgen_id, page_token)
        try:
            answer = send(self.pool, "GET", request.url, headers=request.headers, body=None, timeout=self.timeout)
        except TransportError as err:
            raise GraphUnavailable(f"Graph API {err.reason}") from err
        return parse_read(answer, leadgen_id)


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return None
