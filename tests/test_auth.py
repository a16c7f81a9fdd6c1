"""Every auth type against signatures computed here, including the pitfalls senders' SDKs shipped."""

from __future__ import annotations

import time

import pytest

from formcall_webhook.config import Auth
from formcall_webhook.errors import Misconfigured, Unauthorized
from formcall_webhook.senders import authenticate
from formcall_webhook.senders.hubspot import hubspot_uri
from tests.signing import basic, hubspot_v3, standard_webhooks, whsec

SECRETS = {
    "env:TOKEN": "zap-token-81f2",
    "env:HUBSPOT": "hs-secret-5e0b",
    "env:PASSWORD": "pa55-word",
    "env:WHSEC": whsec(b"standard-webhooks-key-1"),
    "env:EMPTY": "",
}
BODY = b'{"properties": {"phone": {"value": "+56961234567"}}}'
URL = "https://europe-west1-acme.cloudfunctions.net/formcall-webhook/hubspot"


def resolve(ref: str) -> str:
    return SECRETS[ref]


def check(
    auth: Auth,
    *,
    headers: dict[str, str] | None = None,
    query: bytes = b"",
    body: bytes = BODY,
    method: str = "POST",
    url: str = "http://10.0.0.7:8080/hubspot",
    now: float | None = None,
) -> None:
    lowered = {k.lower(): v for k, v in (headers or {}).items()}
    authenticate(auth, method=method, url=url, query_string=query, headers=lowered, body=body, resolve=resolve, now=now)


def denied(auth: Auth, **kwargs: object) -> Unauthorized:
    with pytest.raises(Unauthorized) as caught:
        check(auth, **kwargs)  # type: ignore[arg-type]
    assert caught.value.status == 401
    assert caught.value.error == "unauthorized"
    return caught.value


def test_none_lets_anyone_in() -> None:
    check(Auth())


# -- token --

TOKEN = Auth(type="token", secret="env:TOKEN")


def test_token_in_default_header_or_query() -> None:
    check(TOKEN, headers={"X-Webhook-Token": "zap-token-81f2"})
    check(TOKEN, query=b"utm=1&token=zap-token-81f2")


def test_token_in_a_custom_header() -> None:
    auth = Auth(type="token", secret="env:TOKEN", header="X-Zapier-Secret")
    check(auth, headers={"X-Zapier-Secret": "zap-token-81f2"})
    denied(auth, headers={"X-Webhook-Token": "zap-token-81f2"})


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"headers": {"X-Webhook-Token": ""}}, {"headers": {"X-Webhook-Token": "zap-token-81f3"}},
     {"query": b"token=zap"}, {"headers": {"X-Webhook-Token": "zap-token-81f2x"}}],
)  # fmt: skip
def test_token_refused(kwargs: dict[str, object]) -> None:
    denied(TOKEN, **kwargs)


def test_empty_secret_fails_closed() -> None:
    with pytest.raises(Misconfigured):
        check(Auth(type="token", secret="env:EMPTY"), headers={"X-Webhook-Token": ""})


# -- basic --

BASIC = Auth(type="basic", username="zapier", password="env:PASSWORD")


def test_basic() -> None:
    check(BASIC, headers=basic("zapier", "pa55-word"))
    for headers in (basic("zapier", "wrong"), basic("other", "pa55-word"), {"Authorization": "Basic !!!"},
                    {"Authorization": "Bearer x"}, {}):  # fmt: skip
        err = denied(BASIC, headers=headers)
        assert err.headers["WWW-Authenticate"].startswith("Basic")


# -- HubSpot v3 --

HUBSPOT = Auth(type="hubspot", secret="env:HUBSPOT", public_url=URL)


def test_hubspot_signature_over_the_public_url() -> None:
    check(HUBSPOT, headers=hubspot_v3("hs-secret-5e0b", "POST", URL, BODY))


def test_hubspot_uri_keeps_the_query_string() -> None:
    query = b"portal=62515&src=workflow"
    check(HUBSPOT, query=query, headers=hubspot_v3("hs-secret-5e0b", "POST", f"{URL}?portal=62515&src=workflow", BODY))
    denied(HUBSPOT, query=query, headers=hubspot_v3("hs-secret-5e0b", "POST", URL, BODY))


def test_hubspot_decodes_the_escapes_v3_lists() -> None:
    assert hubspot_uri(URL, "", b"email=ana%40example.cl&x=%2Fa%3F") == f"{URL}?email=ana@example.cl&x=/a?"
    assert hubspot_uri(None, "https://h/p?q=%20%3a", b"") == "https://h/p?q=%20:"


def test_hubspot_get_webhook_signs_an_empty_body() -> None:
    query = b"vid=3751&phone=%2B56961234567"
    headers = hubspot_v3("hs-secret-5e0b", "GET", f"{URL}?vid=3751&phone=%2B56961234567", b"")
    check(HUBSPOT, method="GET", query=query, body=b"", headers=headers)


