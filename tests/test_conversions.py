"""Conversions back to the ads (spec 12): the bodies against the official libraries' own models and
normalisers, the client against loopback fakes of Google's and Meta's APIs, the config and consent."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from facebook_business.adobjects.serverside.user_data import UserData
from google.ads.datamanager_util import Encoding, Formatter
from google.ads.datamanager_v1.types import ConsentStatus, IngestEventsRequest

from formcall_webhook import config, consent, conversions
from formcall_webhook.clients import conversions as client
from formcall_webhook.clients.http import make_pool
from formcall_webhook.errors import ConfigError
from tests.fakes.ads import META_TOKEN, FakeAds

UUID = "0f8fad5b-d9cb-469f-a165-70867728950e"
CALL_AT = 1_764_600_000.0  # 2025-12-01T14:40:00Z
GOOGLE = conversions.GoogleConversions("1234567890", "987654321", 1.0, "CLP")
META = conversions.MetaConversions("123456789012345", "env:META_TOKEN")


def conv(**fields: object) -> conversions.Conversion:
    base: dict[str, object] = {
        "uuid": UUID, "call_time": CALL_AT, "e164": "+56912345678", "email": " Ana.Perez+promo@Gmail.com ",
        "country": "CL", "clicks": {"gclid": "Cj0KCQiA-test_1", "fbclid": "IwAR2abc"},
        "received_time": CALL_AT - 600, "ads_consent": True,
    }  # fmt: skip
    base.update(fields)
    return conversions.Conversion(**base)  # type: ignore[arg-type]


# -- normalisation, checked against each platform's own code --

EMAILS = [" Ana.Perez+promo@Gmail.com ", "JUAN@Empresa.CL", "a.b.c@googlemail.com", "x+y@outlook.com"]


@pytest.mark.parametrize("email", EMAILS)
def test_google_email_is_googles_formatter(email: str) -> None:
    assert conversions.google_email(email) == Formatter().format_email_address(email)


@pytest.mark.parametrize("bad", ["", "   ", "a b@c.cl", "no-at-sign", "@dominio.cl", "user@", "+@gmail.com"])
def test_google_email_refuses_what_the_formatter_refuses(bad: str) -> None:
    assert conversions.google_email(bad) is None
    with pytest.raises(ValueError, match=r"[Ee]mail"):
        Formatter().format_email_address(bad)


@pytest.mark.parametrize("e164", ["+56912345678", "+12025550123", "+5491123456789"])
def test_phone_hashes_are_each_platforms_own(e164: str) -> None:
    google = conversions.google_body(GOOGLE, conv(e164=e164, email=None))
    ids = google["events"][0]["userData"]["userIdentifiers"]
    assert ids == [{"phoneNumber": Formatter().process_phone_number(e164, Encoding.HEX)}]
    meta = conversions.meta_body(META, conv(e164=e164, email=None))
    assert meta["data"][0]["user_data"]["ph"] == UserData(phones=[e164]).normalize()["ph"]


@pytest.mark.parametrize("email", EMAILS)
def test_email_hashes_are_each_platforms_own(email: str) -> None:
    google = conversions.google_body(GOOGLE, conv(email=email))
    assert google["events"][0]["userData"]["userIdentifiers"][0] == {
        "emailAddress": Formatter().process_email_address(email, Encoding.HEX)
    }
    meta = conversions.meta_body(META, conv(email=email))
    sdk = UserData(emails=[email], country_codes=["CL"]).normalize()
    assert meta["data"][0]["user_data"]["em"] == sdk["em"]
    assert meta["data"][0]["user_data"]["country"] == sdk["country"]


# -- the bodies, parsed by the libraries' own request models --


def test_google_body_is_an_ingest_events_request() -> None:
    body = conversions.google_body(GOOGLE, conv())
    request = IngestEventsRequest.from_json(json.dumps(body), ignore_unknown_fields=False)
    assert request.destinations[0].operating_account.account_id == "1234567890"
    assert request.destinations[0].product_destination_id == "987654321"
    event = request.events[0]
    assert event.transaction_id == UUID
    assert event.event_timestamp.timestamp() == CALL_AT
    assert event.ad_identifiers.gclid == "Cj0KCQiA-test_1"
    assert event.consent.ad_user_data == ConsentStatus.CONSENT_GRANTED
    assert event.consent.ad_personalization == ConsentStatus.CONSENT_GRANTED
    assert event.conversion_value == 1.0 and event.currency == "CLP"
    assert str(request.encoding.name) == "HEX"


def test_google_consent_is_granted_only_from_ads_consent() -> None:
    body = conversions.google_body(GOOGLE, conv(ads_consent=False))
    event = IngestEventsRequest.from_json(json.dumps(body)).events[0]
    assert event.consent.ad_user_data == ConsentStatus.CONSENT_DENIED
    assert event.consent.ad_personalization == ConsentStatus.CONSENT_DENIED


def test_google_takes_one_click_id_gclid_first_and_none_without() -> None:
    body = conversions.google_body(GOOGLE, conv(clicks={"wbraid": "WB1", "gbraid": "GB1"}))
    assert body["events"][0]["adIdentifiers"] == {"gbraid": "GB1"}
    assert "adIdentifiers" not in conversions.google_body(GOOGLE, conv(clicks={}))["events"][0]


def test_meta_body_is_the_sdks_event() -> None:
    from facebook_business.adobjects.serverside.action_source import ActionSource
    from facebook_business.adobjects.serverside.event import Event

    c = conv()
    body = conversions.meta_body(META, c)
    sdk = Event(
        event_name="Contact",
        event_time=int(CALL_AT),
        event_id=UUID,
        action_source=ActionSource.PHONE_CALL,
        user_data=UserData(
            emails=[str(c.email)],
            phones=[str(c.e164)],
            country_codes=["cl"],
            fbc=f"fb.1.{int(CALL_AT - 600) * 1000}.IwAR2abc",
        ),
    ).normalize()
    assert body == {"data": [sdk]}


def test_meta_fbc_prefers_the_cookie_and_keeps_fbp() -> None:
    clicks = {"fbclid": "IwAR2abc", "fbc": "fb.1.1700000000000.IwAR2abc", "fbp": "fb.1.1700000000000.123456"}
    user = conversions.meta_body(META, conv(clicks=clicks))["data"][0]["user_data"]
    assert user["fbc"] == "fb.1.1700000000000.IwAR2abc" and user["fbp"] == "fb.1.1700000000000.123456"
    assert "fbc" not in conversions.meta_body(META, conv(clicks={}))["data"][0]["user_data"]


def test_meta_seven_days() -> None:
    assert not conversions.meta_too_old(conv(), CALL_AT + 7 * 86400)
    assert conversions.meta_too_old(conv(), CALL_AT + 8 * 86400)


def test_clicks_from_fields_else_query_and_only_well_formed() -> None:
    body = {"gclid": "G1", "_fbc": "fb.1.17.X", "_fbp": ["fb.1.17.9"], "wbraid": "has space", "fbclid": ""}
    query = {"fbclid": "F1", "gclid": "ignored", "gbraid": "<script>"}
    assert conversions.clicks_of(body, query) == {"gclid": "G1", "fbclid": "F1", "fbc": "fb.1.17.X", "fbp": "fb.1.17.9"}


# -- the client against the fakes --


@pytest.fixture
def ads() -> Iterator[FakeAds]:
    fake = FakeAds(clock=lambda: CALL_AT + 3600).start()
    yield fake
    fake.stop()


def service_account_file(tmp_path: Path, ads: FakeAds) -> Path:
    """A service account key file whose token endpoint is the fake's, and the fake told its public key."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    ads.public_key = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    path = tmp_path / "adc.json"
    path.write_text(
        json.dumps(
            {
                "type": "service_account",
                "project_id": "acme",
                "private_key_id": "k1",
                "private_key": private,
                "client_email": "formcall@acme.iam.gserviceaccount.com",
                "client_id": "1",
                "token_uri": f"{ads.url}/token",
            }
        ),
        encoding="utf-8",
    )
    return path


