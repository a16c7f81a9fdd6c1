"""A lost FormCall answer (timeout, reset) is settled from FormCall's own list before calling again."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path
from typing import Any

import pytest

from formcall_webhook.app import App, Request, read_stream
from formcall_webhook.clients.formcall import list_url_for
from formcall_webhook.runtime import Runtime
from formcall_webhook.simulator import Simulator
from tests.clock import TestClock, clock_of

POPUP = "e5c98214-d0f6-11e1-8c30-001d09ef4a24"
TOKEN = "once-token-2f9a"
SIMULATOR_TOKENS = (TOKEN,)  # the tokens the module's simulator accepts (tests/conftest.py)
TIMEOUT = 0.5
SETTLE = 2 * TIMEOUT


@pytest.fixture
def app(tmp_path: Path, simulator: Simulator) -> App:
    path = tmp_path / "f.toml"
    # retry = false: the sender's own retry settles a lost answer (with retry on, the sweeper does:
    # tests/test_leads_kept.py).
    path.write_text(
        f"[formcall]\ntimeout_seconds = {TIMEOUT}\n[routes.default]\npopup_uuid = '{POPUP}'\nretry = false\n"
    )
    environ = {"FORMCALL_CONFIG": str(path), "FORMCALL_API_URL": simulator.api_url, "FORMCALL_SECURITY_TOKEN": TOKEN}
    return App(runtime=Runtime(environ, clock=TestClock(simulator).now))


def post(app: App, phone: str) -> tuple[int, dict[str, Any], dict[str, str]]:
    raw = json.dumps({"phone": phone}).encode()
    stream = io.BytesIO(raw)
    req = Request(
        "POST",
        "/",
        {"content-type": "application/json"},
        b"",
        lambda n, timeout=None: read_stream(stream, n, timeout),
        len(raw),
    )
    response = app.handle(req)
    return response.status, json.loads(response.body), response.headers


def settled(simulator: Simulator, limit: float = 30.0) -> None:
    """Wait (polling, a generous deadline) until the simulator has decided every call it received: a slow
    fault holds its call for real seconds that the test's clock does not skip."""
    deadline = time.monotonic() + limit
    while any(call["outcome"] is None for call in simulator.calls()):
        assert time.monotonic() < deadline, "the simulator never decided a call"
        time.sleep(0.02)


def test_list_url_beside_the_api() -> None:
    assert list_url_for("https://clickandtalk.medularis.com/calls/manage/api") == (
        "https://clickandtalk.medularis.com/calls/list"
    )
    assert list_url_for("http://127.0.0.1:9/calls/manage/api/") == "http://127.0.0.1:9/calls/list"
    assert list_url_for("https://proxy.example/formcall") == "https://proxy.example/calls/list"


@pytest.mark.parametrize(
    "fault", [{"kind": "slow", "seconds": TIMEOUT + 0.3}, {"kind": "placed_then_reset"}, {"kind": "malformed_json"}]
)
def test_call_placed_but_answer_lost_is_not_placed_again(app: App, simulator: Simulator, fault: dict[str, Any]) -> None:
    simulator.inject(fault)
    status, body, _ = post(app, "+56 9 6100 0001")
    assert (status, body["error"]) == (503, "formcall_unavailable")
    # Too early: FormCall may still be working on it, so its list proves nothing yet.
    status, body, headers = post(app, "+56 9 6100 0001")
    assert status == 503
    assert 1 <= int(headers["Retry-After"]) <= SETTLE + 1
    settled(simulator)
    clock_of(app).advance(SETTLE + 0.1)
    status, body, _ = post(app, "+56 9 6100 0001")
    placed = simulator.placed()
    assert len(placed) == 1
    assert (status, body) == (
        200, {"success": True, "duplicate": True, "lead_id": body["lead_id"], "uuid": placed[0]["uuid"]}
    )  # fmt: skip
    # The first lead's record is now placed, with the call's uuid.
    record = app.store.get_lead(body["lead_id"])
    assert record is not None and (record["state"], record["uuid"]) == ("placed", placed[0]["uuid"])
    # Settled for good: later duplicates answer from the store without asking FormCall again.
    status, body, _ = post(app, "+56 9 6100 0001")
    assert body["uuid"] == placed[0]["uuid"]
    assert len(simulator.calls()) == 1


def test_answer_lost_and_no_call_placed_is_called_once_on_retry(app: App, simulator: Simulator) -> None:
    simulator.inject({"kind": "reset"})
    assert post(app, "+56 9 6100 0002")[0] == 503
    settled(simulator)
    clock_of(app).advance(SETTLE + 0.1)
    status, body, _ = post(app, "+56 9 6100 0002")
    assert status == 200, body
    assert "duplicate" not in body
    assert len(simulator.placed()) == 1
    assert body["uuid"] == simulator.placed()[0]["uuid"]
    # One lead: the failed record of the lost attempt went once its call proved never placed.
    assert [r["state"] for r in app.store.scan_leads()] == ["placed"]


@pytest.mark.parametrize(
    "fault",
    [
        {"kind": "http500_html"},
        {"kind": "html_200"},
        {"kind": "reset_mid_answer"},
        {"kind": "drip", "seconds": 4 * TIMEOUT},
    ],
    ids=lambda f: f["kind"],
)
def test_an_answer_is_not_a_lost_one_and_the_retry_is_called_at_once(
    app: App, simulator: Simulator, fault: dict[str, Any]
) -> None:
    """An error page, or FormCall's own answer saying the call failed before it broke off, is an answer
    (spec 4, formcall_unavailable), not a lost one (spec 8): nothing is kept nor looked up, and the
    sender's retry is called at once, without waiting for FormCall's list."""
    simulator.inject(fault)
    status, body, _ = post(app, "+56 9 6100 0004")
    assert (status, body["error"]) == (503, "formcall_unavailable")
    settled(simulator)
    assert simulator.placed() == []
    assert list(app.store.scan_leads()) == []
    status, body, _ = post(app, "+56 9 6100 0004")
    assert status == 200, body
    assert "duplicate" not in body
    [call] = simulator.placed()
    assert body["uuid"] == call["uuid"]
    assert [r["state"] for r in app.store.scan_leads()] == ["placed"]


def test_never_sent_is_retried_at_once(tmp_path: Path, simulator: Simulator) -> None:
    path = tmp_path / "f.toml"
    path.write_text(
        f"[formcall]\ntimeout_seconds = {TIMEOUT}\n[routes.default]\npopup_uuid = '{POPUP}'\nretry = false\n"
    )
    env = {"FORMCALL_CONFIG": str(path), "FORMCALL_SECURITY_TOKEN": TOKEN}
    down = App({**env, "FORMCALL_API_URL": "http://127.0.0.1:9/calls/manage/api"})
    assert post(down, "+56 9 6100 0003")[0] == 503
    # Nothing left: the same lead through a healthy FormCall is placed without waiting to settle.
    up = App({**env, "FORMCALL_API_URL": simulator.api_url})
    # The two share one store, as instances sharing Redis do.
    up.runtime.config()
    up.runtime._store = down.store
    up.runtime.attempter.store = down.store
    assert post(up, "+56 9 6100 0003")[0] == 200
