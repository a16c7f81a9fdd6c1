"""Settling a lost answer on the fields /calls/list documents (spec 8), on a clock the test controls.

The simulator's rows carry exactly the documented fields here (its customer number is stripped), so the
function is proven on the rows FormCall documents, not on a kinder world. Each test checks the calls
FormCall received and the records kept.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from formcall_webhook import records, settle
from formcall_webhook import simulator as simulator_module
from formcall_webhook.app import App, Request, read_stream
from formcall_webhook.runtime import Runtime
from formcall_webhook.settle import Holder, LostAttempt, Row, Settled
from formcall_webhook.simulator import Simulator
from formcall_webhook.sweep import Sweeper
from tests.clock import TestClock

POPUP = "e5c98214-d0f6-11e1-8c30-001d09ef4a24"
TOKEN = "lost-token-7c2"
SIMULATOR_TOKENS = (TOKEN,)
TIMEOUT = 0.5
DOCUMENTED = {"uuid", "status", "call_number_company", "retry", "duration_company", "duration_customer", "call_at",
              "enqueued", "popup_uuid"}  # fmt: skip


@pytest.fixture(autouse=True)
def documented_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    real = simulator_module._list_row

    def documented(*args: Any) -> dict[str, Any]:
        return {k: v for k, v in real(*args).items() if k in DOCUMENTED}

    monkeypatch.setattr(simulator_module, "_list_row", documented)


@pytest.fixture
def clock(simulator: Simulator) -> TestClock:
    return TestClock(simulator)


def make_app(tmp_path: Path, simulator: Simulator, clock: TestClock, route_extra: str = "") -> App:
    path = tmp_path / "f.toml"
    path.write_text(
        f'[formcall]\ntimeout_seconds = {TIMEOUT}\n[defaults.retry]\nschedule = ["1m"]\nmax_age = "1h"\n'
        f"[routes.default]\npopup_uuid = '{POPUP}'\nrate_limit = false\n{route_extra}\n"
    )
    environ = {"FORMCALL_CONFIG": str(path), "FORMCALL_API_URL": simulator.api_url,
               "FORMCALL_SECURITY_TOKEN": TOKEN, "FORMCALL_STORE_URL": "memory://"}  # fmt: skip
    return App(runtime=Runtime(environ, clock=clock.now))


def post(app: App, phone: str) -> dict[str, Any]:
    raw = json.dumps({"phone": phone}).encode()
    stream = io.BytesIO(raw)
    req = Request(
        "POST", "/", {"content-type": "application/json"}, b"", lambda n, *_: read_stream(stream, n), len(raw)
    )
    response = app.handle(req)
    body: dict[str, Any] = json.loads(response.body)
    assert response.status == 200, body
    return body


def record(app: App, lead_id: str) -> dict[str, Any]:
    found = app.store.get_lead(lead_id)
    assert found is not None
    return found


def test_one_lost_answer_is_its_call(tmp_path: Path, simulator: Simulator, clock: TestClock) -> None:
    app = make_app(tmp_path, simulator, clock)
    simulator.inject({"kind": "placed_then_reset"})
    body = post(app, "+56 9 6300 0001")
    assert body["scheduled"] is True
    assert record(app, body["lead_id"])["attempt_since"] is not None
    clock.advance(61)
    counts = Sweeper(app.runtime).run()
    assert counts["placed"] == 1
    placed = simulator.placed()
    assert len(simulator.calls()) == 1 and len(placed) == 1
    kept = record(app, body["lead_id"])
    assert (kept["state"], kept["uuid"], kept["attempt_since"]) == ("placed", placed[0]["uuid"], None)
    assert "uuid_certain" not in kept  # one lead, one row: told apart


def test_a_lost_answer_whose_call_was_never_placed_is_called_again(
    tmp_path: Path, simulator: Simulator, clock: TestClock
) -> None:
    app = make_app(tmp_path, simulator, clock)
    simulator.inject({"kind": "reset"})  # the request reached FormCall, which placed nothing
    body = post(app, "+56 9 6300 0002")
    assert body["scheduled"] is True
    assert simulator.placed() == []
    clock.advance(61)
    counts = Sweeper(app.runtime).run()
    assert counts["placed"] == 1
    placed = simulator.placed()
    assert len(simulator.calls()) == 2 and len(placed) == 1
    kept = record(app, body["lead_id"])
    assert (kept["state"], kept["uuid"], kept["attempts"]) == ("placed", placed[0]["uuid"], 2)
    assert Sweeper(app.runtime).run()["due"] == 0
    assert len(simulator.calls()) == 2


def test_two_leads_lost_on_one_popup_in_one_second_share_the_rows(
    tmp_path: Path, simulator: Simulator, clock: TestClock
) -> None:
    app = make_app(tmp_path, simulator, clock, route_extra='outcome = { after = "1m" }')
    simulator.inject({"kind": "placed_then_reset"}, {"kind": "placed_then_reset"})
    first, second = post(app, "+56 9 6300 0003"), post(app, "+56 9 6300 0004")
    assert first["scheduled"] is True and second["scheduled"] is True
    clock.advance(61)
    assert Sweeper(app.runtime).run()["placed"] == 2
    placed = {call["uuid"] for call in simulator.placed()}
    assert len(simulator.calls()) == 2 and len(placed) == 2  # none rung twice
    kept = [record(app, body["lead_id"]) for body in (first, second)]
    assert {r["uuid"] for r in kept} == placed  # each took a row of its own
    for r in kept:
        # The rows name no customer: which lead each call rang cannot be told, so no outcome is reported.
        assert (r["state"], r["uuid_certain"], r["outcome"], r["due_at"]) == ("placed", False, None, None)
        assert records.public(r)["uuid_certain"] is False  # `leads show --json` says so too
    clock.advance(3600)
    assert Sweeper(app.runtime).run()["due"] == 0
    assert len(simulator.calls()) == 2


def test_two_leads_lost_and_one_call_placed_ring_no_one_twice(
    tmp_path: Path, simulator: Simulator, clock: TestClock
) -> None:
    app = make_app(tmp_path, simulator, clock)
    simulator.inject({"kind": "placed_then_reset"}, {"kind": "reset"})
    first, second = post(app, "+56 9 6300 0005"), post(app, "+56 9 6300 0006")
    clock.advance(61)
    Sweeper(app.runtime).run()
    (call,) = simulator.placed()
    assert len(simulator.calls()) == 2
    kept = [record(app, body["lead_id"]) for body in (first, second)]
    assert [(r["state"], r["uuid"], r["uuid_certain"]) for r in kept] == [("placed", call["uuid"], False)] * 2


def test_no_settling_while_another_attempt_in_the_window_may_still_be_answered(
    tmp_path: Path, simulator: Simulator, clock: TestClock
) -> None:
    app = make_app(tmp_path, simulator, clock)
    simulator.inject({"kind": "reset"}, {"kind": "placed_then_reset"})
    first = post(app, "+56 9 6300 0009")
    clock.advance(0.3)  # the second request is out in the same second: its call could be either's
    second = post(app, "+56 9 6300 0010")
    clock.advance(0.7)  # the first is due; the second is younger than settle_after
    Sweeper(app.runtime).run()
    waiting = record(app, first["lead_id"])
    assert (waiting["state"], waiting["uuid"]) == ("scheduled", None)
    assert waiting["due_at"] == pytest.approx(record(app, second["lead_id"])["attempt_since"] + 2 * TIMEOUT)
    assert len(simulator.calls()) == 2  # nothing new


def test_a_call_never_placed_is_called_although_a_later_lost_call_is_in_its_window(
    tmp_path: Path, simulator: Simulator, clock: TestClock
) -> None:
    """The soak's case (issue 16): FormCall reset the first request without placing anything; 20 s later it
    placed the second lead's call and lost that answer too. The second call is inside the first lead's
    window but was asked for by the second request alone: it is the second lead's, and the first is called."""
    app = make_app(tmp_path, simulator, clock)
    simulator.inject({"kind": "reset"}, {"kind": "placed_then_reset"})
    first = post(app, "+56 9 6300 0011")
    clock.advance(20)
    second = post(app, "+56 9 6300 0012")
    (theirs,) = simulator.placed()
    clock.advance(41)  # the first is due (a minute on) and settles while the second's is not yet
    assert Sweeper(app.runtime).run()["placed"] == 1
    assert len(simulator.calls()) == 3
    clock.advance(20)
    assert Sweeper(app.runtime).run()["placed"] == 1
    calls = simulator.placed()
    assert len(simulator.calls()) == 3 and len(calls) == 2  # the first lead rung once, by its own call
    ours = next(c for c in calls if c["uuid"] != theirs["uuid"])
    kept = record(app, first["lead_id"]), record(app, second["lead_id"])
    assert [(r["state"], r["uuid"], r.get("uuid_certain")) for r in kept] == [
        ("placed", ours["uuid"], None),
        ("placed", theirs["uuid"], None),
    ]
    assert ours["payload"]["phonenumber"].endswith("00011")
    clock.advance(3600)
    assert Sweeper(app.runtime).run()["due"] == 0
    assert len(simulator.calls()) == 3