@pytest.fixture
def google_credentials(tmp_path: Path, ads: FakeAds, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Application Default Credentials found through GOOGLE_APPLICATION_CREDENTIALS and refreshed with a
    signed JWT at the fake's token endpoint, as google-auth does it."""
    path = service_account_file(tmp_path, ads)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(path))
    return path


def test_google_event_accepted_with_adc(ads: FakeAds, google_credentials: Path) -> None:
    pool = make_pool()
    token = client.GoogleToken(conversions.GOOGLE_SCOPE)
    policy = conversions.GoogleConversions("1234567890", "987654321", api_url=ads.url)
    body = conversions.google_body(policy, conv())
    result = client.post_event(pool, conversions.google_url(policy), body, token.get(pool))
    assert result.kind == "sent", result
    assert list(ads.google_events) == [UUID]
    # The token is fetched once and reused while valid.
    client.post_event(pool, conversions.google_url(policy), body, token.get(pool))
    assert len(ads.of("token")) == 1
    assert ads.scopes == [conversions.GOOGLE_SCOPE]


def test_google_without_credentials_is_unavailable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing.json"))
    with pytest.raises(client.CredentialsUnavailable):
        client.GoogleToken(conversions.GOOGLE_SCOPE).get(make_pool())


def test_meta_429_then_accepted(ads: FakeAds) -> None:
    pool = make_pool()
    policy = conversions.MetaConversions("123456789012345", "env:X", api_url=ads.url)
    ads.fail_next("meta", 429, {"Retry-After": "30"})
    url, body = conversions.meta_url(policy), conversions.meta_body(policy, conv())
    first = client.post_event(pool, url, body, META_TOKEN)
    assert (first.kind, first.retry_after) == ("retry", 30)
    assert client.post_event(pool, url, body, META_TOKEN).kind == "sent"
    assert list(ads.meta_events) == [UUID]


