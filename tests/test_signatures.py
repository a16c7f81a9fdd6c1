"""Every auth type (spec 5) against signatures computed as each sender documents them: one shared table of
refusals for the signed ones, then each type request by request (token, Basic, HubSpot's URI, Standard
Webhooks' headers, the pitfalls senders' SDKs shipped), the official Standard Webhooks vectors, the delivery
id each one vouches for, and HubSpot's raw URI through a real functions-framework process."""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from standardwebhooks.webhooks import Webhook

from formcall_webhook.config import Auth
from formcall_webhook.errors import Misconfigured, Unauthorized
from formcall_webhook.senders import (
    AUTH_TYPES,
    REGISTRY,
    SIGNED_TYPES,
    VouchedDelivery,
    authenticate,
    private_headers,
    raw_url,
    secret_refs,
)
from formcall_webhook.senders.hubspot import hubspot_uri
from tests.harness import FunctionProcess
from tests.signing import basic, hubspot_v3, meta, standard_webhooks, tally, typeform, webflow, whsec

BODY = b'{"form_response": {"answers": [{"type": "phone_number", "phone_number": "+56956311283"}]}}'
URL = "https://europe-west1-acme.cloudfunctions.net/formcall-webhook/signed"
SECRETS = {
    "env:HUBSPOT": "hs-secret-5e0b",
    "env:WHSEC": whsec(b"standard-webhooks-key-1"),
    "env:TYPEFORM": "tf-secret-77c1",
    "env:TALLY": "tally-secret-0a9e",
    "env:WEBFLOW": "wf-client-secret-4d2f",
    "env:META": "meta-app-secret-6b1e",
    "env:TOKEN": "zap-token-81f2",
    "env:PASSWORD": "pa55-word",
    "env:EMPTY": "",
    "env:WHSEC_BARE": "whsec_",
    "env:WHSEC_NOT_BASE64": "whsec_***",
}
WRONG = {
    "hubspot": "hs-secret-5e0c",
    "standard_webhooks": whsec(b"standard-webhooks-key-2"),
    "typeform": "tf-secret-77c2",
    "tally": "tally-secret-0a9f",
    "webflow": "wf-client-secret-4d30",
    "meta": "meta-app-secret-6b1f",
}
# Signs BODY-like bytes with a secret at a time (seconds): the headers each sender sends.
Signer = Callable[[str, bytes, float], dict[str, str]]
SIGNED: dict[str, tuple[Auth, Signer]] = {
    "hubspot": (
        Auth(type="hubspot", secret="env:HUBSPOT", public_url=URL),
        lambda secret, body, at: hubspot_v3(secret, "POST", URL, body, int(at * 1000)),
    ),
    "standard_webhooks": (
        Auth(type="standard_webhooks", secret="env:WHSEC"),
        lambda secret, body, at: standard_webhooks([secret], "msg_2LqF", body, int(at)),
    ),
    "typeform": (Auth(type="typeform", secret="env:TYPEFORM"), lambda secret, body, at: typeform(secret, body)),
    "tally": (Auth(type="tally", secret="env:TALLY"), lambda secret, body, at: tally(secret, body)),
    "webflow": (
        Auth(type="webflow", secret="env:WEBFLOW"),
        lambda secret, body, at: webflow(secret, body, int(at * 1000)),
    ),
    # Meta also needs a verify token and a page token (tests/test_meta.py); only the app secret signs.
    "meta": (
        Auth(type="meta", secret="env:META", verify_token="env:META", page_token="env:META"),
        lambda secret, body, at: meta(secret, body),
    ),
}
TIMED = ["hubspot", "standard_webhooks", "webflow"]


def resolve(ref: str) -> str:
    return SECRETS[ref]


def verify(
    auth: Auth, headers: dict[str, str], *, body: bytes = BODY, now: float | None = None
) -> VouchedDelivery | None:
    lowered = {k.lower(): v for k, v in headers.items()}
    return authenticate(
        auth, method="POST", url=URL, query_string=b"", headers=lowered, body=body, resolve=resolve, now=now
    )


def good(kind: str, body: bytes = BODY, at: float | None = None) -> dict[str, str]:
    auth, sign = SIGNED[kind]
    assert auth.secret is not None
    return sign(SECRETS[auth.secret], body, time.time() if at is None else at)


def denied(auth: Auth, headers: dict[str, str], **kwargs: object) -> None:
    with pytest.raises(Unauthorized) as caught:
        verify(auth, headers, **kwargs)  # type: ignore[arg-type]
    assert (caught.value.status, caught.value.error) == (401, "unauthorized")


