"""Meta Lead Ads through a real functions-framework process (spec 5): the subscription handshake, signed
deliveries whose leads are read from a loopback Graph API that checks the page token, the FormCall
simulator, and a Redis store shared with the sweeper (`formcall_sweep`), which reads a lead the Graph
API could not give at first. Signatures are computed here, as Meta documents them."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import requests

from formcall_webhook.simulator import Simulator
from tests.fakes.meta_graph import FakeGraph, field_data
from tests.fakes.redis_server import RedisServer
from tests.harness import FunctionProcess, forbidden_in_logs
from tests.signing import meta

POPUP = "e5c98214-d0f6-11e1-8c30-001d09ef4a24"
TOKEN = "meta-fn-formcall-token-3c"
SIMULATOR_TOKENS = (TOKEN,)
APP_SECRET = "meta-app-secret-9f41"
VERIFY_TOKEN = "meta-verify-token-77d0"
PAGE_TOKEN = "EAAGmeta-page-token-51b2"
SECRETS = {"META_APP_SECRET": APP_SECRET, "META_VERIFY_TOKEN": VERIFY_TOKEN, "META_PAGE_TOKEN": PAGE_TOKEN}
CREATED = "2026-12-01T12:00:00+0000"
_ids = itertools.count(1200984700001001)
_numbers = itertools.count(62420001)
NUMBERS: set[str] = set()

pytestmark = pytest.mark.slow


def new_lead(graph: FakeGraph, **extra: str) -> tuple[str, str]:
    """A lead the Graph API holds: its leadgen_id and its number (none used twice in this module)."""
    leadgen_id, local = str(next(_ids)), str(next(_numbers))
    number = f"+569{local}"
    NUMBERS.update({number, number[1:], f"9{local}", local})
    answers = field_data(phone_number=number, full_name="Valentina Soto", email="valentina.soto@example.cl", **extra)
    graph.add_lead(leadgen_id, answers, CREATED)
    return leadgen_id, number


def delivery(*leadgen_ids: str) -> bytes:
    """A delivery as Meta's Webhooks for Lead Ads sends it: one leadgen change per lead."""
    changes = [
        {"field": "leadgen", "value": {"ad_id": "120211000000000101", "form_id": "1046852300000101",
                                       "leadgen_id": i, "created_time": 1796126400, "page_id": "153125381133",
                                       "adgroup_id": "120211000000000101"}}
        for i in leadgen_ids
    ]  # fmt: skip
    entry = {"id": "153125381133", "time": 1796126401, "changes": changes}
    return json.dumps({"object": "page", "entry": [entry]}).encode()


def post(fn: FunctionProcess, body: bytes, secret: str = APP_SECRET) -> requests.Response:
    headers = {"Content-Type": "application/json", **meta(secret, body)}
    return fn.post("meta", data=body, headers=headers)


@pytest.fixture(scope="module")
def graph() -> Iterator[FakeGraph]:
    fake = FakeGraph(PAGE_TOKEN).start()
    yield fake
    fake.stop()


@pytest.fixture(autouse=True)
def _graph_up(graph: FakeGraph) -> None:
    graph.down = False


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, simulator: Simulator, graph: FakeGraph,
        redis_server: RedisServer) -> dict[str, str]:  # fmt: skip
    redis.Redis.from_url(redis_server.url).flushdb()
    path = tmp_path_factory.mktemp("meta") / "formcall.toml"
    path.write_text(
        f"""
[formcall]
timeout_seconds = 2

[defaults.retry]
schedule = ["1s"]

[routes.meta]
popup_uuid = "{POPUP}"
rate_limit = false
[routes.meta.auth]
type = "meta"
secret = "env:META_APP_SECRET"
verify_token = "env:META_VERIFY_TOKEN"
page_token = "env:META_PAGE_TOKEN"
graph_url = "{graph.url}"

[routes.meta.adicional]
Nombre = "{{{{ full_name }}}}"
Formulario = "{{{{ form_id }}}}"
Lead = "{{{{ leadgen_id }}}}"
""",
        encoding="utf-8",
    )
    return {
        "FORMCALL_CONFIG": str(path),
        "FORMCALL_API_URL": simulator.api_url,
        "FORMCALL_SECURITY_TOKEN": TOKEN,
        "FORMCALL_STORE_URL": redis_server.url,
        **SECRETS,
    }