def test_hubspot_without_public_url_uses_the_url_as_received() -> None:
    auth = Auth(type="hubspot", secret="env:HUBSPOT")
    received = "https://formcall.acme.cl/hubspot?a=1"
    check(auth, url=received, query=b"a=1", headers=hubspot_v3("hs-secret-5e0b", "POST", received, BODY))
    # Behind a proxy that rewrote scheme or host, only public_url can match what HubSpot signed.
    denied(
        auth,
        url="http://10.0.0.7/hubspot?a=1",
        query=b"a=1",
        headers=hubspot_v3("hs-secret-5e0b", "POST", received, BODY),
    )


@pytest.mark.parametrize(
    ("headers_of", "why"),
    [
        (lambda: hubspot_v3("wrong-secret", "POST", URL, BODY), "wrong secret"),
        (lambda: hubspot_v3("hs-secret-5e0b", "POST", URL, BODY + b" "), "body changed"),
        (lambda: hubspot_v3("hs-secret-5e0b", "PUT", URL, BODY), "method changed"),
        (lambda: hubspot_v3("hs-secret-5e0b", "POST", URL.replace("https", "http"), BODY), "scheme changed"),
        # The SDK's 50-minute window: a 6-minute-old request must be refused.
        (lambda: hubspot_v3("hs-secret-5e0b", "POST", URL, BODY, int(time.time() * 1000) - 360_000), "too old"),
        (lambda: hubspot_v3("hs-secret-5e0b", "POST", URL, BODY, int(time.time() * 1000) + 360_000), "future"),
        # The SDK's float timestamp, and seconds instead of milliseconds.
        (lambda: hubspot_v3("hs-secret-5e0b", "POST", URL, BODY, f"{time.time() * 1000:.1f}"), "float"),
        (lambda: hubspot_v3("hs-secret-5e0b", "POST", URL, BODY, int(time.time())), "seconds"),
        # The wrong header name: v1/v2's X-HubSpot-Signature is not v3's.
        (lambda: {"X-HubSpot-Signature": hubspot_v3("hs-secret-5e0b", "POST", URL, BODY)["X-HubSpot-Signature-v3"],
                  "X-HubSpot-Request-Timestamp": str(int(time.time() * 1000))}, "v1 header"),
        (lambda: {}, "no headers"),
    ],
)  # fmt: skip
def test_hubspot_refusals(headers_of: object, why: str) -> None:
    denied(HUBSPOT, headers=headers_of())  # type: ignore[operator]


def test_hubspot_window_edges() -> None:
    now = time.time()
    inside = int(now * 1000) - 299_000
    check(HUBSPOT, now=now, headers=hubspot_v3("hs-secret-5e0b", "POST", URL, BODY, inside))


# -- Standard Webhooks --

OLD = whsec(b"standard-webhooks-key-0")
NEW = SECRETS["env:WHSEC"]
STANDARD = Auth(type="standard_webhooks", secret="env:WHSEC")


def test_standard_webhooks() -> None:
    check(STANDARD, headers=standard_webhooks([NEW], "msg_2Lq", BODY))


def test_standard_webhooks_several_signatures_for_rotation() -> None:
    check(STANDARD, headers=standard_webhooks([OLD, NEW], "msg_2Lr", BODY))
    denied(STANDARD, headers=standard_webhooks([OLD], "msg_2Ls", BODY))


@pytest.mark.parametrize(
    "headers_of",
    [
        lambda: standard_webhooks([NEW], "msg_1", BODY, int(time.time()) - 301),
        lambda: standard_webhooks([NEW], "msg_1", BODY, int(time.time()) + 301),
        lambda: {**standard_webhooks([NEW], "msg_1", BODY), "webhook-id": "msg_2"},
        lambda: {**standard_webhooks([NEW], "msg_1", BODY), "webhook-timestamp": "1.5e9"},
        lambda: {**standard_webhooks([NEW], "msg_1", BODY), "webhook-signature": "v2,abc"},
        lambda: {k: v for k, v in standard_webhooks([NEW], "msg_1", BODY).items() if k != "webhook-id"},
        lambda: {},
    ],
)
def test_standard_webhooks_refusals(headers_of: object) -> None:
    denied(STANDARD, headers=headers_of())  # type: ignore[operator]


def test_standard_webhooks_body_is_checked_byte_for_byte() -> None:
    denied(STANDARD, body=BODY.replace(b" ", b""), headers=standard_webhooks([NEW], "msg_9", BODY))


def test_standard_webhooks_refuses_an_empty_or_malformed_secret() -> None:
    SECRETS["env:BAD"] = "whsec_"
    with pytest.raises(Misconfigured):
        check(Auth(type="standard_webhooks", secret="env:BAD"), headers=standard_webhooks([NEW], "m", BODY))
    SECRETS["env:BAD"] = "whsec_***"
    with pytest.raises(Misconfigured):
        check(Auth(type="standard_webhooks", secret="env:BAD"), headers=standard_webhooks([NEW], "m", BODY))


@pytest.mark.parametrize("timestamp", ["\u00b2", "9" * 309, "9" * 5000, "-1", "1e3", " "])
def test_digit_like_timestamps_are_refused_not_crashing(timestamp: str) -> None:
    denied(HUBSPOT, headers={"X-HubSpot-Signature-v3": "x", "X-HubSpot-Request-Timestamp": timestamp})
    sw = {"webhook-id": "msg_1", "webhook-timestamp": timestamp, "webhook-signature": "v1,x"}
    denied(STANDARD, headers=sw)