def vouched(kind: str, headers: dict[str, str]) -> VouchedDelivery:
    """The delivery a signed request vouches for: Standard Webhooks' webhook-id, else the signature."""
    if kind == "standard_webhooks":
        return VouchedDelivery(headers["webhook-id"], 300)
    signature = next(v for k, v in headers.items() if "signature" in k.lower())
    return VouchedDelivery(signature, 300 if kind in TIMED else 86400)


def test_every_signed_type_is_in_the_registry_and_this_table() -> None:
    assert set(SIGNED) == set(SIGNED_TYPES)
    assert set(AUTH_TYPES) == {"none", "token", "basic", *SIGNED}
    assert all(REGISTRY[kind].secret_keys == ("secret",) for kind in SIGNED if kind != "meta")
    assert REGISTRY["meta"].secret_keys == ("secret", "verify_token", "page_token")


# -- one table of refusals for every signed scheme --


@pytest.mark.parametrize("kind", list(SIGNED))
def test_accepts_what_the_sender_signs(kind: str) -> None:
    headers = good(kind)
    assert verify(SIGNED[kind][0], headers) == vouched(kind, headers)


@pytest.mark.parametrize("kind", list(SIGNED))
def test_refuses_a_wrong_secret(kind: str) -> None:
    auth, sign = SIGNED[kind]
    denied(auth, sign(WRONG[kind], BODY, time.time()))


@pytest.mark.parametrize("kind", list(SIGNED))
@pytest.mark.parametrize("tampered", [BODY + b" ", BODY.replace(b"+569", b"+568"), b""])
def test_refuses_a_tampered_body(kind: str, tampered: bytes) -> None:
    denied(SIGNED[kind][0], good(kind), body=tampered)


@pytest.mark.parametrize("kind", list(SIGNED))
def test_refuses_a_missing_header(kind: str) -> None:
    headers = good(kind)
    for name in headers:
        denied(SIGNED[kind][0], {k: v for k, v in headers.items() if k != name})
    denied(SIGNED[kind][0], {})


@pytest.mark.parametrize("kind", TIMED)
@pytest.mark.parametrize("offset", [-301, 301, -3000, 86400])
def test_refuses_a_stale_or_future_timestamp(kind: str, offset: int) -> None:
    now = time.time()
    denied(SIGNED[kind][0], good(kind, at=now + offset), now=now)


@pytest.mark.parametrize("kind", TIMED)
def test_accepts_inside_the_window_both_ways(kind: str) -> None:
    now = time.time()
    for offset in (-299, 299):
        headers = good(kind, at=now + offset)
        assert verify(SIGNED[kind][0], headers, now=now) == vouched(kind, headers)


@pytest.mark.parametrize("kind", list(SIGNED))
def test_an_empty_secret_is_a_misconfiguration_not_a_pass(kind: str) -> None:
    auth = Auth(type=kind, secret="env:EMPTY", public_url=URL)
    with pytest.raises(Misconfigured):
        verify(auth, good(kind))


# -- each auth type request by request (the cases the shared table above does not cover) --

AUTH_BODY = b'{"properties": {"phone": {"value": "+56961234567"}}}'
HUBSPOT_URL = "https://europe-west1-acme.cloudfunctions.net/formcall-webhook/hubspot"


def check(
    auth: Auth,
    *,
    headers: dict[str, str] | None = None,
    query: bytes = b"",
    body: bytes = AUTH_BODY,
    method: str = "POST",
    url: str = "http://10.0.0.7:8080/hubspot",
    now: float | None = None,
) -> VouchedDelivery | None:
    """A request as received (method, URL, query, headers, body) through the route's auth."""
    lowered = {k.lower(): v for k, v in (headers or {}).items()}
    return authenticate(
        auth, method=method, url=url, query_string=query, headers=lowered, body=body, resolve=resolve, now=now
    )


def refused(auth: Auth, **kwargs: object) -> Unauthorized:
    with pytest.raises(Unauthorized) as caught:
        check(auth, **kwargs)  # type: ignore[arg-type]
    assert (caught.value.status, caught.value.error) == (401, "unauthorized")
    return caught.value


def test_none_lets_anyone_in() -> None:
    assert check(Auth()) is None  # in, and vouching for no delivery


# token

TOKEN = Auth(type="token", secret="env:TOKEN")


