"""A Meta lead the Graph API could not give (spec 5 and 8), in-process on a clock the test controls: kept by
its leadgen_id alone, read on the sweep, then called as any lead; read again on the retry schedule while
the Graph API stays down, and given up after max_age; refused for good when its fields hold no phone; a
duplicate when its number is already a lead."""

from __future__ import annotations

import io
import itertools
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from formcall_webhook.app import App, Request, read_stream
from formcall_webhook.records import Lead
from formcall_webhook.runtime import Runtime
from formcall_webhook.simulator import Simulator
from formcall_webhook.sweep import Sweeper
from tests.clock import TestClock, clock_of
from tests.fakes.meta_graph import FakeGraph, field_data
from tests.signing import meta

POPUP = "e5c98214-d0f6-11e1-8c30-001d09ef4a24"
# A weighted route's popups: its round robin's first pick is B (weight 2), never the list's first.
POPUP_A = "e5c98214-d0f6-11e1-8c30-00000000000a"
POPUP_B = "e5c98214-d0f6-11e1-8c30-00000000000b"
WEIGHTED = f'[{{ uuid = "{POPUP_A}", weight = 1 }}, {{ uuid = "{POPUP_B}", weight = 2 }}]'
TOKEN = "meta-unread-token-4a"
SIMULATOR_TOKENS = (TOKEN,)
APP_SECRET = "meta-app-secret-21c0"
PAGE_TOKEN = "EAAGmeta-page-token-0b77"
CREATED = "2026-12-01T12:00:00+0000"
_ids = itertools.count(1200984700005001)
_numbers = itertools.count(62430001)


@pytest.fixture
def graph() -> Iterator[FakeGraph]:
    with FakeGraph(PAGE_TOKEN) as fake:
        yield fake


def make_app(tmp_path: Path, simulator: Simulator, graph: FakeGraph, *, at: float | None = None) -> App:
    path = tmp_path / "formcall.toml"
    path.write_text(
        f"""
[formcall]
timeout_seconds = 2
[defaults.retry]
schedule = ["1m", "5m"]
max_age = "1h"
[routes.meta]
popup_uuid = "{POPUP}"
rate_limit = false
adicional = {{ Nombre = "{{{{ full_name }}}}" }}
[routes.meta.auth]
type = "meta"
secret = "env:META_APP_SECRET"
verify_token = "env:META_VERIFY_TOKEN"
page_token = "env:META_PAGE_TOKEN"
graph_url = "{graph.url}"
[routes.form]
popup_uuid = "{POPUP}"
rate_limit = false
[routes.wform]
popup_uuid = {WEIGHTED}
rate_limit = false
pace = "1/minute"
[routes.wmeta]
popup_uuid = {WEIGHTED}
rate_limit = false
pace = "1/minute"
[routes.wmeta.auth]
type = "meta"
secret = "env:META_APP_SECRET"
verify_token = "env:META_VERIFY_TOKEN"
page_token = "env:META_PAGE_TOKEN"
graph_url = "{graph.url}"
[routes.strict]
popup_uuid = "{POPUP}"
rate_limit = false
retry = false
[routes.strict.auth]
type = "meta"
secret = "env:META_APP_SECRET"
verify_token = "env:META_VERIFY_TOKEN"
page_token = "env:META_PAGE_TOKEN"
graph_url = "{graph.url}"
""",
        encoding="utf-8",
    )
    environ = {
        "FORMCALL_CONFIG": str(path),
        "FORMCALL_API_URL": simulator.api_url,
        "FORMCALL_SECURITY_TOKEN": TOKEN,
        "META_APP_SECRET": APP_SECRET,
        "META_VERIFY_TOKEN": "meta-verify-token-1",
        "META_PAGE_TOKEN": PAGE_TOKEN,
    }
    clock = TestClock(simulator)
    if at is not None:
        clock.advance_to(at)  # the simulator's clock moves with it
    return App(runtime=Runtime(environ, clock=clock.now))


