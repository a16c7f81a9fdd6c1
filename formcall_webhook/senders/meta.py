"""auth.type = "meta": Facebook and Instagram Lead Ads (spec section 5).

Meta subscribes a URL with a GET handshake (hub.mode, hub.verify_token, hub.challenge), then POSTs each
delivery signed with X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body, keyed with the app
secret>. A delivery names leads by id only (entry[].changes[] with field "leadgen"); their fields are read
from the Graph API (clients/meta_graph.py)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, NamedTuple
from urllib.parse import parse_qsl

from ..errors import BadRequest, HandshakeRefused
from .base import (
    DAY_SECONDS,
    Auth,
    Incoming,
    Resolve,
    Scheme,
    VouchedDelivery,
    denied,
    equal,
    hmac_sha256,
    register,
    secret,
)

_PREFIX = "sha256="
# Meta's challenge is a number; anything else is not echoed back (a reflected page is never served).
_CHALLENGE = re.compile(r"^[A-Za-z0-9._~-]{1,256}$")
# Graph ids are digits: checked before one becomes part of a URL path.
_LEADGEN_ID = re.compile(r"^[0-9]{1,32}$")
# What a delivery's change value says beside the id; kept in the lead's body.
_VALUE_KEYS = ("ad_id", "form_id", "created_time", "page_id", "adgroup_id")


def meta_signature(app_secret: str, body: bytes) -> str:
    return _PREFIX + hmac_sha256(app_secret, body).hex()


class Meta(Scheme):
    name = "meta"
    secret_keys = ("secret", "verify_token", "page_token")
    credential_headers = frozenset({"x-hub-signature-256", "x-hub-signature"})
    signed = True

    def verify(self, auth: Auth, request: Incoming, resolve: Resolve) -> VouchedDelivery | None:
        sent = request.headers.get("x-hub-signature-256", "").strip().lower()
        if not sent.startswith(_PREFIX):
            raise denied("no X-Hub-Signature-256: sha256=...")
        if not equal(sent, meta_signature(secret(auth, resolve), request.body)):
            raise denied("Meta signature does not match")
        # Each lead is caught as a replay by its leadgen_id (app.py); the signature covers the delivery.
        return VouchedDelivery(sent, DAY_SECONDS)


def handshake(auth: Auth, query_string: bytes, resolve: Resolve) -> str:
    """The challenge to answer when the GET is Meta subscribing with our verify token; HandshakeRefused
    (403) otherwise, Misconfigured (500) when the verify token is not configured."""
    expected = secret(auth, resolve, auth.verify_token)
    try:
        query = dict(parse_qsl(query_string.decode("utf-8"), keep_blank_values=True))
    except UnicodeDecodeError as err:
        raise HandshakeRefused("The subscription could not be verified.", reason="query not UTF-8") from err
    mode, token, challenge = (query.get(k, "") for k in ("hub.mode", "hub.verify_token", "hub.challenge"))
    # Compared whatever the mode, so the time taken says nothing about which part was wrong.
    matches = equal(token, expected)
    if mode != "subscribe" or not matches or not _CHALLENGE.match(challenge):
        raise HandshakeRefused(
            "The subscription could not be verified.",
            reason="hub.mode is not subscribe" if mode != "subscribe" else
            "hub.verify_token does not match" if not matches else "hub.challenge malformed",
        )  # fmt: skip
    return challenge


class Leadgen(NamedTuple):
    """One lead a delivery names: its id, and what the change said about it (ad, form, page, time)."""

    leadgen_id: str
    value: Mapping[str, str]


def leadgens(body: Any) -> list[Leadgen]:
    """The leads a parsed delivery names, in order, each once; BadRequest when it is not a delivery."""
    entries = body.get("entry") if isinstance(body, dict) else None
    if not isinstance(entries, list):
        raise BadRequest("The body is not a Meta webhook delivery.", reason="no entry list")
    found: dict[str, Leadgen] = {}
    for entry in entries:
        changes = entry.get("changes") if isinstance(entry, dict) else None
        for change in changes if isinstance(changes, list) else ():
            if not isinstance(change, dict) or change.get("field") != "leadgen":
                continue
            value = change.get("value")
            if not isinstance(value, dict):
                continue
            leadgen_id = _id(value.get("leadgen_id"))
            if leadgen_id is None or leadgen_id in found:
                continue
            kept = {k: text for k in _VALUE_KEYS if (text := _id(value.get(k))) is not None}
            found[leadgen_id] = Leadgen(leadgen_id, kept)
    return list(found.values())


def _id(raw: Any) -> str | None:
    """Meta sends ids as numbers or as strings of digits; anything else is no id."""
    if isinstance(raw, bool):
        return None
    text = str(raw) if isinstance(raw, int) else raw if isinstance(raw, str) else None
    return text if text is not None and _LEADGEN_ID.match(text) else None


SCHEME = register(Meta())
