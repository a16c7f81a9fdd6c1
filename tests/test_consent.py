"""Consent fields as real forms send them, the page they came from, and the opt-out hash (spec 10)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from formcall_webhook import errors
from formcall_webhook.answers import failure
from formcall_webhook.consent import (
    GIVEN_WORDS,
    ConsentRule,
    is_given,
    optout_hash,
    origin_of,
    parse_consent,
    record,
)
from formcall_webhook.parsing import parse_body

SAMPLES = Path(__file__).parent / "samples"
FORM = "application/x-www-form-urlencoded"
AT = "2026-12-01T10:00:00Z"
REQUIRED = ConsentRule("acepto", required=True, text="v2026-12")


def sample(name: str, content_type: str, extra: bytes = b"") -> dict[str, Any]:
    return parse_body(content_type, (SAMPLES / name).read_bytes() + extra)


# ------------------------------------------------------------------------------------------------ words


@pytest.mark.parametrize("word", sorted(GIVEN_WORDS))
def test_each_word_is_consent_in_any_case(word: str) -> None:
    for variant in (word, word.upper(), word.title(), f"  {word}\n"):
        assert is_given(variant), variant


def test_the_words_are_the_specs() -> None:
    assert {"true", "on", "1", "si", "sí", "yes", "acepto"} == GIVEN_WORDS
    assert is_given("SÍ") and is_given("Sí")


@pytest.mark.parametrize("value", [True, 1, ["", "on"], ["no", "acepto"], ("1",)])
def test_json_and_lists(value: Any) -> None:
    assert is_given(value)


@pytest.mark.parametrize(
    "value",
    [None, False, 0, 2, 1.0, "", " ", "false", "off", "0", "no", "n", "acepto los términos", "yes please",
     "trueish", [], ["no", "off"], {"value": "on"}],
)  # fmt: skip
def test_refusals(value: Any) -> None:
    assert not is_given(value)


# ------------------------------------------------------------------------------------------------ config


def test_parse_consent() -> None:
    assert parse_consent("formcall.toml", "routes.default.consent", None) is None
    assert parse_consent("formcall.toml", "routes.default.consent", False) is None
    assert parse_consent("formcall.toml", "routes.default.consent", "acepto") == ConsentRule("acepto", False, None)
    assert parse_consent(
        "formcall.toml", "routes.default.consent", {"field": " acepto ", "required": True, "text": "v2026-12"}
    ) == ConsentRule("acepto", True, "v2026-12")


@pytest.mark.parametrize(
    ("value", "key", "problem"),
    [
        (True, "routes.default.consent", "must be a table"),
        (["acepto"], "routes.default.consent", "must be a table"),
        ({"required": True}, "routes.default.consent.field", "missing: the name of the form's consent field"),
        ({"field": ""}, "routes.default.consent.field", "missing"),
        ({"field": 3}, "routes.default.consent.field", "missing"),
        ({"field": "acepto", "required": "yes"}, "routes.default.consent.required", "must be true or false"),
        ({"field": "acepto", "text": 2026}, "routes.default.consent.text", "must be a string"),
        ({"field": "acepto", "version": "v1"}, "routes.default.consent.version", "known keys here: ads_field, field"),
    ],
)
def test_config_errors_name_the_key(value: Any, key: str, problem: str) -> None:
    with pytest.raises(errors.ConfigError) as caught:
        parse_consent("formcall.toml", "routes.default.consent", value)
    assert (caught.value.source, caught.value.key) == ("formcall.toml", key)
    assert problem in caught.value.problem
    assert str(caught.value).startswith(f"formcall.toml: {key}: ")


# ------------------------------------------------------------------------------------------------ record


def test_record_holds_what_the_law_asks() -> None:
    headers = {"origin": "https://acme.cl", "referer": "https://acme.cl/landing/?utm_source=x"}
    assert record(REQUIRED, {"acepto": "on"}, headers, AT) == {
        "given": True,
        "field": "acepto",
        "text": "v2026-12",
        "at": AT,
        "origin": "https://acme.cl",
    }


def test_required_and_not_given_is_refused() -> None:
    for body in ({}, {"acepto": ""}, {"acepto": "no"}, {"acepto": ["off"]}, {"otro": "on"}):
        with pytest.raises(errors.ConsentMissing) as caught:
            record(REQUIRED, body, {}, AT)
        response = failure(caught.value)
        assert response.status == 422
        assert json.loads(response.body) == {
            "success": False,
            "error": "consent_missing",
            "message": "Consent to be called was not given.",
        }
        assert b"acepto" not in response.body


def test_optional_and_not_given_records_nothing() -> None:
    assert record(ConsentRule("acepto"), {"acepto": "off"}, {"origin": "https://acme.cl"}, AT) is None
    assert record(ConsentRule("acepto"), {}, {}, AT) is None


def test_elementor_webhook() -> None:
    body = sample("elementor.form", FORM, b"&fields%5Bacepto%5D%5Bid%5D=acepto&fields%5Bacepto%5D%5Bvalue%5D=on")
    consent = record(REQUIRED, body, {"referer": "https://acme.cl/landing/?gclid=abc#form"}, AT)
    assert consent is not None and consent["origin"] == "https://acme.cl/landing/"
    # The bracketed key as sent also works as the field name.
    assert record(ConsentRule("fields[acepto][value]", required=True), body, {}, AT) is not None
    with pytest.raises(errors.ConsentMissing):
        record(REQUIRED, sample("elementor.form", FORM), {}, AT)


def test_contact_form_7_acceptance() -> None:
    body = sample("contact_form_7.form", FORM, b"&your-consent=1")
    assert record(ConsentRule("your-consent", required=True), body, {}, AT) is not None
    with pytest.raises(errors.ConsentMissing):
        record(ConsentRule("your-consent", required=True), sample("contact_form_7.form", FORM), {}, AT)


def test_checkbox_list() -> None:
    body = parse_body(FORM, b"phone=912345678&acepto%5B%5D=&acepto%5B%5D=si")
    assert record(REQUIRED, body, {}, AT) is not None


def test_unbounce_data_json() -> None:
    # The sample holds "acepto_llamado": ["Sí"] inside the data.json field.
    body = sample("unbounce.form", FORM)
    assert record(ConsentRule("acepto_llamado", required=True), body, {}, AT) is not None
    assert record(ConsentRule("acepto_whatsapp"), body, {}, AT) is None


def test_hubspot_property() -> None:
    body = json.loads((SAMPLES / "hubspot_legacy_contact.json").read_text())
    with pytest.raises(errors.ConsentMissing):
        record(ConsentRule("acepto_llamado", required=True), body, {}, AT)
    body["properties"]["acepto_llamado"] = {"value": "true", "versions": []}
    assert record(ConsentRule("acepto_llamado", required=True), body, {}, AT) is not None
    assert record(ConsentRule("properties.acepto_llamado.value", required=True), body, {}, AT) is not None


def test_tally_checkbox() -> None:
    body = json.loads((SAMPLES / "tally.json").read_text())
    body["data"]["fields"].append(
        {"key": "question_ok", "label": "Acepto que me llamen", "type": "CHECKBOX", "value": True}
    )
    assert record(ConsentRule("Acepto que me llamen", required=True), body, {}, AT) is not None
    assert record(ConsentRule("question_ok", required=True), body, {}, AT) is not None
    body["data"]["fields"][-1]["value"] = False
    with pytest.raises(errors.ConsentMissing):
        record(ConsentRule("question_ok", required=True), body, {}, AT)


def test_top_level_wins_over_nested() -> None:
    assert record(ConsentRule("acepto"), {"acepto": "no", "fields": {"acepto": {"value": "on"}}}, {}, AT) is None


# ------------------------------------------------------------------------------------------------ origin


@pytest.mark.parametrize(
    ("headers", "origin"),
    [
        ({"origin": "https://acme.cl"}, "https://acme.cl"),
        ({"origin": "https://acme.cl", "referer": "https://other.cl/page"}, "https://acme.cl"),
        ({"origin": "null", "referer": "https://acme.cl/landing?x=1"}, "https://acme.cl/landing"),
        ({"referer": "https://acme.cl/landing/?utm_source=google&gclid=x"}, "https://acme.cl/landing/"),
        ({"referer": "https://acme.cl/p#form"}, "https://acme.cl/p"),
        ({"referer": "HTTP://Acme.CL:8080/p?q"}, "http://acme.cl:8080/p"),
        ({"referer": "https://user:pass@acme.cl/p"}, "https://acme.cl/p"),
        ({"referer": "http://[2001:db8::1]:8080/x?y"}, "http://[2001:db8::1]:8080/x"),
        ({"referer": "android-app://com.google.android.gm/"}, None),
        ({"origin": "file://", "referer": "javascript:alert(1)"}, None),
        ({"referer": "http://[::1/x"}, None),
        ({"referer": "https://acme.cl:99999/x"}, None),
        ({"referer": "https://acme.cl/a b"}, None),
        ({"referer": "https://acme.cl/\r\nx"}, None),
        ({"referer": ""}, None),
        ({}, None),
    ],
)
def test_origin(headers: dict[str, str], origin: str | None) -> None:
    assert origin_of(headers) == origin


def test_origin_is_cut_to_512() -> None:
    page = origin_of({"referer": "https://acme.cl/" + "a" * 2000 + "?q=1"})
    assert page is not None and len(page) == 512 and page.startswith("https://acme.cl/aaa")


# ----------------------------------------------------------------------------------------------- opt-out


def test_optout_hash() -> None:
    # RFC 4231, test case 2: an independent check of HMAC-SHA256.
    assert optout_hash(b"Jefe", "what do ya want for nothing?") == (
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    )
    first = optout_hash(b"k1", "+56912345678")
    assert len(first) == 64 and "56912345678" not in first
    assert first == optout_hash(b"k1", "+56912345678")
    assert first != optout_hash(b"k2", "+56912345678") != optout_hash(b"k1", "+56912345679")


def test_opted_out_answer() -> None:
    response = failure(errors.OptedOut("This number asked not to be called."))
    assert response.status == 422
    assert json.loads(response.body)["error"] == "opted_out"
    assert "Retry-After" not in response.headers