@pytest.mark.parametrize("status", [500, 503, 408])
def test_server_errors_are_retried(ads: FakeAds, status: int) -> None:
    policy = conversions.MetaConversions("123456789012345", "env:X", api_url=ads.url)
    ads.fail_next("meta", status)
    result = client.post_event(
        make_pool(), conversions.meta_url(policy), conversions.meta_body(policy, conv()), META_TOKEN
    )
    assert result.kind == "retry"


def test_a_400_is_final_with_the_platforms_words(ads: FakeAds) -> None:
    policy = conversions.MetaConversions("123456789012345", "env:X", api_url=ads.url)
    old = conv(call_time=CALL_AT - 8 * 86400)
    result = client.post_event(
        make_pool(), conversions.meta_url(policy), conversions.meta_body(policy, old), META_TOKEN
    )
    assert (result.kind, result.status) == ("final", 400)
    assert "more than 7 days ago" in result.reason
    assert ads.meta_events == {}


def test_the_fakes_refuse_raw_data(ads: FakeAds, google_credentials: Path) -> None:
    """The fakes are a test's teeth: a body with an unhashed number is refused by each."""
    pool = make_pool()
    policy = conversions.GoogleConversions("1234567890", "987654321", api_url=ads.url)
    body = conversions.google_body(policy, conv())
    body["events"][0]["userData"]["userIdentifiers"][1]["phoneNumber"] = "+56912345678"
    token = client.GoogleToken(conversions.GOOGLE_SCOPE).get(pool)
    assert client.post_event(pool, conversions.google_url(policy), body, token).kind == "final"
    body = conversions.google_body(policy, conv())
    body["events"][0]["clickId"] = "x"
    assert client.post_event(pool, conversions.google_url(policy), body, token).kind == "final"
    meta = conversions.MetaConversions("123456789012345", "env:X", api_url=ads.url)
    raw = conversions.meta_body(meta, conv())
    raw["data"][0]["user_data"]["ph"] = ["56912345678"]
    assert client.post_event(pool, conversions.meta_url(meta), raw, META_TOKEN).kind == "final"
    assert (
        client.post_event(pool, conversions.meta_url(meta), conversions.meta_body(meta, conv()), "wrong").kind
        == "final"
    )
    assert ads.google_events == {} and ads.meta_events == {}


# -- config, consent, check --

ROUTE = """
[routes.default]
consent = { field = "acepto", ads_field = "acepto_publicidad" }

[routes.default.conversions]
google = { account = "123-456-7890", conversion_action = "987654321", value = 1, currency = "clp" }
meta = { pixel_id = "123456789012345", token = "env:META_TOKEN" }
"""


def load(tmp_path: Path, text: str) -> config.Config:
    path = tmp_path / "formcall.toml"
    path.write_text(text, encoding="utf-8")
    return config.load({"FORMCALL_POPUP_UUID": UUID, "FORMCALL_SECURITY_TOKEN": "t"}, path)


def test_config_reads_conversions_and_turns_outcome_lookups_on(tmp_path: Path) -> None:
    route = load(tmp_path, ROUTE).routes["default"]
    assert route.conversions == conversions.ConversionsPolicy(
        conversions.GoogleConversions("1234567890", "987654321", 1.0, "CLP"),
        conversions.MetaConversions("123456789012345", "env:META_TOKEN"),
    )
    assert route.consent is not None and route.consent.ads_field == "acepto_publicidad"
    assert route.outcome_reporting is not None


@pytest.mark.parametrize(
    ("value", "key", "problem"),
    [
        ('{ google = { conversion_action = "1" } }', "conversions.google.account", "missing"),
        ('{ google = { account = "12", conversion_action = "1" } }', "conversions.google.account", "customer id"),
        (
            '{ google = { account = "1234567890", conversion_action = "1", currency = "pesos" } }',
            "conversions.google.currency",
            "ISO 4217",
        ),
        ('{ meta = { pixel_id = "1", token = "literal" } }', "conversions.meta.token", "literal secret"),
        ('{ meta = { pixel_id = "abc", token = "env:T" } }', "conversions.meta.pixel_id", "digits"),
        ("{ tiktok = {} }", "conversions.tiktok", "unknown key"),
        ('{ meta = { pixel_id = "1", token = "env:T", api_url = "ftp://x" } }', "conversions.meta.api_url", "http"),
    ],
)
def test_config_errors_name_the_key(tmp_path: Path, value: str, key: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, f"[routes.default]\nconversions = {value}\n")
    assert key in str(caught.value) and problem in str(caught.value)