LOGS: list[Path] = []


@pytest.fixture(scope="module")
def fn(env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[FunctionProcess]:
    path = tmp_path_factory.mktemp("meta-logs") / "webhook.log"
    LOGS.append(path)
    with FunctionProcess(env, path).start() as process:
        yield process


# -- the subscription handshake --


def test_the_handshake_answers_the_challenge_with_the_right_verify_token(fn: FunctionProcess) -> None:
    query = {"hub.mode": "subscribe", "hub.challenge": "1158201444", "hub.verify_token": VERIFY_TOKEN}
    answer = requests.get(f"{fn.url}/meta", params=query, timeout=30)
    assert (answer.status_code, answer.text) == (200, "1158201444")
    assert answer.headers["Content-Type"].startswith("text/plain")


def test_the_handshake_with_a_wrong_verify_token_is_403(fn: FunctionProcess, graph: FakeGraph) -> None:
    for token in ("meta-verify-token-77d1", "", APP_SECRET):
        query = {"hub.mode": "subscribe", "hub.challenge": "1158201444", "hub.verify_token": token}
        answer = requests.get(f"{fn.url}/meta", params=query, timeout=30)
        assert (answer.status_code, answer.json()["error"]) == (403, "unauthorized")
        assert "1158201444" not in answer.text


# -- deliveries --


def test_a_signed_two_lead_delivery_reads_each_lead_and_places_two_calls(
    fn: FunctionProcess, graph: FakeGraph, simulator: Simulator
) -> None:
    (first, number_1), (second, number_2) = new_lead(graph), new_lead(graph)
    answer = post(fn, delivery(first, second))
    assert answer.status_code == 200, answer.text
    leads = answer.json()["leads"]
    assert [(x["leadgen_id"], x["success"]) for x in leads] == [(first, True), (second, True)]
    placed = simulator.placed()
    assert sorted(x["uuid"] for x in leads) == sorted(c["uuid"] for c in placed)
    payloads = {c["payload"]["phonenumber"]: c["payload"] for c in placed}
    assert set(payloads) == {number_1[4:], number_2[4:]}
    assert payloads[number_1[4:]]["adicional"] == {"Nombre": "Valentina Soto", "Formulario": "1046852300000101",
                                                   "Lead": first}  # fmt: skip
    # One Graph read per lead, each with the page token in the header and none in the URL.
    for leadgen_id in (first, second):
        (read,) = graph.reads_of(leadgen_id)
        assert (read.path, read.headers["authorization"]) == (f"/v26.0/{leadgen_id}", f"Bearer {PAGE_TOKEN}")


def test_a_bad_signature_is_401_and_nothing_is_read(
    fn: FunctionProcess, graph: FakeGraph, simulator: Simulator
) -> None:
    leadgen_id, _ = new_lead(graph)
    body = delivery(leadgen_id)
    for answer in (
        post(fn, body, secret="meta-app-secret-9f42"),
        fn.post("meta", data=body, headers={"Content-Type": "application/json"}),
        fn.post("meta", data=body.replace(b"1796126400", b"1796126401"), headers=meta(APP_SECRET, body)),
    ):
        assert (answer.status_code, answer.json()["error"]) == (401, "unauthorized")
    assert graph.reads_of(leadgen_id) == []
    assert simulator.calls() == []


def test_a_replayed_delivery_is_a_duplicate_of_each_lead(
    fn: FunctionProcess, graph: FakeGraph, simulator: Simulator
) -> None:
    (first, _), (second, _) = new_lead(graph), new_lead(graph)
    body = delivery(first, second)
    answer = post(fn, body).json()["leads"]
    again = post(fn, body)
    assert again.status_code == 200
    replayed = again.json()["leads"]
    assert [x.get("duplicate") for x in replayed] == [True, True]
    assert [(x["lead_id"], x["uuid"]) for x in replayed] == [(x["lead_id"], x["uuid"]) for x in answer]
    assert len(simulator.placed()) == 2
    # A later delivery naming one of them again (Meta retrying a partly failed one) is its duplicate too.
    third, _ = new_lead(graph)
    mixed = post(fn, delivery(second, third)).json()["leads"]
    assert [x.get("duplicate") for x in mixed] == [True, None]
    assert len(simulator.placed()) == 3


def test_a_lead_without_a_phone_is_refused_on_its_own_and_the_delivery_is_200(
    fn: FunctionProcess, graph: FakeGraph, simulator: Simulator
) -> None:
    good, _ = new_lead(graph)
    phoneless = str(next(_ids))
    graph.add_lead(phoneless, field_data(full_name="Sin Número", email="sin@example.cl"), CREATED)
    answer = post(fn, delivery(phoneless, good))
    assert answer.status_code == 200, answer.text
    refused, kept = answer.json()["leads"]
    assert (refused["success"], refused["error"]) == (False, "phone_missing")
    assert kept["success"] is True and kept["uuid"]
    assert len(simulator.placed()) == 1


def test_graph_down_keeps_the_lead_and_the_sweep_reads_and_calls_it(
    fn: FunctionProcess,
    graph: FakeGraph,
    simulator: Simulator,
    env: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    leadgen_id, number = new_lead(graph)
    body = delivery(leadgen_id)
    graph.down = True
    answer = post(fn, body)
    assert answer.status_code == 200, answer.text
    (kept,) = answer.json()["leads"]
    assert (kept["success"], kept["scheduled"], kept["leadgen_id"]) == (True, True, leadgen_id)
    assert [r.status for r in graph.reads_of(leadgen_id)] == [500]
    assert simulator.calls() == []
    # Meta sending it again meanwhile: the same kept lead, not a second one.
    again = post(fn, body).json()["leads"][0]
    assert (again["duplicate"], again["lead_id"]) == (True, kept["lead_id"])

    graph.down = False
    path = tmp_path_factory.mktemp("meta-sweep") / "sweep.log"
    LOGS.append(path)
    with FunctionProcess(env, path, target="formcall_sweep").start() as sweeper:
        deadline = time.monotonic() + 30
        while not simulator.placed() and time.monotonic() < deadline:
            counts = requests.post(sweeper.url, timeout=30)
            assert counts.status_code == 200, counts.text
            time.sleep(0.2)  # the lead is due one schedule step (1 s) after the Graph API failed
    (call,) = simulator.placed()
    assert call["payload"]["phonenumber"] == number[4:]
    assert call["payload"]["adicional"]["Lead"] == leadgen_id
    assert [r.status for r in graph.reads_of(leadgen_id)][-1] == 200
    # The lead placed on the sweep is the one answered before: a replay now carries its uuid.
    replay = post(fn, body).json()["leads"][0]
    assert (replay["duplicate"], replay["lead_id"], replay["uuid"]) == (True, kept["lead_id"], call["uuid"])


def test_the_logs_hold_no_number_token_or_secret(fn: FunctionProcess) -> None:
    text = "".join(path.read_text(encoding="utf-8", errors="replace") for path in LOGS)
    assert forbidden_in_logs(text, {*NUMBERS, APP_SECRET, VERIFY_TOKEN, PAGE_TOKEN, TOKEN}) == []
    lines = [json.loads(x) for x in text.splitlines() if x.startswith("{")]
    assert {x["outcome"] for x in lines if x.get("route") == "meta"} >= {"handshake", "placed", "duplicate",
                                                                          "unauthorized", "phone_missing"}  # fmt: skip
