"""Guards for a public endpoint, in-process: client address, CORS, HTML preference, honeypot, captcha."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from formcall_webhook import config, guards
from formcall_webhook.clients.http import make_pool
from formcall_webhook.errors import CaptchaFailed
from tests.fakes.captcha import FakeSiteverify

POPUP = "e5c98214-d0f6-11e1-8c30-001d09ef4a24"
CAPTCHA_SECRET = "0x4AAAAAAA-captcha-secret"


def route(tmp_path: Path, extra: str) -> config.Route:
    path = tmp_path / "f.toml"
    path.write_text(f"[routes.default]\npopup_uuid = '{POPUP}'\n{extra}\n", encoding="utf-8")
    return config.load({"CAPTCHA_SECRET": CAPTCHA_SECRET}, path).routes["default"]


def test_client_ip_is_the_last_forwarded_entry() -> None:
    # Google's front end appends the address it saw; what comes before is the client's to forge.
    assert guards.client_ip({"x-forwarded-for": "1.1.1.1, 203.0.113.9"}, "169.254.1.1") == "203.0.113.9"
    assert guards.client_ip({"x-forwarded-for": "203.0.113.9"}, "169.254.1.1") == "203.0.113.9"
    assert guards.client_ip({}, "127.0.0.1") == "127.0.0.1"
    assert guards.client_ip({"x-forwarded-for": "junk"}, "::1") == "::1"
    assert guards.client_ip({"x-forwarded-for": "1.1.1.1, not-an-ip"}, "") == "unknown"


def test_client_ip_honours_trusted_proxy_hops() -> None:
    # Behind an external HTTPS load balancer: "client, lb-ip" appended, so the client is 2 from the end.
    forged = {"x-forwarded-for": "6.6.6.6, 203.0.113.9, 130.211.0.5"}
    assert guards.client_ip(forged, "169.254.1.1", hops=2) == "203.0.113.9"
    assert guards.client_ip(forged, "169.254.1.1", hops=1) == "130.211.0.5"
    assert guards.client_ip(forged, "169.254.1.1", hops=3) == "6.6.6.6"
    # Fewer entries than hops: every entry was written by a proxy, the first is the farthest one's view.
    assert guards.client_ip({"x-forwarded-for": "203.0.113.9"}, "169.254.1.1", hops=2) == "203.0.113.9"
    # No proxy: X-Forwarded-For is the client's own text.
    assert guards.client_ip(forged, "198.51.100.7", hops=0) == "198.51.100.7"
    assert guards.client_ip({"x-forwarded-for": "1.1.1.1, 2001:DB8::1"}, "", hops=1) == "2001:db8::1"
    assert guards.client_ip({"x-forwarded-for": "9" * 100_000}, "", hops=1) == "unknown"


def test_rate_key_counts_ipv6_clients_by_their_64() -> None:
    assert guards.rate_key("203.0.113.9") == "203.0.113.9"
    same = {guards.rate_key(f"2001:db8:1:2:{i:x}::{i:x}") for i in range(1, 50)}
    assert same == {"2001:db8:1:2::/64"}
    assert guards.rate_key("2001:db8:1:3::1") == "2001:db8:1:3::/64"
    assert guards.rate_key("::ffff:203.0.113.9") == "203.0.113.9"
    assert guards.rate_key("unknown") == "unknown"


def test_cors_only_for_allowed_origins(tmp_path: Path) -> None:
    r = route(tmp_path, 'cors_origins = ["https://acme.cl"]')
    allowed = guards.cors_headers(r, "https://acme.cl", preflight=True)
    assert allowed["Access-Control-Allow-Origin"] == "https://acme.cl"
    assert "POST" in allowed["Access-Control-Allow-Methods"]
    assert "Content-Type" in allowed["Access-Control-Allow-Headers"]
    assert allowed["Vary"] == "Origin"
    assert guards.cors_headers(r, "https://evil.example", preflight=True) == {"Vary": "Origin"}
    assert guards.cors_headers(r, None, preflight=False) == {"Vary": "Origin"}
    simple = guards.cors_headers(r, "https://acme.cl", preflight=False)
    assert "Access-Control-Allow-Methods" not in simple
    assert simple["Access-Control-Expose-Headers"] == "Retry-After"
    wildcard = route(tmp_path, 'cors_origins = ["*"]')
    # A literal "*", never the origin reflected: "null" (sandboxed iframes, file: pages) included.
    for origin in ("https://x.example", "null"):
        for preflight in (True, False):
            headers = guards.cors_headers(wildcard, origin, preflight)
            assert headers["Access-Control-Allow-Origin"] == "*"
            assert "Access-Control-Allow-Credentials" not in headers
    assert guards.cors_headers(route(tmp_path, ""), "https://acme.cl", True) == {"Vary": "Origin"}


@pytest.mark.parametrize(
    ("accept", "html"),
    [
        ("text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8", True),
        ("*/*", False),
        ("application/json", False),
        ("application/json, text/plain, */*", False),
        ("text/html;q=0.5, application/json", False),
        (None, False),
        ("garbage;;;", False),
    ],
)
def test_prefers_html(accept: str | None, html: bool) -> None:
    assert guards.prefers_html(accept) is html


def test_redirect_url_adds_the_error() -> None:
    assert guards.redirect_url("https://acme.cl/error", "invalid_phone") == "https://acme.cl/error?error=invalid_phone"
    assert guards.redirect_url("https://acme.cl/e?x=1#f", "bad_request") == "https://acme.cl/e?x=1&error=bad_request#f"
    assert guards.redirect_url("https://acme.cl/gracias", None) == "https://acme.cl/gracias"


def test_honeypot(tmp_path: Path) -> None:
    r = route(tmp_path, 'honeypot = "_gotcha"')
    assert not guards.honeypot_filled(r, {"_gotcha": ""})
    assert not guards.honeypot_filled(r, {})
    assert guards.honeypot_filled(r, {"_gotcha": "http://spam.example"})
    assert guards.honeypot_filled(r, {"_gotcha": ["", "x"]})
    assert not guards.honeypot_filled(route(tmp_path, ""), {"_gotcha": "x"})


@pytest.fixture(scope="module")
def siteverify() -> Iterator[FakeSiteverify]:
    fake = FakeSiteverify(CAPTCHA_SECRET).start()
    yield fake
    fake.stop()


def captcha_route(tmp_path: Path, provider: str, url: str, extra: str = "") -> config.Route:
    return route(
        tmp_path, f'captcha = {{ provider = "{provider}", secret = "env:CAPTCHA_SECRET", verify_url = "{url}"{extra} }}'
    )


def resolve(ref: str) -> str:
    assert ref == "env:CAPTCHA_SECRET"
    return CAPTCHA_SECRET


@pytest.mark.parametrize(
    ("provider", "field"),
    [("turnstile", "cf-turnstile-response"), ("recaptcha", "g-recaptcha-response"), ("hcaptcha", "h-captcha-response")],
)
def test_captcha_providers(tmp_path: Path, siteverify: FakeSiteverify, provider: str, field: str) -> None:
    r = captcha_route(tmp_path, provider, siteverify.url)
    assert r.captcha is not None
    session = make_pool()
    guards.verify_captcha(r.captcha, {field: "pass"}, "203.0.113.9", resolve, session)
    assert siteverify.requests[-1] == {"secret": CAPTCHA_SECRET, "response": "pass", "remoteip": "203.0.113.9"}
    for body in ({field: "fail"}, {}, {field: ""}, {"other": "pass"}):
        with pytest.raises(CaptchaFailed):
            guards.verify_captcha(r.captcha, body, "203.0.113.9", resolve, session)


def test_recaptcha_v3_min_score(tmp_path: Path, siteverify: FakeSiteverify) -> None:
    r = captcha_route(tmp_path, "recaptcha", siteverify.url, ", min_score = 0.7")
    assert r.captcha is not None
    session = make_pool()
    guards.verify_captcha(r.captcha, {"g-recaptcha-response": "score:0.9"}, "unknown", resolve, session)
    assert "remoteip" not in siteverify.requests[-1]
    with pytest.raises(CaptchaFailed):
        guards.verify_captcha(r.captcha, {"g-recaptcha-response": "score:0.5"}, "unknown", resolve, session)


def test_captcha_provider_unreachable_fails_closed(tmp_path: Path) -> None:
    r = captcha_route(tmp_path, "turnstile", "http://127.0.0.1:9/siteverify")
    assert r.captcha is not None
    with pytest.raises(CaptchaFailed):
        guards.verify_captcha(r.captcha, {"cf-turnstile-response": "pass"}, "unknown", resolve, make_pool())


def test_custom_captcha_field(tmp_path: Path, siteverify: FakeSiteverify) -> None:
    r = captcha_route(tmp_path, "turnstile", siteverify.url, ', field = "captcha"')
    assert r.captcha is not None
    guards.verify_captcha(r.captcha, {"captcha": ["pass"]}, "unknown", resolve, make_pool())
