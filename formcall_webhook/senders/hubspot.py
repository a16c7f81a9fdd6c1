"""auth.type = "hubspot": HubSpot's request signature v3 (X-HubSpot-Signature-v3), 300 s window."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from .base import (
    WINDOW_SECONDS,
    Auth,
    Incoming,
    Resolve,
    Scheme,
    VouchedDelivery,
    b64,
    denied,
    equal,
    hmac_sha256,
    register,
    secret,
    within,
)

# HubSpot v3: these escapes are decoded in the URI before signing; every other one is kept as sent.
_DECODED = {
    "%3A": ":", "%2F": "/", "%3F": "?", "%40": "@", "%21": "!", "%24": "$",
    "%27": "'", "%28": "(", "%29": ")", "%2A": "*", "%2C": ",", "%3B": ";",
}  # fmt: skip
_ESCAPE = re.compile("|".join(_DECODED), re.IGNORECASE)


def hubspot_uri(public_url: str | None, url: str, query_string: bytes) -> str:
    """The URI HubSpot signed: the public URL as entered in HubSpot plus the query, decoded as v3 says."""
    if public_url:
        uri = public_url.split("?", 1)[0]
        if query_string:
            uri += "?" + query_string.decode("utf-8", "replace")
    else:
        uri = url
    return _ESCAPE.sub(lambda m: _DECODED[m.group(0).upper()], uri)


def hubspot_signature(secret_value: str, method: str, uri: str, body: bytes, timestamp: str) -> str:
    message = method.upper().encode() + uri.encode("utf-8") + body + timestamp.encode()
    return b64(hmac_sha256(secret_value, message))


def raw_url(environ: Mapping[str, Any]) -> str:
    """The request URL exactly as the client sent it, from gunicorn's RAW_URI (or REQUEST_URI).
    Werkzeug's request.url is rebuilt from the decoded path and query: it turns %C3%A9 into "é",
    while HubSpot signs "%C3%A9"."""
    scheme = environ.get("wsgi.url_scheme") or "http"
    host = environ.get("HTTP_HOST") or f"{environ.get('SERVER_NAME', '')}:{environ.get('SERVER_PORT', '')}"
    target = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if not isinstance(target, str) or not target:
        # No server-provided raw target: re-quote the WSGI path (latin-1 decoded bytes, as PEP 3333 says).
        path = quote(f"{environ.get('SCRIPT_NAME', '')}{environ.get('PATH_INFO', '')}", safe="/", encoding="latin-1")
        query = environ.get("QUERY_STRING") or ""
        target = f"{path}?{query}" if query else path
    if target.startswith(("http://", "https://")):  # absolute-form request target
        return target
    return f"{scheme}://{host}{target}"


class HubSpot(Scheme):
    name = "hubspot"
    secret_keys = ("secret",)
    # v1 and v2 signatures too: whichever HubSpot sent, none belongs in a template.
    credential_headers = frozenset({"x-hubspot-signature-v3", "x-hubspot-signature"})
    signed = True

    def verify(self, auth: Auth, request: Incoming, resolve: Resolve) -> VouchedDelivery | None:
        signature = request.headers.get("x-hubspot-signature-v3", "").strip()
        timestamp = request.headers.get("x-hubspot-request-timestamp", "").strip()
        if not signature or not timestamp:
            raise denied("no X-HubSpot-Signature-v3 or X-HubSpot-Request-Timestamp")
        # Milliseconds, an integer: a float or seconds is not what HubSpot sends.
        if not within(timestamp, request.now, WINDOW_SECONDS, per_second=1000):
            raise denied("HubSpot timestamp missing, malformed or outside the 300 s window")
        uri = hubspot_uri(auth.public_url, request.url, request.query_string)
        expected = hubspot_signature(secret(auth, resolve), request.method, uri, request.body, timestamp)
        if not equal(signature, expected):
            raise denied("HubSpot signature does not match")
        return VouchedDelivery(signature, WINDOW_SECONDS)


SCHEME = register(HubSpot())
