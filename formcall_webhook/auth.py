"""Who may submit (spec section 5): checked on the raw bytes, before parsing, in constant time."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import time
from collections.abc import Callable, Mapping
from urllib.parse import parse_qsl

from .config import Auth
from .errors import Misconfigured, Unauthorized

# HubSpot signs with a 5-minute window; Standard Webhooks recommends the same tolerance.
WINDOW_SECONDS = 300
_DENIED = "The request could not be authenticated."
# HubSpot v3: these escapes are decoded in the URI before signing; every other one is kept.
_HUBSPOT_DECODED = {
    "%3A": ":", "%2F": "/", "%3F": "?", "%40": "@", "%21": "!", "%24": "$",
    "%27": "'", "%28": "(", "%29": ")", "%2A": "*", "%2C": ",", "%3B": ";",
}  # fmt: skip
_HUBSPOT_ESCAPE = re.compile("|".join(_HUBSPOT_DECODED), re.IGNORECASE)
_WHSEC = "whsec_"
# ASCII digits, at most 16 of them: str.isdigit() also takes "²" and numbers too big for a float.
_TIMESTAMP = re.compile(r"^[0-9]{1,16}$")
_BASIC_CHALLENGE = {"WWW-Authenticate": 'Basic realm="formcall-webhook", charset="UTF-8"'}


def _denied(reason: str, headers: dict[str, str] | None = None) -> Unauthorized:
    return Unauthorized(_DENIED, reason=reason, headers=headers)


def _equal(a: str | bytes, b: str | bytes) -> bool:
    left = a.encode() if isinstance(a, str) else a
    right = b.encode() if isinstance(b, str) else b
    return hmac.compare_digest(left, right)


def authenticate(
    auth: Auth,
    *,
    method: str,
    url: str,
    query_string: bytes,
    headers: Mapping[str, str],
    body: bytes,
    resolve: Callable[[str], str],
    now: float | None = None,
) -> None:
    """Returns when the request may go on; raises Unauthorized (401) otherwise, fail closed."""
    if auth.type == "none":
        return
    clock = time.time() if now is None else now
    if auth.type == "token":
        _check_token(auth, headers, query_string, resolve)
    elif auth.type == "basic":
        _check_basic(auth, headers, resolve)
    elif auth.type == "hubspot":
        _check_hubspot(auth, method, url, query_string, headers, body, resolve, clock)
    elif auth.type == "standard_webhooks":
        _check_standard_webhooks(auth, headers, body, resolve, clock)
    else:  # config.py refuses other types; never let one through
        raise _denied(f"unknown auth type {auth.type}")


def _secret(auth: Auth, resolve: Callable[[str], str], ref: str | None = None) -> str:
    reference = ref if ref is not None else auth.secret
    if not reference:
        raise Misconfigured("The function is not configured correctly.", reason="auth secret missing")
    value = resolve(reference)
    if not value:
        raise Misconfigured("The function is not configured correctly.", reason="auth secret is empty")
    return value


def query_token(query_string: bytes) -> str | None:
    for key, value in parse_qsl(query_string.decode("utf-8", "replace"), keep_blank_values=True):
        if key == "token":
            return value
    return None


def _check_token(auth: Auth, headers: Mapping[str, str], query_string: bytes, resolve: Callable[[str], str]) -> None:
    expected = _secret(auth, resolve)
    sent = headers.get(auth.header.lower())
    if sent is None:
        sent = query_token(query_string)
    if not sent:
        raise _denied(f"no token in {auth.header} or ?token=")
    if not _equal(sent.strip(), expected):
        raise _denied("wrong token")


def _check_basic(auth: Auth, headers: Mapping[str, str], resolve: Callable[[str], str]) -> None:
    password = _secret(auth, resolve, auth.password)
    scheme, _, encoded = headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic" or not encoded:
        raise _denied("no Basic credentials", _BASIC_CHALLENGE)
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as err:
        raise _denied("malformed Basic credentials", _BASIC_CHALLENGE) from err
    username, sep, sent_password = decoded.partition(":")
    # Both compared, always: no early exit that would time which one was wrong.
    user_ok = _equal(username, auth.username or "")
    password_ok = _equal(sent_password, password)
    if not (sep and user_ok and password_ok):
        raise _denied("wrong Basic credentials", _BASIC_CHALLENGE)


def hubspot_uri(public_url: str | None, url: str, query_string: bytes) -> str:
    """The URI HubSpot signed: the public URL as entered in HubSpot plus the query, decoded as v3 says."""
    if public_url:
        uri = public_url.split("?", 1)[0]
        if query_string:
            uri += "?" + query_string.decode("utf-8", "replace")
    else:
        uri = url
    return _HUBSPOT_ESCAPE.sub(lambda m: _HUBSPOT_DECODED[m.group(0).upper()], uri)


def hubspot_signature(secret: str, method: str, uri: str, body: bytes, timestamp: str) -> str:
    message = method.upper().encode() + uri.encode("utf-8") + body + timestamp.encode()
    return base64.b64encode(hmac.new(secret.encode("utf-8"), message, hashlib.sha256).digest()).decode()


def _check_hubspot(
    auth: Auth,
    method: str,
    url: str,
    query_string: bytes,
    headers: Mapping[str, str],
    body: bytes,
    resolve: Callable[[str], str],
    now: float,
) -> None:
    signature = headers.get("x-hubspot-signature-v3", "").strip()
    timestamp = headers.get("x-hubspot-request-timestamp", "").strip()
    if not signature or not timestamp:
        raise _denied("no X-HubSpot-Signature-v3 or X-HubSpot-Request-Timestamp")
    # Milliseconds, an integer: a float or seconds is not what HubSpot sends.
    if not _TIMESTAMP.match(timestamp) or abs(now * 1000 - int(timestamp)) > WINDOW_SECONDS * 1000:
        raise _denied("HubSpot timestamp missing, malformed or outside the 300 s window")
    secret = _secret(auth, resolve)
    expected = hubspot_signature(secret, method, hubspot_uri(auth.public_url, url, query_string), body, timestamp)
    if not _equal(signature, expected):
        raise _denied("HubSpot signature does not match")


def _whsec_key(secret: str) -> bytes:
    encoded = secret.removeprefix(_WHSEC)
    try:
        key = base64.b64decode(encoded, validate=True)
    except binascii.Error as err:
        raise Misconfigured(
            "The function is not configured correctly.", reason="standard_webhooks secret is not whsec_<base64>"
        ) from err
    if not key:
        raise Misconfigured("The function is not configured correctly.", reason="standard_webhooks secret is empty")
    return key


def standard_webhooks_signature(secret: str, msg_id: str, timestamp: str, body: bytes) -> str:
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return base64.b64encode(hmac.new(_whsec_key(secret), signed, hashlib.sha256).digest()).decode()


def _check_standard_webhooks(
    auth: Auth, headers: Mapping[str, str], body: bytes, resolve: Callable[[str], str], now: float
) -> None:
    msg_id = headers.get("webhook-id", "").strip()
    timestamp = headers.get("webhook-timestamp", "").strip()
    signatures = headers.get("webhook-signature", "").split()
    if not msg_id or not timestamp or not signatures:
        raise _denied("no webhook-id, webhook-timestamp or webhook-signature")
    # Seconds; checked both ways, so a signature from the future cannot be stored and replayed.
    if not _TIMESTAMP.match(timestamp) or abs(now - int(timestamp)) > WINDOW_SECONDS:
        raise _denied("webhook-timestamp missing, malformed or outside the 300 s window")
    expected = standard_webhooks_signature(_secret(auth, resolve), msg_id, timestamp, body)
    # Several signatures: the sender signs with old and new keys while a secret is rotated.
    matched = False
    for entry in signatures:
        version, _, value = entry.partition(",")
        if version == "v1" and _equal(value, expected):
            matched = True
    if not matched:
        raise _denied("no webhook-signature matches")