def test_token_in_default_header_or_query() -> None:
    assert check(TOKEN, headers={"X-Webhook-Token": "zap-token-81f2"}) is None
    assert check(TOKEN, query=b"utm=1&token=zap-token-81f2") is None


def test_token_in_a_custom_header() -> None:
    auth = Auth(type="token", secret="env:TOKEN", header="X-Zapier-Secret")
    assert check(auth, headers={"X-Zapier-Secret": "zap-token-81f2"}) is None
    refused(auth, headers={"X-Webhook-Token": "zap-token-81f2"})


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"headers": {"X-Webhook-Token": ""}}, {"headers": {"X-Webhook-Token": "zap-token-81f3"}},
     {"query": b"token=zap"}, {"headers": {"X-Webhook-Token": "zap-token-81f2x"}}],
)  # fmt: skip
def test_token_refused(kwargs: dict[str, object]) -> None:
    refused(TOKEN, **kwargs)


def test_an_empty_token_fails_closed() -> None:
    with pytest.raises(Misconfigured):
        check(Auth(type="token", secret="env:EMPTY"), headers={"X-Webhook-Token": ""})


# Basic

BASIC = Auth(type="basic", username="zapier", password="env:PASSWORD")


def test_basic() -> None:
    assert check(BASIC, headers=basic("zapier", "pa55-word")) is None
    for headers in (basic("zapier", "wrong"), basic("other", "pa55-word"), {"Authorization": "Basic !!!"},
                    {"Authorization": "Bearer x"}, {}):  # fmt: skip
        err = refused(BASIC, headers=headers)
        assert err.headers["WWW-Authenticate"].startswith("Basic")


# HubSpot v3: the URI it signs

HUBSPOT = Auth(type="hubspot", secret="env:HUBSPOT", public_url=HUBSPOT_URL)


def hubspot_signed(method: str, uri: str, body: bytes = AUTH_BODY, at_ms: int | str | None = None) -> dict[str, str]:
    return hubspot_v3("hs-secret-5e0b", method, uri, body, at_ms)


def test_hubspot_signature_over_the_public_url() -> None:
    headers = hubspot_signed("POST", HUBSPOT_URL)
    assert check(HUBSPOT, headers=headers) == vouched("hubspot", headers)


def test_hubspot_uri_keeps_the_query_string() -> None:
    query = b"portal=62515&src=workflow"
    headers = hubspot_signed("POST", f"{HUBSPOT_URL}?portal=62515&src=workflow")
    assert check(HUBSPOT, query=query, headers=headers) == vouched("hubspot", headers)
    refused(HUBSPOT, query=query, headers=hubspot_signed("POST", HUBSPOT_URL))


def test_hubspot_decodes_the_escapes_v3_lists() -> None:
    query = b"email=ana%40example.cl&x=%2Fa%3F"
    assert hubspot_uri(HUBSPOT_URL, "", query) == f"{HUBSPOT_URL}?email=ana@example.cl&x=/a?"
    assert hubspot_uri(None, "https://h/p?q=%20%3a", b"") == "https://h/p?q=%20:"


def test_hubspot_get_webhook_signs_an_empty_body() -> None:
    query = b"vid=3751&phone=%2B56961234567"
    headers = hubspot_signed("GET", f"{HUBSPOT_URL}?vid=3751&phone=%2B56961234567", b"")
    assert check(HUBSPOT, method="GET", query=query, body=b"", headers=headers) == vouched("hubspot", headers)


def test_hubspot_without_public_url_uses_the_url_as_received() -> None:
    auth = Auth(type="hubspot", secret="env:HUBSPOT")
    received = "https://formcall.acme.cl/hubspot?a=1"
    headers = hubspot_signed("POST", received)
    assert check(auth, url=received, query=b"a=1", headers=headers) == vouched("hubspot", headers)
    # Behind a proxy that rewrote scheme or host, only public_url can match what HubSpot signed.
    refused(auth, url="http://10.0.0.7/hubspot?a=1", query=b"a=1", headers=headers)


