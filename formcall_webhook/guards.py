"""Abuse guards for public forms: honeypot, captcha, CORS, client address, HTML redirects."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from werkzeug.datastructures import MIMEAccept
from werkzeug.http import parse_accept_header

from .clients.http import Pool, TransportError, send
from .config import Captcha, Route
from .errors import CaptchaFailed

CAPTCHA_TIMEOUT_SECONDS = 5.0
# Longer than any textual IPv6 address with a zone: not an address, and not worth parsing.
_MAX_ADDRESS = 64
_CORS_HEADERS = "Content-Type, Authorization, Idempotency-Key, X-Webhook-Token"
_CORS_MAX_AGE = "3600"


def honeypot_filled(route: Route, body: Mapping[str, Any]) -> bool:
    if route.honeypot is None:
        return False
    value = body.get(route.honeypot)
    if isinstance(value, list):
        return any(str(v).strip() for v in value)
    return value is not None and str(value).strip() != ""


def client_ip(headers: Mapping[str, str], remote_addr: str, hops: int = 1) -> str:
    """The client's address as the farthest trusted proxy saw it.

    Each proxy appends the address it saw to X-Forwarded-For: Google's front end (hops = 1) the
    client's as the LAST entry; an external HTTPS load balancer in front of it (hops = 2) appends
    "client, lb-ip". The entry `hops` from the end is the client; anything before it is whatever the
    client chose to send, so it is never trusted. hops = 0: no proxy, the socket's peer."""
    candidate = ""
    forwarded = headers.get("x-forwarded-for", "") if hops > 0 else ""
    if forwarded:
        # Only the last `hops` entries were written by proxies; fewer means fewer proxies on the way.
        entries = forwarded.rsplit(",", hops)
        candidate = entries[-min(hops, len(entries))].strip()[:_MAX_ADDRESS]
    for value in (candidate, remote_addr[:_MAX_ADDRESS]):
        try:
            return str(ipaddress.ip_address(value))
        except ValueError:
            continue
    return "unknown"


def rate_key(ip: str) -> str:
    """What a per-IP limit counts: an IPv4 address, or an IPv6 client's /64 (one subscriber's network,
    where each device, or an attacker, can take any of its 2**64 addresses)."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def verify_captcha(
    captcha: Captcha,
    body: Mapping[str, Any],
    remote_ip: str,
    resolve: Callable[[str], str],
    pool: Pool,
) -> None:
    """Siteverify server-side; CaptchaFailed (403) unless the provider says yes, the score is on the
    right side of the route's limit, and the action and hostname match when the route names them."""
    token = body.get(captcha.field)
    if isinstance(token, list):
        token = token[0] if token else None
    if not isinstance(token, str) or not token.strip():
        raise CaptchaFailed("The captcha was not completed.", reason=f"no {captcha.field} in the submission")
    form = {"secret": resolve(captcha.secret), "response": token.strip()}
    if remote_ip != "unknown":
        form["remoteip"] = remote_ip
    # hCaptcha's siteverify takes the sitekey (and then refuses a token solved on another site);
    # reCAPTCHA's and Turnstile's take no such parameter.
    if captcha.sitekey and captcha.provider == "hcaptcha":
        form["sitekey"] = captcha.sitekey
    try:
        answer = send(
            pool,
            "POST",
            captcha.verify_url,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            body=urlencode(form).encode(),
            timeout=CAPTCHA_TIMEOUT_SECONDS,
        )
        verdict = json.loads(answer.body)
    except (TransportError, ValueError, RecursionError) as err:
        # Fail closed: an unverifiable captcha lets no call through.
        raise CaptchaFailed(
            "The captcha could not be verified; please try again.",
            reason=f"{captcha.provider} siteverify failed: {type(err).__name__}",
        ) from err
    if not isinstance(verdict, dict) or verdict.get("success") is not True:
        codes = verdict.get("error-codes") if isinstance(verdict, dict) else None
        raise CaptchaFailed("The captcha was not accepted.", reason=f"{captcha.provider} said no: {codes}")
    problem = _verdict_problem(captcha, verdict)
    if problem:
        raise CaptchaFailed("The captcha was not accepted.", reason=f"{captcha.provider} {problem}")


def _verdict_problem(captcha: Captcha, verdict: Mapping[str, Any]) -> str | None:
    score = verdict.get("score")
    # reCAPTCHA v3 scores humanity (1.0 human); hCaptcha Enterprise scores RISK (1.0 bot).
    # reCAPTCHA v2, Turnstile and plain hCaptcha answer no score.
    if isinstance(score, (int, float)) and not isinstance(score, bool):
        if captcha.provider == "hcaptcha" and score > captcha.max_score:
            return f"risk score {score} > max_score {captcha.max_score}"
        if captcha.provider != "hcaptcha" and score < captcha.min_score:
            return f"score {score} < min_score {captcha.min_score}"
    # Both providers' docs ask the server to check these: a token solved for another form or site.
    if captcha.action is not None and verdict.get("action") != captcha.action:
        return f"action {str(verdict.get('action'))[:64]!r} is not {captcha.action!r}"
    hostname = verdict.get("hostname")
    if captcha.hostnames and not (isinstance(hostname, str) and hostname.lower() in captcha.hostnames):
        return f"hostname {str(hostname)[:64]!r} is not one of the route's hostnames"
    return None


def cors_headers(route: Route, origin: str | None, preflight: bool) -> dict[str, str]:
    """CORS headers for an allowed origin only; Vary: Origin always, so caches keep them apart."""
    headers = {"Vary": "Origin"}
    if not origin or not route.cors_origins:
        return headers
    if "*" in route.cors_origins:
        # A literal "*", never the reflected origin: reflecting would also allow "null" (sandboxed
        # iframes, file: pages) and, were credentials ever sent, any site with the user's cookies.
        headers["Access-Control-Allow-Origin"] = "*"
    elif origin in route.cors_origins:
        headers["Access-Control-Allow-Origin"] = origin
    else:
        return headers
    if not preflight:
        # So a page's fetch() can honour Retry-After on a 429 or 503.
        headers["Access-Control-Expose-Headers"] = "Retry-After"
    else:
        headers["Access-Control-Allow-Methods"] = "POST, GET, OPTIONS" if route.allow_get else "POST, OPTIONS"
        headers["Access-Control-Allow-Headers"] = _CORS_HEADERS
        headers["Access-Control-Max-Age"] = _CORS_MAX_AGE
    return headers


def prefers_html(accept_header: str | None) -> bool:
    """True for a browser's plain form post; fetch() and webhooks send */* or JSON."""
    if not accept_header or "html" not in accept_header:
        return False  # webhooks and fetch(): no need to parse the header
    accept = parse_accept_header(accept_header, MIMEAccept)
    return accept.quality("text/html") > accept.quality("application/json")


def redirect_url(base: str, error: str | None) -> str:
    if error is None:
        return base
    parts = urlsplit(base)
    query = f"{parts.query}&{urlencode({'error': error})}" if parts.query else urlencode({"error": error})
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))