def post(app: App, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    stream = io.BytesIO(body)
    all_headers = {"content-type": "application/json", **{k.lower(): v for k, v in headers.items()}}
    request = Request("POST", path, all_headers, b"", lambda n, *_: read_stream(stream, n), len(body))
    response = app.handle(request)
    return response.status, json.loads(response.body)


def delivery(*leadgen_ids: str) -> bytes:
    values = [{"ad_id": "120211000000000101", "form_id": "1046852300000101", "leadgen_id": i,
               "created_time": 1796126400, "page_id": "153125381133"} for i in leadgen_ids]  # fmt: skip
    entry = {"id": "153125381133", "time": 1796126401, "changes": [{"field": "leadgen", "value": v} for v in values]}
    return json.dumps({"object": "page", "entry": [entry]}).encode()


def deliver(app: App, leadgen_id: str, path: str = "/meta") -> dict[str, Any]:
    body = delivery(leadgen_id)
    status, answer = post(app, path, body, meta(APP_SECRET, body))
    assert status == 200, answer
    (lead,) = answer["leads"]
    return dict(lead)


def new_lead(graph: FakeGraph, **answers: str) -> tuple[str, str]:
    leadgen_id, number = str(next(_ids)), f"+569{next(_numbers)}"
    graph.add_lead(
        leadgen_id, field_data(**{"phone_number": number, "full_name": "Valentina Soto", **answers}), CREATED
    )
    return leadgen_id, number


def record(app: App, lead_id: str) -> Lead:
    found = app.store.get_lead(lead_id)
    assert found is not None
    return Lead.from_json(found)


def sweep_at(app: App, when: float) -> dict[str, int]:
    clock_of(app).advance_to(when + 0.01)
    return Sweeper(app.runtime).run()


def test_kept_by_its_id_then_read_and_called_on_the_sweep(
    tmp_path: Path, simulator: Simulator, graph: FakeGraph
) -> None:
    app = make_app(tmp_path, simulator, graph)
    leadgen_id, number = new_lead(graph)
    graph.down = True
    kept = deliver(app, leadgen_id)
    assert (kept["scheduled"], kept["leadgen_id"]) == (True, leadgen_id)
    lead = record(app, kept["lead_id"])
    assert lead.unread is not None and lead.unread.id == leadgen_id
    assert (lead.state, lead.payload, lead.phone, lead.last_error) == ("scheduled", None, None, "graph_unavailable")
    assert lead.due_at is not None and lead.due_at - lead.received_ts == pytest.approx(60, abs=1)

    # Still down on the sweep: read again later (the schedule's next step), nothing called.
    assert sweep_at(app, lead.due_at)["scheduled"] == 1
    again = record(app, kept["lead_id"])
    assert again.unread is not None and again.unread.reads == 1
    assert again.due_at is not None and again.due_at - lead.due_at == pytest.approx(300, abs=1)
    assert simulator.calls() == []

    graph.down = False
    assert sweep_at(app, again.due_at)["placed"] == 1
    (call,) = simulator.placed()
    assert (call["payload"]["phonenumber"], call["payload"]["adicional"]) == (number[4:], {"Nombre": "Valentina Soto"})
    placed = record(app, kept["lead_id"])
    assert (placed.state, placed.unread, placed.uuid) == ("placed", None, call["uuid"])
    assert placed.phone is not None and placed.phone.startswith("+56") and number not in placed.phone
    # Meta sending the delivery again: the lead it was, with its uuid now.
    replay = deliver(app, leadgen_id)
    assert (replay["duplicate"], replay["lead_id"], replay["uuid"]) == (True, kept["lead_id"], call["uuid"])
    # The delivery's read, two on the sweep, and the replay's (a lead is known as a duplicate once read).
    assert [r.status for r in graph.reads_of(leadgen_id)] == [500, 500, 200, 200]


def test_given_up_after_max_age_while_the_graph_api_stays_down(
    tmp_path: Path, simulator: Simulator, graph: FakeGraph
) -> None:
    app = make_app(tmp_path, simulator, graph)
    leadgen_id, _ = new_lead(graph)
    graph.down = True
    lead_id = deliver(app, leadgen_id)["lead_id"]
    for _ in range(20):
        lead = record(app, lead_id)
        if lead.state != "scheduled":
            break
        assert lead.due_at is not None
        sweep_at(app, lead.due_at)
    failed = record(app, lead_id)
    assert (failed.state, failed.last_error) == ("failed", "graph_unavailable")
    assert failed.due_at is None
    assert simulator.calls() == []


def test_a_lead_read_without_a_phone_is_refused_for_good(
    tmp_path: Path, simulator: Simulator, graph: FakeGraph
) -> None:
    app = make_app(tmp_path, simulator, graph)
    leadgen_id = str(next(_ids))
    graph.add_lead(leadgen_id, field_data(full_name="Sin Número"), CREATED)
    graph.down = True
    lead_id = deliver(app, leadgen_id)["lead_id"]
    graph.down = False
    lead = record(app, lead_id)
    assert lead.due_at is not None
    sweep_at(app, lead.due_at)
    refused = record(app, lead_id)
    assert (refused.state, refused.last_error, refused.due_at) == ("failed", "phone_missing", None)
    assert simulator.calls() == []


@pytest.mark.parametrize(("meta", "form"), [("/meta", "/form"), ("/wmeta", "/wform")], ids=["one_popup", "weighted"])
def test_a_number_already_a_lead_makes_the_read_lead_its_duplicate(
    tmp_path: Path, simulator: Simulator, graph: FakeGraph, meta: str, form: str
) -> None:
    """The Meta lead read on the sweep is the duplicate of the form lead that came first. A weighted
    route's leads are claimed on its pool of popups (spec 2, 11), whatever popup either went to."""
    app = make_app(tmp_path, simulator, graph)
    leadgen_id, number = new_lead(graph)
    graph.down = True
    kept = deliver(app, leadgen_id, meta)
    # Meanwhile the same person fills in a landing-page form: that is the lead.
    status, first = post(app, form, json.dumps({"phone": number}).encode(), {})
    assert status == 200 and first["uuid"], first
    graph.down = False
    lead = record(app, kept["lead_id"])
    assert lead.due_at is not None
    sweep_at(app, lead.due_at)
    assert app.store.get_lead(kept["lead_id"]) is None
    assert len(simulator.placed()) == 1  # rung once
    replay = deliver(app, leadgen_id, meta)
    assert (replay["duplicate"], replay["lead_id"], replay["uuid"]) == (True, first["lead_id"], first["uuid"])


def test_a_weighted_routes_meta_lead_is_routed_and_paced_as_its_form_leads(
    tmp_path: Path, simulator: Simulator, graph: FakeGraph
) -> None:
    """Read on the sweep, a weighted route's Meta lead goes to the popup its round robin picks (as the
    request path's leads do) and counts against that popup's pace, the one the form leads count on."""
    start = float((int(time.time()) // 60 + 2) * 60)  # a whole minute ahead: all below happens within one
    app = make_app(tmp_path, simulator, graph, at=start)
    leadgen_id, number = new_lead(graph)
    graph.down = True
    kept = deliver(app, leadgen_id, "/wmeta")
    graph.down = False
    lead = record(app, kept["lead_id"])
    assert lead.due_at is not None and lead.due_at < start + 61
    clock_of(app).advance_to(lead.due_at + 0.01)
    minute = start + 60
    # A form lead of a route with the same popups takes B's one call of this minute.
    status, form = post(app, "/wform", json.dumps({"phone": "+56962439901"}).encode(), {})
    assert status == 200 and form["uuid"], form
    assert [c["payload"]["popup_uuid"] for c in simulator.placed()] == [POPUP_B]
    Sweeper(app.runtime).run()
    paced = record(app, kept["lead_id"])
    assert (paced.state, paced.popup_uuid, paced.due_at) == ("scheduled", POPUP_B, minute + 60)
    assert len(simulator.placed()) == 1  # nothing on A meanwhile
    sweep_at(app, minute + 60)
    calls = simulator.placed()
    assert [c["payload"]["popup_uuid"] for c in calls] == [POPUP_B, POPUP_B]
    assert calls[1]["payload"]["phonenumber"] == number[4:]
    assert record(app, kept["lead_id"]).uuid == calls[1]["uuid"]


def test_retry_false_answers_a_5xx_for_any_lead_not_kept_and_logs_each_lead(
    tmp_path: Path, simulator: Simulator, graph: FakeGraph, capsys: pytest.CaptureFixture[str]
) -> None:
    """retry = false: the function keeps nothing for later, so a lead FormCall could not take makes the
    delivery a 5xx (Meta sends it again); the lead placed meanwhile is a duplicate on that retry."""
    app = make_app(tmp_path, simulator, graph)
    (first, _), (second, _) = new_lead(graph), new_lead(graph)
    body = delivery(first, second)
    simulator.inject({"kind": "error", "code": 3})
    status, answer = post(app, "/strict", body, meta(APP_SECRET, body))
    assert (status, answer["error"]) == (502, "origination_failed")
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith("{")]
    assert [(x["outcome"], x["status"]) for x in lines] == [("origination_failed", 502), ("placed", 200)]
    status, answer = post(app, "/strict", body, meta(APP_SECRET, body))
    assert status == 200, answer
    assert [x.get("duplicate") for x in answer["leads"]] == [None, True]
    assert len(simulator.placed()) == 2
    # The Graph API down on such a route: nothing kept, 503, and Meta sends it again.
    third, _ = new_lead(graph)
    graph.down = True
    body = delivery(third)
    status, answer = post(app, "/strict", body, meta(APP_SECRET, body))
    assert (status, answer["error"]) == (503, "graph_unavailable")
    assert [Lead.from_json(r).unread for r in app.store.scan_leads()] == [None, None]