@pytest.mark.parametrize(
    ("headers_of", "why"),
    [
        (lambda: hubspot_signed("PUT", HUBSPOT_URL), "method changed"),
        (lambda: hubspot_signed("POST", HUBSPOT_URL.replace("https", "http")), "scheme changed"),
        # The SDK's float timestamp, and seconds instead of milliseconds.
        (lambda: hubspot_signed("POST", HUBSPOT_URL, AUTH_BODY, f"{time.time() * 1000:.1f}"), "float"),
        (lambda: hubspot_signed("POST", HUBSPOT_URL, AUTH_BODY, int(time.time())), "seconds"),
        # The SDK's 50-minute window: a 6-minute-old request must be refused.
        (lambda: hubspot_signed("POST", HUBSPOT_URL, AUTH_BODY, int(time.time() * 1000) - 360_000), "sdk window"),
        # The wrong header name: v1/v2's X-HubSpot-Signature is not v3's.
        (lambda: {"X-HubSpot-Signature": hubspot_signed("POST", HUBSPOT_URL)["X-HubSpot-Signature-v3"],
                  "X-HubSpot-Request-Timestamp": str(int(time.time() * 1000))}, "v1 header"),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)  # fmt: skip
def test_hubspot_refusals(headers_of: Callable[[], dict[str, str]], why: str) -> None:
    refused(HUBSPOT, headers=headers_of())


def test_hubspot_window_edges() -> None:
    now = time.time()
    headers = hubspot_signed("POST", HUBSPOT_URL, AUTH_BODY, int(now * 1000) - 299_000)
    assert check(HUBSPOT, now=now, headers=headers) == vouched("hubspot", headers)


# Standard Webhooks: rotation and each header

OLD = whsec(b"standard-webhooks-key-0")
NEW = SECRETS["env:WHSEC"]
STANDARD = Auth(type="standard_webhooks", secret="env:WHSEC")


def test_standard_webhooks_several_signatures_for_rotation() -> None:
    assert check(STANDARD, headers=standard_webhooks([OLD, NEW], "msg_2Lr", AUTH_BODY)) == VouchedDelivery(
        "msg_2Lr", 300
    )
    refused(STANDARD, headers=standard_webhooks([OLD], "msg_2Ls", AUTH_BODY))


@pytest.mark.parametrize(
    "headers_of",
    [
        lambda: {**standard_webhooks([NEW], "msg_1", AUTH_BODY), "webhook-id": "msg_2"},
        lambda: {**standard_webhooks([NEW], "msg_1", AUTH_BODY), "webhook-timestamp": "1.5e9"},
        lambda: {**standard_webhooks([NEW], "msg_1", AUTH_BODY), "webhook-signature": "v2,abc"},
    ],
    ids=["id swapped", "timestamp as float", "unknown version"],
)
def test_standard_webhooks_refusals(headers_of: Callable[[], dict[str, str]]) -> None:
    refused(STANDARD, headers=headers_of())


def test_standard_webhooks_body_is_checked_byte_for_byte() -> None:
    refused(STANDARD, body=AUTH_BODY.replace(b" ", b""), headers=standard_webhooks([NEW], "msg_9", AUTH_BODY))


@pytest.mark.parametrize("secret", ["env:WHSEC_BARE", "env:WHSEC_NOT_BASE64"])
def test_standard_webhooks_refuses_an_empty_or_malformed_secret(secret: str) -> None:
    with pytest.raises(Misconfigured):
        check(Auth(type="standard_webhooks", secret=secret), headers=standard_webhooks([NEW], "m", AUTH_BODY))


@pytest.mark.parametrize("timestamp", ["\u00b2", "9" * 309, "9" * 5000, "-1", "1e3", " "])
def test_digit_like_timestamps_are_refused_not_crashing(timestamp: str) -> None:
    refused(HUBSPOT, headers={"X-HubSpot-Signature-v3": "x", "X-HubSpot-Request-Timestamp": timestamp})
    refused(STANDARD, headers={"webhook-id": "msg_1", "webhook-timestamp": timestamp, "webhook-signature": "v1,x"})


# -- the delivery each scheme vouches for (spec 5: replays are caught by signed id, never Idempotency-Key) --


def test_delivery_ids() -> None:
    now = time.time()
    sw = good("standard_webhooks", at=now)
    assert verify(SIGNED["standard_webhooks"][0], sw, now=now) == VouchedDelivery("msg_2LqF", 300)
    for kind, window in (("hubspot", 300), ("webflow", 300), ("typeform", 86400), ("tally", 86400)):
        headers = good(kind, at=now)
        signature = next(v for k, v in headers.items() if "signature" in k.lower())
        assert verify(SIGNED[kind][0], headers, now=now) == VouchedDelivery(signature, window)


def test_unsigned_types_vouch_for_no_delivery() -> None:
    token = Auth(type="token", secret="env:TOKEN")
    assert verify(token, {"X-Webhook-Token": "zap-token-81f2", "Idempotency-Key": "k1"}) is None
    assert verify(Auth(), {"webhook-id": "msg_forged"}) is None


def test_the_same_body_signed_again_is_the_same_delivery_only_where_no_time_is_signed() -> None:
    now = time.time()
    for kind in ("typeform", "tally"):
        assert verify(SIGNED[kind][0], good(kind, at=now)) == verify(SIGNED[kind][0], good(kind, at=now + 60))
    for kind in ("hubspot", "webflow"):
        first = verify(SIGNED[kind][0], good(kind, at=now - 1), now=now)
        assert first != verify(SIGNED[kind][0], good(kind, at=now), now=now)


# -- Standard Webhooks: the official library's own test vectors --
# Copied as data from standard-webhooks/standard-webhooks, libraries/python/tests/test_webhooks.py
# (test_sign_function, test_signature_verification_with_unpadded_secret, test_multi_sig_payload_is_valid,
# test_invalid_signature_raises_error, test_empty_secret_raises_error), commit
# b2fa7b8719fb75d326b591077f5d1b385cfcdfae; "v1," (partial) from libraries/go/webhook_test.go, same commit.

VECTOR_SECRET = "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
VECTOR_MSG_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
VECTOR_TIMESTAMP = 1614265330
VECTOR_PAYLOAD = b'{"test": 2432232314}'
VECTOR_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
VECTOR_INVALID = "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc="
# Secrets needing no, one and two "=" of padding.
VECTOR_UNPADDED = [
    "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS",
    "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwBr",
]


def vector(secret: str, signature: str, *, now: float = VECTOR_TIMESTAMP + 5) -> VouchedDelivery | None:
    SECRETS["env:VECTOR"] = secret
    headers = {"webhook-id": VECTOR_MSG_ID, "webhook-timestamp": str(VECTOR_TIMESTAMP), "webhook-signature": signature}
    return verify(Auth(type="standard_webhooks", secret="env:VECTOR"), headers, body=VECTOR_PAYLOAD, now=now)


@pytest.mark.parametrize("secret", [VECTOR_SECRET, "whsec_" + VECTOR_SECRET])
def test_official_vector_with_and_without_prefix(secret: str) -> None:
    assert vector(secret, VECTOR_SIGNATURE) == VouchedDelivery(VECTOR_MSG_ID, 300)


def test_official_multi_signature_vector() -> None:
    sigs = [VECTOR_INVALID, VECTOR_INVALID.replace("v1,", "v2,"), VECTOR_SIGNATURE, VECTOR_INVALID]
    assert vector(VECTOR_SECRET, " ".join(sigs)) == VouchedDelivery(VECTOR_MSG_ID, 300)


@pytest.mark.parametrize("signature", [VECTOR_INVALID, "v1,", "v2," + VECTOR_SIGNATURE[3:], VECTOR_SIGNATURE[3:]])
def test_official_invalid_signatures(signature: str) -> None:
    with pytest.raises(Unauthorized):
        vector(VECTOR_SECRET, signature)


def test_official_vector_outside_the_window() -> None:
    for now in (VECTOR_TIMESTAMP + 301, VECTOR_TIMESTAMP - 301):
        with pytest.raises(Unauthorized):
            vector(VECTOR_SECRET, VECTOR_SIGNATURE, now=now)


@pytest.mark.parametrize("secret", VECTOR_UNPADDED)
@pytest.mark.parametrize("prefix", ["", "whsec_"])
def test_official_unpadded_secrets_verify_what_the_library_signs(secret: str, prefix: str) -> None:
    # Before: an unpadded secret answered every request 500. The official library pads it.
    signature = Webhook(prefix + secret).sign(
        VECTOR_MSG_ID, datetime.fromtimestamp(VECTOR_TIMESTAMP, tz=UTC), VECTOR_PAYLOAD.decode()
    )
    assert vector(prefix + secret, signature) == VouchedDelivery(VECTOR_MSG_ID, 300)
    padded = secret + "=" * (-len(secret) % 4)
    assert vector(prefix + padded, signature) == VouchedDelivery(VECTOR_MSG_ID, 300)


@pytest.mark.parametrize("secret", ["whsec_", "whsec_***", "whsec_a", "====", " "])
def test_official_empty_or_malformed_secret_is_refused(secret: str) -> None:
    with pytest.raises(Misconfigured):
        vector(secret, VECTOR_SIGNATURE)


# -- what the lead wires in: secret references and private headers --


def test_secret_refs() -> None:
    assert secret_refs(Auth()) == []
    assert secret_refs(Auth(type="token", secret="env:T")) == ["env:T"]
    assert secret_refs(Auth(type="basic", username="u", password="secret:projects/p/secrets/s/versions/1")) == [
        "secret:projects/p/secrets/s/versions/1"
    ]
    for kind in SIGNED:
        assert secret_refs(Auth(type=kind, secret="file:/s/k")) == ["file:/s/k"]


def test_private_headers() -> None:
    plain = private_headers(Auth())
    assert {"authorization", "x-webhook-token", "cookie", "webhook-signature", "x-hubspot-signature-v3",
            "typeform-signature", "tally-signature", "x-webflow-signature"} <= plain  # fmt: skip
    assert "x-zapier-secret" in private_headers(Auth(type="token", secret="env:T", header="X-Zapier-Secret"))
    # Ids and timestamps are not credentials: templates may read them.
    assert not {"webhook-id", "x-webflow-timestamp", "content-type", "origin"} & plain
    assert all(name == name.lower() for name in plain)


# -- token: ?token= can be turned off (it lands in Cloud Run's request logs) --


def test_query_token_can_be_turned_off() -> None:
    SECRETS["env:TOKEN"] = "zap-token-81f2"
    on = Auth(type="token", secret="env:TOKEN")
    off = Auth(type="token", secret="env:TOKEN", query_token=False)
    query = b"token=zap-token-81f2"
    assert authenticate(on, method="POST", url="", query_string=query, headers={}, body=b"", resolve=resolve) is None
    with pytest.raises(Unauthorized):
        authenticate(off, method="POST", url="", query_string=query, headers={}, body=b"", resolve=resolve)
    headers = {"x-webhook-token": "zap-token-81f2"}
    assert (
        authenticate(off, method="POST", url="", query_string=b"", headers=headers, body=b"", resolve=resolve) is None
    )


# -- HubSpot without public_url: the URI as sent, not as Werkzeug decodes it --


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"RAW_URI": "/hubspot?n=Jos%C3%A9&t=%2B56"}, "http://fn.example:8080/hubspot?n=Jos%C3%A9&t=%2B56"),
        ({"REQUEST_URI": "/hubspot?n=jos%c3%a9"}, "http://fn.example:8080/hubspot?n=jos%c3%a9"),
        ({"PATH_INFO": "/hub spot", "QUERY_STRING": "a=%C3%A9"}, "http://fn.example:8080/hub%20spot?a=%C3%A9"),
        ({"RAW_URI": "https://fn.example/hubspot?a=1"}, "https://fn.example/hubspot?a=1"),
    ],
)
def test_raw_url(environ: dict[str, str], expected: str) -> None:
    assert raw_url({"wsgi.url_scheme": "http", "HTTP_HOST": "fn.example:8080", **environ}) == expected


