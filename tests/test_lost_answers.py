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


def test_a_pass_reads_the_list_and_the_ledger_once_for_all_its_lost_answers(
    tmp_path: Path, simulator: Simulator, clock: TestClock
) -> None:
    """Eight leads lost on one popup, settled in one sweep pass: FormCall's list is read once per date the
    windows can fall on, and the ledger once, not once per lead; each lead still takes a row of its own."""
    app = make_app(tmp_path, simulator, clock)
    simulator.inject(*[{"kind": "placed_then_reset"}] * 8)
    bodies = [post(app, f"+56 9 6300 01{i:02d}") for i in range(8)]
    assert all(body["scheduled"] is True for body in bodies)
    clock.advance(61)
    scans = 0
    scan_leads = app.store.scan_leads

    def counted(**kwargs: Any) -> Any:
        nonlocal scans
        scans += 1
        return scan_leads(**kwargs)

    app.store.scan_leads = counted  # type: ignore[method-assign]
    simulator.reset_list_reads()
    assert Sweeper(app.runtime).run()["placed"] == 8
    assert scans == 1
    reads = simulator.list_reads()
    assert {r["count"] for r in reads} == {1}
    assert 1 <= len(reads) <= 3  # the platform's dates around the windows
    placed = {call["uuid"] for call in simulator.placed()}
    assert len(simulator.calls()) == 8 and len(placed) == 8  # none rung twice
    assert {record(app, body["lead_id"])["uuid"] for body in bodies} == placed


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


def test_a_call_never_placed_and_a_later_lost_call_in_its_window_cannot_be_told_apart(
    tmp_path: Path, simulator: Simulator, clock: TestClock
) -> None:
    """The soak's case on documented rows (issue 16): FormCall reset the first request without placing
    anything; 20 s later it placed the second lead's call and lost that answer too. That call is inside both
    leads' windows and neither lead holds it, so spec 8 cannot tell whose it is: both share it, uuid_certain
    false, and no one is rung twice, although FormCall rang only the second lead (the soak counts the first
    as never rung)."""
    app = make_app(tmp_path, simulator, clock)
    simulator.inject({"kind": "reset"}, {"kind": "placed_then_reset"})
    first = post(app, "+56 9 6300 0011")
    clock.advance(20)
    second = post(app, "+56 9 6300 0012")
    (call,) = simulator.placed()
    assert call["payload"]["phonenumber"].endswith("00012")
    clock.advance(41)  # the first is due, a minute on; the second's answer is lost and not yet settled
    assert Sweeper(app.runtime).run()["placed"] == 1
    clock.advance(20)
    assert Sweeper(app.runtime).run()["placed"] == 1
    kept = [record(app, body["lead_id"]) for body in (first, second)]
    assert [(r["state"], r["uuid"], r["uuid_certain"]) for r in kept] == [("placed", call["uuid"], False)] * 2
    clock.advance(3600)
    assert Sweeper(app.runtime).run()["due"] == 0
    assert len(simulator.calls()) == 2 and len(simulator.placed()) == 1


def test_no_settling_while_another_attempt_in_the_window_may_still_be_answered(
    tmp_path: Path, simulator: Simulator, clock: TestClock
) -> None:
    app = make_app(tmp_path, simulator, clock)
    simulator.inject({"kind": "placed_then_reset"}, {"kind": "reset"})
    first = post(app, "+56 9 6300 0009")
    clock.advance(59.5)  # the second attempt falls inside the first one's window (its end plus a minute)
    second = post(app, "+56 9 6300 0010")
    clock.advance(0.6)  # the first is due; the second is younger than settle_after
    Sweeper(app.runtime).run()
    waiting = record(app, first["lead_id"])
    assert (waiting["state"], waiting["uuid"]) == ("scheduled", None)
    assert waiting["due_at"] == pytest.approx(record(app, second["lead_id"])["attempt_since"] + 2 * TIMEOUT)
    assert len(simulator.calls()) == 2  # nothing new


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


