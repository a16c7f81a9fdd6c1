"""Store keys (keys.py): one owner, the same key wherever it is asked for, and no number in clear."""

from __future__ import annotations

import ast
from pathlib import Path

from formcall_webhook import keys

PACKAGE = Path(__file__).resolve().parent.parent / "formcall_webhook"


def test_phone_keys_span_routes_ip_keys_do_not() -> None:
    assert keys.rate_phone("+56961234567") != keys.rate_phone("+56961234568")
    assert "56961234567" not in keys.rate_phone("+56961234567")
    assert keys.rate_ip("form", "2001:db8:1:2::/64") != keys.rate_ip("landing", "2001:db8:1:2::/64")
    assert keys.lead_claim("+56961234567", "p") == keys.hashed(keys.ANY_ROUTE, "lead", "+56961234567|p")
    assert keys.dedupe_claim("form", "v1") != keys.dedupe_claim("landing", "v1")
    assert keys.delivery_claim("form", "d1") != keys.dedupe_claim("form", "d1")
    assert keys.lease("ld_1") == "formcall:lease:ld_1"


def test_a_persons_keys_are_their_counter_and_default_claims() -> None:
    found = keys.person("+56961234567", {"p1", "p2"})
    assert found == {keys.rate_phone("+56961234567"), keys.lead_claim("+56961234567", "p1"),
                     keys.lead_claim("+56961234567", "p2")}  # fmt: skip


def test_no_module_but_keys_builds_a_store_key() -> None:
    """ "formcall:..." keys are written in keys.py alone: `leads forget` must never build one by hand."""
    builders = []
    for path in PACKAGE.rglob("*.py"):
        if path.name == "keys.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.JoinedStr) and any(
                isinstance(part, ast.Constant) and str(part.value).startswith("formcall:") for part in node.values[:1]
            ):
                builders.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    assert builders == []