@pytest.mark.slow
def test_hubspot_without_public_url_signs_the_raw_uri(tmp_path: Path) -> None:
    # A HubSpot URL with an accented query value: HubSpot signs "%C3%A9" as sent (v3 decodes only its list).
    config = tmp_path / "formcall.toml"
    config.write_text(
        '[routes.hubspot]\npopup_uuid = "e5c98214-d0f6-11e1-8c30-001d09ef4a24"\ndry_run = true\n'
        'auth = { type = "hubspot", secret = "env:HUBSPOT_APP_SECRET" }\n',
        encoding="utf-8",
    )
    env = {"FORMCALL_CONFIG": str(config), "HUBSPOT_APP_SECRET": "hs-secret-5e0b", "FORMCALL_SECURITY_TOKEN": "t"}
    body = json.dumps({"properties": {"phone": {"value": "+56961234567"}}}).encode()
    target = "/hubspot?campana=Verano%20Jos%C3%A9&src=wf"
    with FunctionProcess(env, tmp_path / "function.log") as fn:
        for signed_uri, status in ((target, 200), ("/hubspot?campana=Verano%20José&src=wf", 401)):
            headers = hubspot_v3("hs-secret-5e0b", "POST", f"http://127.0.0.1:{fn.port}{signed_uri}", body)
            connection = http.client.HTTPConnection("127.0.0.1", fn.port, timeout=30)
            try:
                connection.request("POST", target, body, {"Content-Type": "application/json", **headers})
                answer = connection.getresponse()
                assert answer.status == status, answer.read()
            finally:
                connection.close()
