from __future__ import annotations

import pytest
from jinja2 import TemplateSyntaxError

from formcall_webhook.templates import Template


def render(source: str, **context: object) -> str:
    return Template(source).render(context)


def test_missing_fields_render_empty() -> None:
    assert render("{{ nombre }} {{ apellido }}") == ""
    assert render("{{ properties.phone.value }}") == ""
    assert render("{{ telefono or phone }}", phone="123") == "123"


def test_null_renders_empty_not_none() -> None:
    assert render("{{ phone }}", phone=None) == ""


def test_literal_text_without_syntax() -> None:
    assert render("Landing verano") == "Landing verano"


def test_nested_access_and_items() -> None:
    assert render("{{ properties.phone.value }}", properties={"phone": {"value": "9 6123 4567"}}) == "9 6123 4567"
    assert render("{{ body['your-phone'] }}", body={"your-phone": "+56"}) == "+56"


def test_fromjson_and_digits_filters() -> None:
    assert render("{{ (data_json | fromjson).phone }}", data_json='{"phone": ["+56 9"]}') == "['+56 9']"
    assert render("{{ (data_json | fromjson).phone[0] }}", data_json='{"phone": ["+56 9"]}') == "+56 9"
    assert render("{{ (bad | fromjson).phone }}", bad="{not json") == ""
    assert render("{{ tel | digits }}", tel="+56 (9) 6123-4567") == "56961234567"
    assert render("{{ missing | digits }}") == ""


def test_mapping_lookup_with_default() -> None:
    source = "{{ {'santiago': 'A'}.get(properties.sucursal.value, 'B') }}"
    assert render(source, properties={"sucursal": {"value": "santiago"}}) == "A"
    assert render(source, properties={}) == "B"


def test_errors_on_a_submission_render_empty() -> None:
    assert render("{{ a + 1 }}", a="x") == ""
    assert render("{{ a[5] }}", a=[1]) == ""
    assert render("{{ 1 / a }}", a=0) == ""


def test_sandbox_blocks_unsafe_access() -> None:
    assert render("{{ a.__class__.__mro__ }}", a="x") == ""
    assert render("{{ ''.__class__.__subclasses__() }}") == ""


def test_syntax_errors_raise_at_compile_time() -> None:
    with pytest.raises(TemplateSyntaxError):
        Template("{{ unclosed ")