def test_consent_records_ads_separately() -> None:
    rule = consent.ConsentRule("acepto", ads_field="acepto_publicidad")
    both = consent.record(rule, {"acepto": "on", "acepto_publicidad": "on"}, {}, "2026-12-01T00:00:00Z")
    assert both is not None and both["given"] is True and both["ads"] is True and consent.ads_given(both)
    call_only = consent.record(rule, {"acepto": "on"}, {}, "2026-12-01T00:00:00Z")
    assert call_only is not None and call_only["ads"] is False and not consent.ads_given(call_only)
    without_rule = consent.record(consent.ConsentRule("acepto"), {"acepto": "on", "acepto_publicidad": "on"}, {}, "t")
    assert without_rule is not None and "ads" not in without_rule and not consent.ads_given(without_rule)
    assert not consent.ads_given(None)


def test_check_warns_about_conversions_without_ads_consent(tmp_path: Path) -> None:
    path = tmp_path / "formcall.toml"
    path.write_text(
        f"[defaults]\npopup_uuid = '{UUID}'\n[routes.default]\nconsent = 'acepto'\n"
        "conversions = { meta = { pixel_id = '1', token = 'env:T' } }\n"
        "[routes.ok]\nconsent = { field = 'acepto', ads_field = 'ads' }\n"
        "conversions = { meta = { pixel_id = '1', token = 'env:T' } }\n",
        encoding="utf-8",
    )
    env = {"FORMCALL_SECURITY_TOKEN": "t", "T": "t", "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-m", "formcall_webhook", "check", str(path)],
        cwd=Path(__file__).parent.parent, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    warned = [line for line in done.stderr.splitlines() if "conversions" in line]
    assert len(warned) == 1 and warned[0].startswith("warning: routes.default.conversions: "), done.stderr
    assert "consent.ads_field" in warned[0]


# -- the conversions step of the outcome work --


def conversion_record(**fields: object) -> dict[str, object]:
    return {
        "uuid": UUID, "received_ts": CALL_AT - 600, "consent": {"given": True, "ads": True},
        "payload": {"country_code": "56", "areacode": "9", "phonenumber": "12345678"},
        "contact": {"email": "ana@example.cl"}, "clicks": {"gclid": "G1", "fbclid": "F1"}, **fields,
    }  # fmt: skip


CALL = {"uuid": UUID, "connected": True, "successful": True, "call_at": "2025-12-01T11:40:00-03:00"}


@pytest.mark.parametrize(("age", "meta"), [(8 * 86400, "skipped: call over 7 days old"), (7 * 86400 - 60, "sent")])
def test_no_meta_event_for_a_call_over_7_days_old(ads: FakeAds, google_credentials: Path, age: int, meta: str) -> None:
    from formcall_webhook.conversion_work import ConversionWork

    now = CALL_AT + age
    ads.clock = lambda: now
    policy = conversions.ConversionsPolicy(
        conversions.GoogleConversions("1234567890", "987654321", api_url=ads.url),
        conversions.MetaConversions("123456789012345", "env:META", api_url=ads.url),
    )
    work = ConversionWork(lambda ref: META_TOKEN if ref == "env:META" else "", make_pool())
    step = work.step(conversion_record(), CALL, policy, now, now + 3600)
    assert step.done == {"google": "sent", "meta": meta} and step.finished
    assert list(ads.google_events) == [UUID]
    assert list(ads.meta_events) == ([UUID] if meta == "sent" else [])
    assert len(ads.of("meta")) == (1 if meta == "sent" else 0)
    # The call's time is /calls/list's call_at, offset and all.
    assert ads.meta_events.get(UUID, {"event_time": int(CALL_AT)})["event_time"] == int(CALL_AT)


def test_a_step_sends_only_what_is_not_done_and_gives_up_at_give_up(ads: FakeAds) -> None:
    from formcall_webhook.conversion_work import ConversionWork

    policy = conversions.ConversionsPolicy(meta=conversions.MetaConversions("1", "env:META", api_url=ads.url))
    work = ConversionWork(lambda ref: META_TOKEN, make_pool())
    assert work.step(conversion_record(conversions={"meta": "sent"}), CALL, policy, CALL_AT, CALL_AT + 1).done == {
        "meta": "sent"
    }
    assert ads.requests == []
    ads.fail_next("meta", 503)
    step = work.step(conversion_record(), CALL, policy, CALL_AT + 10, CALL_AT + 10)
    assert step.done == {"meta": "failed"} and step.finished
    assert step.failures == ["meta: gave up, HTTP 503"]