# -- a recall whose answer is lost (spec 8 and 11) --

RECALL = 'outcome = { after = "1m", give_up = "1h" }\nrecall = { schedule = ["10m"], max_calls = 3 }'


def drain(app: App, clock: TestClock, passes: int = 40) -> None:
    """Sweep, the test's clock moved on to each next due time, until nothing is due."""
    sweeper = Sweeper(app.runtime)
    for _ in range(passes):
        dues = [r["due_at"] for r in app.store.scan_leads() if r.get("due_at") is not None]
        if not dues:
            return
        clock.advance(max(min(dues) - clock.now(), 0) + 0.05)
        sweeper.run()
    raise AssertionError("leads still due after every pass")


def recall_due(app: App, clock: TestClock, lead_id: str) -> dict[str, Any]:
    """Sweep the first call's outcome work until its recall is the next thing due; the record then."""
    sweeper = Sweeper(app.runtime)
    for _ in range(10):
        kept = record(app, lead_id)
        if (kept.get("outcome") or {}).get("recall"):
            return kept
        clock.advance(kept["due_at"] - clock.now() + 0.05)
        sweeper.run()
    raise AssertionError("no recall scheduled")


def lost_recall(
    tmp_path: Path, simulator: Simulator, clock: TestClock, phone: str, fault: str, *fates: str
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A lead placed, its recall due and then lost to `fault`, everything drained: its record and the
    calls FormCall placed."""
    app = make_app(tmp_path, simulator, clock, route_extra=RECALL)
    simulator.queue_fates(POPUP, *fates)
    body = post(app, phone)
    assert body["uuid"]
    recall_due(app, clock, body["lead_id"])
    simulator.inject({"kind": fault})
    drain(app, clock)
    return record(app, body["lead_id"]), simulator.placed()


def test_a_recall_whose_answer_is_lost_is_settled_as_its_call(
    tmp_path: Path, simulator: Simulator, clock: TestClock
) -> None:
    """The recall's call was placed and its answer lost: found in the list, it is the lead's second call
    (its outcome followed, the recalls going on from it), and the lead is not rung again for it."""
    kept, placed = lost_recall(
        tmp_path, simulator, clock, "+56 9 6300 0021", "placed_then_reset", "not_answered", "not_answered", "connected"
    )
    assert len(simulator.calls()) == 3 and len(placed) == 3  # first, the lost recall, one more recall
    assert [c["uuid"] for c in kept["calls"]] == [c["uuid"] for c in placed]
    assert [c["connected"] for c in kept["calls"]] == [False, False, True]
    assert (kept["state"], kept["uuid"], kept["due_at"]) == ("placed", placed[2]["uuid"], None)
    assert "uuid_certain" not in kept


def test_a_recall_whose_answer_is_lost_and_placed_nothing_is_made_again(
    tmp_path: Path, simulator: Simulator, clock: TestClock
) -> None:
    """The recall's request reached FormCall, which placed nothing: once the list is complete for its
    window and holds no call, the recall is made again, once."""
    kept, placed = lost_recall(tmp_path, simulator, clock, "+56 9 6300 0022", "reset", "not_answered", "connected")
    assert len(simulator.calls()) == 3 and len(placed) == 2  # the recall asked twice, placed once
    assert [c["uuid"] for c in kept["calls"]] == [c["uuid"] for c in placed]
    assert [c["connected"] for c in kept["calls"]] == [False, True]


def test_a_recall_whose_answer_is_lost_waits_for_a_list_that_is_down(
    tmp_path: Path, simulator: Simulator, clock: TestClock
) -> None:
    app = make_app(tmp_path, simulator, clock, route_extra=RECALL)
    simulator.queue_fates(POPUP, "not_answered", "connected")
    body = post(app, "+56 9 6300 0023")
    due = recall_due(app, clock, body["lead_id"])["due_at"]
    simulator.inject({"kind": "placed_then_reset"})
    clock.advance(due - clock.now() + 0.05)
    Sweeper(app.runtime).run()
    assert len(simulator.placed()) == 2
    simulator.set_list_down("http500_html")
    for _ in range(3):  # the list down: the mark stays, nothing asked, nothing stopped
        due = record(app, body["lead_id"])["due_at"]
        assert due is not None, "the recalls stopped"
        clock.advance(due - clock.now() + 0.05)
        Sweeper(app.runtime).run()
    waiting = record(app, body["lead_id"])
    assert waiting["outcome"]["since"] is not None and waiting["due_at"] is not None
    assert len(simulator.calls()) == 2 and len(waiting["calls"]) == 1
    simulator.set_list_up()
    drain(app, clock)
    kept = record(app, body["lead_id"])
    assert len(simulator.calls()) == 2
    assert [c["connected"] for c in kept["calls"]] == [False, True]


def test_a_lost_recall_and_a_lost_answer_in_its_window_ring_no_one_twice(
    tmp_path: Path, simulator: Simulator, clock: TestClock
) -> None:
    """A new lead's answer lost (nothing placed) and, a moment later on the same popup, a recall's answer
    lost (its call placed); the list is down when the recall would settle, so the new lead settles first.
    The recall not yet settled is in the new lead's window: the row is shared, uuid_certain false, and the
    recalled lead is not rung a second time for it."""
    app = make_app(tmp_path, simulator, clock, route_extra=RECALL)
    simulator.queue_fates(POPUP, "not_answered", "not_answered")
    recalled = post(app, "+56 9 6300 0024")
    due = recall_due(app, clock, recalled["lead_id"])["due_at"]
    clock.advance(due - clock.now() - 0.3)
    simulator.inject({"kind": "reset"}, {"kind": "placed_then_reset"})
    new = post(app, "+56 9 6300 0025")
    assert new["scheduled"] is True
    clock.advance(0.35)
    Sweeper(app.runtime).run()  # the recall: placed, its answer lost
    simulator.set_list_down("http500_html")
    clock.advance(record(app, recalled["lead_id"])["due_at"] - clock.now() + 0.05)
    Sweeper(app.runtime).run()
    assert record(app, recalled["lead_id"])["due_at"] > record(app, new["lead_id"])["due_at"]
    simulator.set_list_up()
    drain(app, clock)
    rung = [c["payload"]["phonenumber"] for c in simulator.placed()]
    assert rung == ["63000024", "63000024"]  # the first call and the recall, once each
    kept = [record(app, body["lead_id"]) for body in (recalled, new)]
    (recall_call,) = simulator.placed()[1:]
    assert [(r["uuid"], r["uuid_certain"]) for r in kept] == [(recall_call["uuid"], False)] * 2


def test_a_lost_recall_is_never_one_of_the_leads_earlier_calls(
    tmp_path: Path, simulator: Simulator, clock: TestClock
) -> None:
    """A row already one of the lead's calls is not its lost recall's call, even where its call_at falls in
    the recall's window (the platform's rows keep a call's time as it likes: only the uuid is sure)."""
    app = make_app(tmp_path, simulator, clock, route_extra=RECALL)
    simulator.queue_fates(POPUP, "not_answered", "connected")
    body = post(app, "+56 9 6300 0026")
    (first,) = simulator.placed()
    lead = records.Lead.from_json(record(app, body["lead_id"]))
    # A recall marked half a second before the first call's listed time, whose request placed nothing.
    assert lead.placed_at is not None
    since = lead.placed_at - 0.5
    marked = lead.outcome_step(records.CallWork(due=True, extra={"recall": True, "since": since}), clock.now())
    assert app.store.save_lead(marked.to_json(), lead.version)
    drain(app, clock)
    placed = simulator.placed()
    assert len(placed) == 2 and placed[0]["uuid"] == first["uuid"]
    kept = record(app, body["lead_id"])
    assert [c["uuid"] for c in kept["calls"]] == [c["uuid"] for c in placed]


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
