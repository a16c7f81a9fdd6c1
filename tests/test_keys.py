"""Store keys (keys.py): one owner, the same key wherever it is asked for, and no number in clear."""

from __future__ import annotations

import ast
from pathlib import Path

from formcall_webhook import keys

PACKAGE = Path(__file__).resolve().parent.parent / "formcall_webhook"


KEY = b"a-store-key-for-tests"


def test_phone_keys_span_routes_ip_keys_do_not() -> None:
    assert keys.rate_phone("+56961234567", key=KEY) != keys.rate_phone("+56961234568", key=KEY)
    assert "56961234567" not in keys.rate_phone("+56961234567", key=KEY)
    assert keys.rate_ip("form", "2001:db8:1:2::/64") != keys.rate_ip("landing", "2001:db8:1:2::/64")
    assert keys.lead_claim("+56961234567", "p", key=KEY) == keys.keyed(keys.ANY_ROUTE, "lead", "+56961234567|p", KEY)
    assert keys.dedupe_claim("form", "v1", key=KEY) != keys.dedupe_claim("landing", "v1", key=KEY)
    assert keys.delivery_claim("form", "d1") != keys.dedupe_claim("form", "d1", key=KEY)
    assert keys.lease("ld_1") == "formcall:lease:ld_1"


def test_a_persons_keys_are_their_counter_and_default_claims() -> None:
    found = keys.person("+56961234567", {"p1", "p2"}, key=KEY)
    assert found == {keys.rate_phone("+56961234567", key=KEY), keys.lead_claim("+56961234567", "p1", key=KEY),
                     keys.lead_claim("+56961234567", "p2", key=KEY)}  # fmt: skip


def test_number_keys_are_keyed_hashes_not_plain_sha256() -> None:
    """Issue 18.3: the per_phone key was plain SHA-256 of the number, reversed in 2.8 s by hashing every
    number. Keyed, it is another key's hash under another key, and no plain hash of the number."""
    import hashlib

    e164 = "+56961234567"
    plain = {hashlib.sha256(v.encode()).hexdigest()[:40] for v in (e164, e164 + "|p")}
    for made in (keys.rate_phone(e164, key=KEY), keys.lead_claim(e164, "p", key=KEY)):
        assert made.rsplit(":", 1)[1] not in plain
    assert keys.rate_phone(e164, key=KEY) != keys.rate_phone(e164, key=b"another key")
    assert keys.fingerprint(KEY) != keys.fingerprint(b"another key") and KEY.hex() not in keys.fingerprint(KEY)


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