def test_a_list_that_is_down_then_back(tmp_path: Path, simulator: Simulator, clock: TestClock) -> None:
    app = make_app(tmp_path, simulator, clock)
    simulator.inject({"kind": "placed_then_reset"})
    body = post(app, "+56 9 6300 0007")
    simulator.set_list_down("http500_html")
    clock.advance(61)
    counts = Sweeper(app.runtime).run()
    assert (counts["due"], counts["scheduled"], counts["placed"]) == (1, 1, 0)
    waiting = record(app, body["lead_id"])
    assert (waiting["state"], waiting["uuid"]) == ("scheduled", None)
    assert waiting["attempt_since"] is not None and waiting["due_at"] > clock.now()
    assert len(simulator.calls()) == 1  # nothing new while the list cannot tell
    simulator.set_list_up()
    clock.advance(waiting["due_at"] - clock.now() + 1)
    assert Sweeper(app.runtime).run()["placed"] == 1
    (call,) = simulator.placed()
    kept = record(app, body["lead_id"])
    assert (kept["state"], kept["uuid"], kept["attempts"]) == ("placed", call["uuid"], 1)
    assert len(simulator.calls()) == 1


def test_retry_false_lost_answer_found_on_documented_rows(
    tmp_path: Path, simulator: Simulator, clock: TestClock
) -> None:
    app = make_app(tmp_path, simulator, clock, route_extra="retry = false")
    simulator.inject({"kind": "placed_then_reset"})
    raw = json.dumps({"phone": "+56 9 6300 0008"}).encode()
    stream = io.BytesIO(raw)
    answer = app.handle(Request("POST", "/", {"content-type": "application/json"}, b"",
                                lambda n, *_: read_stream(stream, n), len(raw)))  # fmt: skip
    assert answer.status == 503
    clock.advance(61)
    again = post(app, "+56 9 6300 0008")
    (call,) = simulator.placed()
    assert (again["duplicate"], again["uuid"]) == (True, call["uuid"])
    assert len(simulator.calls()) == 1


