"""What every signature scheme shares: the interface, constant-time compare, the time window, the registry.

Each scheme is one module (as django-anymail's webhooks/): it declares its name, the auth keys it needs,
the headers that carry its credential, and verify(), which returns the delivery id it vouches for."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Callable, Mapping
from typing import ClassVar, NamedTuple

from ..errors import Misconfigured, Unauthorized

Resolve = Callable[[str], str]

# HubSpot, Webflow and Standard Webhooks all sign with a 5-minute window.
WINDOW_SECONDS = 300
# Typeform and Tally sign no time: a replay is caught for a day, as long as they retry.
DAY_SECONDS = 86400
DEFAULT_TOKEN_HEADER = "X-Webhook-Token"  # noqa: S105 - a header name, not a secret
GRAPH_URL = "https://graph.facebook.com"
# The newest Graph API version (Meta's changelog, developers.facebook.com/docs/graph-api/changelog).
GRAPH_VERSION = "v26.0"
_DENIED = "The request could not be authenticated."
_MISCONFIGURED = "The function is not configured correctly."
# ASCII digits, at most 16 of them: str.isdigit() also takes "²" and numbers too big for a float.
_TIMESTAMP = re.compile(r"^[0-9]{1,16}$")


class Auth(NamedTuple):
    """A route's `auth` table (spec section 5)."""

    type: str = "none"
    secret: str | None = None
    header: str = DEFAULT_TOKEN_HEADER
    username: str | None = None
    password: str | None = None
    public_url: str | None = None
    # ?token= puts the secret into Cloud Run's request logs: a route can turn it off.
    query_token: bool = True
    # meta: the webhook's verify token and the page token the leads are read with (secret references),
    # and where the Graph API is (tests point graph_url at a loopback fake).
    verify_token: str | None = None
    page_token: str | None = None
    graph_url: str = GRAPH_URL
    graph_version: str = GRAPH_VERSION


class VouchedDelivery(NamedTuple):
    """The delivery a signature vouches for: a replay of the same id inside the window is a duplicate."""

    id: str
    window_seconds: int


class Incoming(NamedTuple):
    """What a scheme may look at: the raw request, before anything is parsed."""

    method: str
    url: str
    query_string: bytes
    headers: Mapping[str, str]  # lower-case names
    body: bytes
    now: float  # seconds since the epoch

    def __repr__(self) -> str:  # the object's own: a tuple's repr would print the raw body and its signature
        return object.__repr__(self)


class Scheme:
    """One auth type. Subclasses set the class attributes and implement verify()."""

    name: ClassVar[str]
    # Auth attributes that hold secret references; every one is required.
    secret_keys: ClassVar[tuple[str, ...]] = ()
    # Other Auth attributes the type cannot work without.
    required_keys: ClassVar[tuple[str, ...]] = ()
    # Lower-case request headers that carry the credential (kept out of templates).
    credential_headers: ClassVar[frozenset[str]] = frozenset()
    # The signature proves who sent the body; the delivery id it returns can be trusted.
    signed: ClassVar[bool] = False

    def verify(self, auth: Auth, request: Incoming, resolve: Resolve) -> VouchedDelivery | None:
        """Returns the delivery the credential vouches for (None when unsigned); raises Unauthorized."""
        raise NotImplementedError


REGISTRY: dict[str, Scheme] = {}


def register(scheme: Scheme) -> Scheme:
    REGISTRY[scheme.name] = scheme
    return scheme


def denied(reason: str, headers: dict[str, str] | None = None) -> Unauthorized:
    return Unauthorized(_DENIED, reason=reason, headers=headers)


def misconfigured(reason: str) -> Misconfigured:
    return Misconfigured(_MISCONFIGURED, reason=reason)


def equal(a: str | bytes, b: str | bytes) -> bool:
    """Constant time, whatever the lengths or types."""
    left = a.encode() if isinstance(a, str) else a
    right = b.encode() if isinstance(b, str) else b
    return hmac.compare_digest(left, right)


def secret(auth: Auth, resolve: Resolve, ref: str | None = None) -> str:
    """The secret's value; a missing or empty one is the operator's fault (500), never a pass."""
    reference = ref if ref is not None else auth.secret
    if not reference:
        raise misconfigured(f"auth type {auth.type}: secret missing")
    value = resolve(reference)
    if not value:
        raise misconfigured(f"auth type {auth.type}: the secret is empty")
    return value


def within(timestamp: str, now: float, window_seconds: int, *, per_second: int = 1) -> bool:
    """A whole-number timestamp (per_second=1000 for milliseconds) no further than the window from now,
    either way: a signature dated in the future cannot be stored and replayed later."""
    if not _TIMESTAMP.match(timestamp):
        return False
    return abs(now * per_second - int(timestamp)) <= window_seconds * per_second


def hmac_sha256(key: bytes | str, message: bytes) -> bytes:
    raw = key.encode("utf-8") if isinstance(key, str) else key
    return hmac.new(raw, message, hashlib.sha256).digest()


def b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode("ascii")
