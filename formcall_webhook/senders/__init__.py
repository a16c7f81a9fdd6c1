"""Who may submit (spec section 5): one module per auth type, all behind base.Scheme and one registry.

Checked on the raw bytes, before anything is parsed, in constant time, failing closed."""

from __future__ import annotations

import time
from collections.abc import Mapping

from . import basic, hubspot, meta, none, standard_webhooks, tally, token, typeform, webflow
from .base import (
    DEFAULT_TOKEN_HEADER,
    GRAPH_URL,
    GRAPH_VERSION,
    REGISTRY,
    Auth,
    Incoming,
    Resolve,
    VouchedDelivery,
    denied,
)
from .hubspot import raw_url

__all__ = [
    "AUTH_TYPES",
    "DEFAULT_TOKEN_HEADER",
    "GRAPH_URL",
    "GRAPH_VERSION",
    "REGISTRY",
    "SIGNED_TYPES",
    "Auth",
    "VouchedDelivery",
    "authenticate",
    "private_headers",
    "raw_url",
    "secret_refs",
]

# The modules register themselves on import; listed here so the order (and the lint) is explicit.
_MODULES = (none, token, basic, hubspot, standard_webhooks, typeform, tally, webflow, meta)
AUTH_TYPES: tuple[str, ...] = tuple(REGISTRY)
SIGNED_TYPES = frozenset(name for name, scheme in REGISTRY.items() if scheme.signed)
# Never template data, whatever the route's type.
_ALWAYS_PRIVATE = frozenset({"authorization", "proxy-authorization", "cookie", DEFAULT_TOKEN_HEADER.lower()})
_CREDENTIAL_HEADERS = frozenset().union(*(scheme.credential_headers for scheme in REGISTRY.values()))


def authenticate(
    auth: Auth,
    *,
    method: str,
    url: str,
    query_string: bytes,
    headers: Mapping[str, str],
    body: bytes,
    resolve: Resolve,
    now: float | None = None,
) -> VouchedDelivery | None:
    """The delivery a signed scheme vouches for (None for none, token and basic) when the request may go
    on; Unauthorized (401) otherwise, Misconfigured (500) when the route's secret is missing or empty."""
    scheme = REGISTRY.get(auth.type)
    if scheme is None:  # config.py refuses other types; never let one through
        raise denied(f"unknown auth type {auth.type}")
    request = Incoming(method.upper(), url, query_string, headers, body, time.time() if now is None else now)
    return scheme.verify(auth, request, resolve)


def secret_refs(auth: Auth) -> list[str]:
    """The secret references this route's auth resolves (for the warm-up and the deploy check)."""
    scheme = REGISTRY.get(auth.type)
    if scheme is None:
        return []
    refs = (getattr(auth, key) for key in scheme.secret_keys)
    return [ref for ref in refs if isinstance(ref, str) and ref]


def private_headers(auth: Auth) -> frozenset[str]:
    """Lower-case header names the `headers` template variable must never hold: credentials and
    signatures of every scheme, and this route's token header."""
    return _ALWAYS_PRIVATE | _CREDENTIAL_HEADERS | {auth.header.lower()}