# -- the rule itself, on rows as documented --


def _row(uuid: str, at: float, customer: str = "") -> Row:
    return Row(uuid, at, POPUP, customer)


def test_the_rule_window_is_start_to_end_plus_a_minute() -> None:
    mine = LostAttempt("a", POPUP, 1000.4, 1005.0)
    assert settle.settle(mine, [_row("x", 999.0)], []) == Settled(None)
    assert settle.settle(mine, [_row("x", 1000.0)], []) == Settled("x")
    assert settle.settle(mine, [_row("x", 1065.0)], []) == Settled("x")
    assert settle.settle(mine, [_row("x", 1066.0)], []) == Settled(None)
    assert settle.settle(mine, [Row("x", 1001.0, "another-popup", "")], []) == Settled(None)


def test_the_rule_skips_a_uuid_another_lead_holds() -> None:
    mine = LostAttempt("a", POPUP, 1000.0, 1005.0)
    assert settle.settle(mine, [_row("x", 1001.0)], [Holder("b", "x", True)]) == Settled(None)
    assert settle.settle(mine, [_row("x", 1001.0), _row("y", 1002.0)], [Holder("b", "x", True)]) == Settled("y")


def test_the_rule_leaves_a_row_asked_for_by_another_attempt_alone() -> None:
    """A row inside another marked attempt's own request, and not inside ours, is that attempt's call;
    a row inside both requests cannot be told apart, and is shared."""
    mine = LostAttempt("a", POPUP, 1000.4, 1002.4)
    later = LostAttempt("b", POPUP, 1020.2, 1022.2)
    assert settle.settle(mine, [_row("x", 1020.0)], [], [later]) == Settled(None)
    assert settle.settle(later, [_row("x", 1020.0)], [], [mine]) == Settled("x")
    assert settle.settle(mine, [_row("x", 1030.0)], [], [later]) == Settled("x", certain=False)
    same_second = LostAttempt("b", POPUP, 1000.9, 1002.9)
    assert settle.settle(mine, [_row("x", 1001.0)], [], [same_second]) == Settled("x", certain=False)
    assert settle.settle(same_second, [_row("x", 1001.0)], [], [mine]) == Settled("x", certain=False)


def test_the_rule_lets_a_customer_number_decide() -> None:
    mine = LostAttempt("a", POPUP, 1000.0, 1005.0, digits="961234567")
    rows = [_row("x", 1001.0, "56961234560"), _row("y", 1001.0, "56961234567")]
    rivals = [LostAttempt("b", POPUP, 1000.0, 1005.0)]
    assert settle.settle(mine, rows, [], rivals) == Settled("y")
    assert settle.settle(mine, rows[:1], []) == Settled(None)


def test_rows_of_reads_documented_rows() -> None:
    rows = settle.rows_of([{"uuid": "ABC", "call_at": "2019/04/02 10:05:03 -0300", "popup_uuid": POPUP},
                           {"uuid": "x", "call_at": "yesterday"}, "junk"])  # fmt: skip
    assert rows == [Row("abc", 1554210303.0, POPUP, "")]
