"""Who may submit: a facade over formcall_webhook.senders, where each auth type has its own module."""

from __future__ import annotations

from .senders import Delivery, authenticate, private_headers, raw_url, secret_refs
from .senders.hubspot import hubspot_signature, hubspot_uri
from .senders.standard_webhooks import standard_webhooks_signature
from .senders.token import query_token

__all__ = [
    "Delivery",
    "authenticate",
    "hubspot_signature",
    "hubspot_uri",
    "private_headers",
    "query_token",
    "raw_url",
    "secret_refs",
    "standard_webhooks_signature",
]
