"""auth.type = "meta" without a function process (spec 5): the handshake, the leads a delivery names, the
Graph read built and parsed, and the client once against a loopback Graph API that checks the page token."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from formcall_webhook import config
from formcall_webhook.clients.http import Answer
from formcall_webhook.clients.meta_graph import GraphClient, GraphUnavailable, build_read, flat_body, parse_read
from formcall_webhook.config import Auth
from formcall_webhook.errors import ConfigError, HandshakeRefused, Misconfigured
from formcall_webhook.mapping import builtin_adicional, find_phone
from formcall_webhook.senders import private_headers, secret_refs
from formcall_webhook.senders.meta import Leadgen, handshake, leadgens
from tests.fakes.meta_graph import FakeGraph, field_data
from tests.harness import free_port

SECRETS = {"env:APP": "meta-app-secret-1", "env:VERIFY": "verify-me-7c2", "env:PAGE": "page-token-EAAG-1", "env:E": ""}
AUTH = Auth(type="meta", secret="env:APP", verify_token="env:VERIFY", page_token="env:PAGE")
PAGE_TOKEN = SECRETS["env:PAGE"]


def resolve(ref: str) -> str:
    return SECRETS[ref]


# -- the subscription handshake --


def test_handshake_answers_the_challenge_with_the_right_token() -> None:
    query = b"hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=verify-me-7c2"
    assert handshake(AUTH, query, resolve) == "1158201444"


@pytest.mark.parametrize(
    "query",
    [
        b"hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=verify-me-7c3",
        b"hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=",
        b"hub.mode=subscribe&hub.challenge=1158201444",
        b"hub.mode=unsubscribe&hub.challenge=1158201444&hub.verify_token=verify-me-7c2",
        b"hub.mode=subscribe&hub.challenge=%3Cscript%3E&hub.verify_token=verify-me-7c2",
        b"hub.mode=subscribe&hub.challenge=&hub.verify_token=verify-me-7c2",
        b"",
    ],
)
def test_handshake_refuses_anything_else_with_403(query: bytes) -> None:
    with pytest.raises(HandshakeRefused) as caught:
        handshake(AUTH, query, resolve)
    assert (caught.value.status, caught.value.error) == (403, "unauthorized")


def test_handshake_without_a_verify_token_is_a_misconfiguration() -> None:
    with pytest.raises(Misconfigured):
        handshake(Auth(type="meta", secret="env:APP", verify_token="env:E"), b"hub.mode=subscribe", resolve)


def test_the_three_secrets_are_references_and_the_signature_header_private() -> None:
    assert secret_refs(AUTH) == ["env:APP", "env:VERIFY", "env:PAGE"]
    assert "x-hub-signature-256" in private_headers(AUTH)


# -- the leads a delivery names --


def delivery(*ids: object, field: str = "leadgen") -> dict[str, object]:
    changes = [{"field": field, "value": {"ad_id": "0", "form_id": "4402", "leadgen_id": i, "created_time": 1796126400,
                                           "page_id": "1500", "adgroup_id": "0"}} for i in ids]  # fmt: skip
    return {"object": "page", "entry": [{"id": "1500", "time": 1796126401, "changes": changes}]}


def test_leadgens_in_order_once_each_numbers_or_strings() -> None:
    found = leadgens(delivery(4401001, "4401002", 4401001))
    assert [g.leadgen_id for g in found] == ["4401001", "4401002"]
    assert found[0].value == {"ad_id": "0", "form_id": "4402", "created_time": "1796126400", "page_id": "1500",
                              "adgroup_id": "0"}  # fmt: skip


def test_leadgens_skip_other_fields_and_ids_that_are_not_digits() -> None:
    assert leadgens(delivery(4401001, field="feed")) == []
    assert leadgens(delivery("../../me", "44 01", True, None, 1.5)) == []


@pytest.mark.parametrize("body", [[], "x", {"object": "page"}, {"entry": {}}])
def test_a_body_that_is_no_delivery_is_a_bad_request(body: object) -> None:
    from formcall_webhook.errors import BadRequest

    with pytest.raises(BadRequest):
        leadgens(body)


# -- the Graph read, built and parsed without sockets --


def test_the_read_puts_the_token_in_the_header_never_the_url() -> None:
    read = build_read("https://graph.facebook.com/", "v26.0", "4401001", PAGE_TOKEN)
    assert read.url == "https://graph.facebook.com/v26.0/4401001"
    assert read.headers["Authorization"] == f"Bearer {PAGE_TOKEN}"
    with pytest.raises(ValueError, match="digits"):
        build_read("https://graph.facebook.com", "v26.0", "me/accounts", PAGE_TOKEN)


LEAD = {
    "created_time": "2026-12-01T12:00:00+0000",
    "id": "4401001",
    "field_data": [
        *field_data(phone_number="+56962400001", full_name="Ana Pérez", email="ana@example.cl"),
        {"name": "¿Comuna?", "values": ["Ñuñoa"]},
        {"name": "horario", "values": ["mañana", "tarde"]},
        {"name": "ad_id", "values": ["spoofed"]},
    ],
}


def test_the_flat_body_has_each_answer_by_name_and_the_ids() -> None:
    change = Leadgen("4401001", {"ad_id": "120", "form_id": "4402", "created_time": "1796126400"}).value
    body = flat_body(parse_read(Answer(200, {}, json.dumps(LEAD).encode()), "4401001"), change, "4401001")
    assert body == {
        "phone_number": "+56962400001",
        "full_name": "Ana Pérez",
        "email": "ana@example.cl",
        "¿Comuna?": "Ñuñoa",
        "horario": "mañana, tarde",
        "ad_id": "120",
        "form_id": "4402",
        "leadgen_id": "4401001",
        "created_time": "2026-12-01T12:00:00+0000",
    }
    # The zero-config finder reads it as any form.
    assert find_phone(body) == "+56962400001"
    assert builtin_adicional(body) == {"Nombre": "Ana Pérez", "Email": "ana@example.cl"}


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (Answer(500, {}, b'{"error": {"code": 2, "type": "OAuthException"}}'), "Graph API 500, error 2"),
        (Answer(400, {}, b'{"error": {"code": 100, "error_subcode": 33}}'), "Graph API 400, error 100/33"),
        (Answer(502, {}, b"<html>Bad gateway</html>"), "Graph API 502"),
        (Answer(200, {}, b'{"id": "4401001"}'), "Graph API answered something that is not a lead"),
        (Answer(200, {}, json.dumps({**LEAD, "id": "9"}).encode()), "Graph API answered another lead's id"),
    ],
)
def test_every_failure_is_graph_unavailable(answer: Answer, reason: str) -> None:
    with pytest.raises(GraphUnavailable) as caught:
        parse_read(answer, "4401001")
    assert caught.value.reason == reason


# -- the client, once, against the loopback Graph API --


@pytest.fixture
def graph() -> Iterator[FakeGraph]:
    fake = FakeGraph(PAGE_TOKEN).start()
    fake.add_lead("4401001", LEAD["field_data"], LEAD["created_time"])  # type: ignore[arg-type]
    yield fake
    fake.stop()


def test_the_client_reads_a_lead_with_the_page_token(graph: FakeGraph) -> None:
    lead = GraphClient().read(graph.url, "v26.0", "4401001", PAGE_TOKEN)
    assert lead["field_data"] == LEAD["field_data"]
    (read,) = graph.reads
    assert (read.path, read.headers["authorization"], read.status) == ("/v26.0/4401001", f"Bearer {PAGE_TOKEN}", 200)


def test_the_fake_refuses_a_wrong_token_and_an_unknown_id(graph: FakeGraph) -> None:
    with pytest.raises(GraphUnavailable, match="error 190"):
        GraphClient().read(graph.url, "v26.0", "4401001", "page-token-EAAG-2")
    with pytest.raises(GraphUnavailable, match="error 100/33"):
        GraphClient().read(graph.url, "v26.0", "4401009", PAGE_TOKEN)
    graph.down = True
    with pytest.raises(GraphUnavailable, match="500, error 2"):
        GraphClient().read(graph.url, "v26.0", "4401001", PAGE_TOKEN)


def test_graph_unreachable_is_graph_unavailable() -> None:
    with pytest.raises(GraphUnavailable, match=r"Graph API .*ConnectionRefusedError"):
        GraphClient(timeout=2.0).read(f"http://127.0.0.1:{free_port()}", "v26.0", "4401001", PAGE_TOKEN)


# -- the config: the three secrets required, the Graph API's place and version checked --


def meta_route(auth: str) -> str:
    return f'[formcall]\nsecurity_token = "env:T"\n[routes.meta]\npopup_uuid = "{POPUP}"\nauth = {{ {auth} }}\n'


POPUP = "e5c98214-d0f6-11e1-8c30-001d09ef4a24"
FULL = 'type = "meta", secret = "env:APP", verify_token = "env:VERIFY", page_token = "env:PAGE"'


def load(tmp_path: Path, text: str) -> config.Config:
    path = tmp_path / "formcall.toml"
    path.write_text(text, encoding="utf-8")
    return config.load({}, path)


def test_a_meta_route_loads_with_the_defaults(tmp_path: Path) -> None:
    auth = load(tmp_path, meta_route(FULL)).routes["meta"].auth
    assert (auth.graph_url, auth.graph_version) == ("https://graph.facebook.com", "v26.0")
    assert (auth.secret, auth.verify_token, auth.page_token) == ("env:APP", "env:VERIFY", "env:PAGE")


@pytest.mark.parametrize(
    ("auth", "key", "problem"),
    [
        ('type = "meta", secret = "env:APP", verify_token = "env:VERIFY"', "page_token", "missing: auth type meta"),
        ('type = "meta", secret = "env:APP", page_token = "env:PAGE"', "verify_token", "missing: auth type meta"),
        ('type = "meta", verify_token = "env:VERIFY", page_token = "env:PAGE"', "secret", "missing: auth type meta"),
        (FULL + ', page_token = "EAAG-in-clear"', "page_token", "a literal secret is not allowed"),
        (FULL + ', graph_version = "26"', "graph_version", "must be a Graph API version"),
        (FULL + ', graph_url = "graph.facebook.com"', "graph_url", "must be a URL"),
    ],
)
def test_a_meta_route_without_what_it_needs_names_the_key(tmp_path: Path, auth: str, key: str, problem: str) -> None:
    text = meta_route(auth.replace(', page_token = "env:PAGE", page_token', ", page_token"))
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text)
    assert caught.value.key == f"routes.meta.auth.{key}"
    assert problem in caught.value.problem


# -- the unread lead, as the Lead type keeps it --


def test_an_unread_lead_round_trips_and_is_read_once() -> None:
    from formcall_webhook.records import Lead, MoveRefused, Unread

    kept = Lead.kept_unread(
        lead_id="ld_00000000000000000001", route="meta", received=1796126400.0,
        unread=Unread("meta", "4401001", {"form_id": "4402"}), keep_days=30,
        claims=[("formcall:meta:delivery:ab", 86400.0)], due_at=1796126460.0, last_error="graph_unavailable",
    )  # fmt: skip
    assert Lead.from_json(kept.to_json()) == kept
    assert kept.to_json()["unread"] == {"source": "meta", "id": "4401001", "value": {"form_id": "4402"}, "reads": 0}
    assert (kept.state, kept.payload, kept.phone, kept.attempt.next_attempt_at) == ("scheduled", None, None,
                                                                           "2026-12-01T12:01:00Z")  # fmt: skip
    again = kept.unread_again(1796126700.0, "graph_unavailable")
    assert again.unread is not None and again.unread.reads == 1 and again.version == kept.version + 1
    payload = {"popup_uuid": "e5c98214-d0f6-11e1-8c30-001d09ef4a24", "country_code": "56", "areacode": "9",
               "phonenumber": "62400001", "security_token": "t"}  # fmt: skip
    read = again.read(payload=payload, masked="+56*****001", phone_hash="h", claims=[("formcall:*:lead:cd", 3600)])
    assert (read.unread, read.phone, read.popup_uuid) == (None, "+56*****001", payload["popup_uuid"])
    assert read.payload is not None and "security_token" not in read.payload
    assert read.claims == (("formcall:meta:delivery:ab", 86400.0), ("formcall:*:lead:cd", 3600.0))
    assert "unread" not in read.to_json()
    with pytest.raises(MoveRefused):
        read.read(payload=payload, masked="+56*****001", phone_hash="h", claims=[])
    with pytest.raises(MoveRefused):
        read.unread_again(1796126800.0, "graph_unavailable")
