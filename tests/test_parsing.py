from __future__ import annotations

import json

import pytest

from formcall_webhook.errors import BadRequest, UnsupportedMediaType
from formcall_webhook.parsing import parse_body, parse_query

FORM = "application/x-www-form-urlencoded"


def test_json_and_json_suffix_types() -> None:
    assert parse_body("application/json; charset=utf-8", b'{"phone": "1"}') == {"phone": "1"}
    assert parse_body("application/vnd.api+json", b'{"a": {"b": 2}}') == {"a": {"b": 2}}


def test_text_plain_holding_json() -> None:
    assert parse_body("text/plain;charset=UTF-8", b'{"telefono": "+56961234567"}') == {"telefono": "+56961234567"}


def test_no_content_type_is_sniffed_as_json() -> None:
    assert parse_body(None, b'{"a": 1}') == {"a": 1}


def test_empty_body_is_an_empty_submission() -> None:
    assert parse_body(FORM, b"") == {}
    assert parse_body(None, b"  ") == {}


def test_repeated_form_keys_become_lists() -> None:
    assert parse_body(FORM, b"interes=a&interes=b&phone=1") == {"interes": ["a", "b"], "phone": "1"}


def test_bracketed_keys_are_flat_and_nested() -> None:
    body = parse_body(FORM, b"fields%5Bphone%5D%5Bvalue%5D=%2B56961234567&fields[name][value]=Ana&form_id=7")
    assert body["fields[phone][value]"] == "+56961234567"
    assert body["fields"]["phone"]["value"] == "+56961234567"
    assert body["fields"]["name"]["value"] == "Ana"
    assert body["form_id"] == "7"


def test_empty_brackets_make_lists() -> None:
    body = parse_body(FORM, b"tags[]=a&tags[]=b&x[y][]=1")
    assert body["tags"] == ["a", "b"]
    assert body["x"] == {"y": ["1"]}


def test_a_plain_field_wins_over_a_bracketed_one_of_the_same_name() -> None:
    body = parse_body(FORM, b"fields=plain&fields[a]=1")
    assert body["fields"] == "plain"
    assert body["fields[a]"] == "1"


@pytest.mark.parametrize("key", ["[a]=1", "a[b=1", "a]b[=1", "a[b]c=1", "a" + "[b]" * 40 + "=1"])
def test_odd_bracket_keys_stay_flat(key: str) -> None:
    name = key.split("=")[0]
    assert parse_body(FORM, key.encode())[name] == "1"


def test_latin1_form_is_read() -> None:
    assert parse_body(FORM, "nombre=Jos\xe9".encode("latin-1"))["nombre"] == "Jos\xe9"


def test_multipart_ignores_files() -> None:
    body = (
        b'--XyZ\r\nContent-Disposition: form-data; name="phone"\r\n\r\n+56961234567\r\n'
        b'--XyZ\r\nContent-Disposition: form-data; name="cv"; filename="cv.pdf"\r\n'
        b"Content-Type: application/pdf\r\n\r\n%PDF-1.4\r\n--XyZ--\r\n"
    )
    assert parse_body("multipart/form-data; boundary=XyZ", body) == {"phone": "+56961234567"}


def test_query_parsing() -> None:
    assert parse_query(b"a=1&a=2&b=&c[d]=3") == {"a": ["1", "2"], "b": "", "c[d]": "3", "c": {"d": "3"}}


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/json", b"{"),
        ("application/json", b"[1, 2]"),
        ("application/json", b'"text"'),
        ("application/json", b"\xff\xfe"),
        ("application/json", b"[" * 50000 + b"]" * 50000),
        ("text/plain", b"hello"),
        (None, b"phone=1"),
        ("multipart/form-data", b"no boundary"),
    ],
)
def test_unreadable_bodies_are_bad_requests(content_type: str | None, body: bytes) -> None:
    with pytest.raises(BadRequest):
        parse_body(content_type, body)


@pytest.mark.parametrize("content_type", ["application/xml", "image/png", "text/html"])
def test_other_types_are_unsupported(content_type: str) -> None:
    with pytest.raises(UnsupportedMediaType):
        parse_body(content_type, b"<a/>")


def test_too_many_form_fields_is_a_bad_request() -> None:
    with pytest.raises(BadRequest):
        parse_body(FORM, "&".join(f"k{i}=v" for i in range(5000)).encode())


def test_deep_json_object_is_kept() -> None:
    deep = json.dumps({"a": {"b": {"c": {"d": "+56961234567"}}}}).encode()
    assert parse_body("application/json", deep)["a"]["b"]["c"]["d"] == "+56961234567"


def test_lone_surrogates_become_replacement_characters() -> None:
    body = parse_body("application/json", b'{"nombre": "Ana\\ud800", "\\udfff": ["\\ud83d\\ude00"]}')
    assert body == {"nombre": "Ana\ufffd", "\ufffd": ["\U0001f600"]}
    json.dumps(body, ensure_ascii=False).encode("utf-8")  # encodable everywhere downstream


def test_a_query_with_too_many_fields_is_a_bad_request() -> None:
    with pytest.raises(BadRequest):
        parse_query(b"&" * 1001)


def test_nameless_multipart_parts_are_skipped() -> None:
    body = b"--0\r\nContent-Disposition: form-data\r\n\r\nx\r\n--0--\r\n"
    assert parse_body("multipart/form-data; boundary=0", body) == {}
