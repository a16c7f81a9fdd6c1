"""Spec 11, every lead talked to: weighted routing, the fallback popup, the pace per popup, and recalls of
unanswered leads, with each store, against the simulator on a clock the test controls."""

from __future__ import annotations

import io
import json
import time
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from formcall_webhook.app import App, Request, read_stream
from formcall_webhook.runtime import Runtime
from formcall_webhook.simulator import Simulator
from formcall_webhook.sweep import Sweeper
from tests.clock import TestClock, clock_of

SANTIAGO = ZoneInfo("America/Santiago")
TOKEN = "talk-token-11"
SIMULATOR_TOKENS = (TOKEN,)
POPUP_A = "e5c98214-d0f6-11e1-8c30-00000000000a"
POPUP_B = "e5c98214-d0f6-11e1-8c30-00000000000b"
POPUP_C = "e5c98214-d0f6-11e1-8c30-00000000000c"
FALLBACK = "e5c98214-d0f6-11e1-8c30-0000000000ff"


def next_minute() -> float:
    """A whole minute a little ahead of now: the simulator's clock only moves on."""
    return float((int(time.time()) // 60 + 2) * 60)


def next_monday_10() -> float:
    """The next Monday at 10:00 in Santiago (within "mon-fri 09:00-18:00"), a day ahead at least."""
    day = datetime.now(SANTIAGO).date() + timedelta(days=1)
    while day.weekday() != 0:
        day += timedelta(days=1)
    return datetime(day.year, day.month, day.day, 10, 0, tzinfo=SANTIAGO).timestamp()


@pytest.fixture(params=["memory", "sqlite", "redis", "firestore"])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty store of each kind, as FORMCALL_STORE_URL names it."""
    if request.param == "memory":
        return "memory://"
    if request.param == "sqlite":
        return f"sqlite://{tmp_path / 'leads.db'}"
    if request.param == "redis":
        import redis

        server = request.getfixturevalue("redis_server")
        redis.Redis.from_url(server.url).flushdb()
        return str(server.url)
    emulator = request.getfixturevalue("firestore_emulator")
    emulator.clear()
    return str(emulator.store_url)


def make_app(tmp_path: Path, simulator: Simulator, store: str, route: str, *, at: float | None = None) -> App:
    path = tmp_path / "f.toml"
    path.write_text(f"[formcall]\ntimeout_seconds = 2\n[routes.default]\nrate_limit = false\n{route}\n")
    environ = {
        "FORMCALL_CONFIG": str(path),
        "FORMCALL_API_URL": simulator.api_url,
        "FORMCALL_SECURITY_TOKEN": TOKEN,
        "FORMCALL_STORE_URL": store,
    }
    clock = TestClock(simulator)
    if at is not None:
        clock.advance_to(at)  # the simulator's clock moves with it
    return App(runtime=Runtime(environ, clock=clock.now))


def post(app: App, body: dict[str, Any]) -> dict[str, Any]:
    raw = json.dumps(body).encode()
    stream = io.BytesIO(raw)
    req = Request(
        "POST", "/", {"content-type": "application/json"}, b"", lambda n, *_: read_stream(stream, n), len(raw)
    )
    response = app.handle(req)
    assert response.status == 200, response.body
    answer: dict[str, Any] = json.loads(response.body)
    return answer


def phone(i: int) -> str:
    return f"+56 9 6{i // 10000 % 10}{i // 1000 % 10}{i // 100 % 10} {i % 100:02d}11"


# ------------------------------------------------------------------------------------------------ routing


WEIGHTED_ROUTE = (
    f'popup_uuid = [{{ uuid = "{POPUP_A}", weight = 2 }}, {{ uuid = "{POPUP_B}", weight = 1 }}, '
    f'{{ uuid = "{POPUP_C}", weight = 1 }}]'
)


def test_weighted_routing_2_1_1_within_5_points_in_every_window_of_100(tmp_path: Path, simulator: Simulator) -> None:
    """The picks are the instance's own (formcall_webhook/routing.py keeps no state in the store): 1,000 leads
    through memory:// show the shares; the next test shows each store keeps the popup a lead was sent to."""
    app = make_app(tmp_path, simulator, "memory://", WEIGHTED_ROUTE)
    answers = [post(app, {"phone": phone(i)}) for i in range(1000)]
    placed = simulator.placed()
    assert len(placed) == 1000 and all(a.get("uuid") for a in answers)
    popups = [c["payload"]["popup_uuid"] for c in placed]
    want = {POPUP_A: 0.5, POPUP_B: 0.25, POPUP_C: 0.25}
    worst = 0.0
    for start in range(0, 901):
        window = Counter(popups[start : start + 100])
        for popup, share in want.items():
            worst = max(worst, abs(window[popup] / 100 - share))
    assert worst <= 0.05, worst


def test_a_weighted_routes_record_names_the_popup_its_lead_was_sent_to(
    tmp_path: Path, simulator: Simulator, any_store: str
) -> None:
    app = make_app(tmp_path, simulator, any_store, WEIGHTED_ROUTE)
    answers = [post(app, {"phone": phone(i)}) for i in range(20)]
    placed = simulator.placed()
    assert len(placed) == 20 and all(a.get("uuid") for a in answers)
    # 2:1:1 in every four picks, never a coin toss's runs.
    assert Counter(c["payload"]["popup_uuid"] for c in placed) == {POPUP_A: 10, POPUP_B: 5, POPUP_C: 5}
    for answer, call in zip(answers, placed, strict=True):
        record = app.store.get_lead(answer["lead_id"])
        assert record is not None and record["popup_uuid"] == call["payload"]["popup_uuid"]
        assert answer["uuid"] == call["uuid"]


# ----------------------------------------------------------------------------------------------- fallback


def test_error_4_on_the_primary_is_one_call_on_the_fallback(
    tmp_path: Path, simulator: Simulator, any_store: str
) -> None:
    simulator.set_popup(POPUP_A, exists=False)
    app = make_app(tmp_path, simulator, any_store, f'popup_uuid = "{POPUP_A}"\nfallback_popup = "{FALLBACK}"')
    answer = post(app, {"phone": phone(7)})
    assert answer.get("uuid")
    calls = simulator.calls()
    assert [(c["payload"]["popup_uuid"], c["outcome"]) for c in calls] == [(POPUP_A, "error"), (FALLBACK, "placed")]
    assert answer["uuid"] == calls[1]["uuid"]
    record = app.store.get_lead(answer["lead_id"])
    assert record is not None
    assert record["attempts_log"][0]["popup_uuid"] == POPUP_A
    assert record["attempts_log"][0]["formcall_error_code"] == 4
    assert record["calls"][0]["uuid"] == answer["uuid"] and record["calls"][0]["popup_uuid"] == FALLBACK


def test_error_2_without_pending_goes_to_the_fallback_once(tmp_path: Path, simulator: Simulator) -> None:
    simulator.set_popup(POPUP_A, in_service_hours=False)
    simulator.set_popup(FALLBACK, exists=False)
    app = make_app(tmp_path, simulator, "memory://", f'popup_uuid = "{POPUP_A}"\nfallback_popup = "{FALLBACK}"')
    raw = json.dumps({"phone": phone(8)}).encode()
    stream = io.BytesIO(raw)
    req = Request(
        "POST", "/", {"content-type": "application/json"}, b"", lambda n, *_: read_stream(stream, n), len(raw)
    )
    app.handle(req)
    # Offered once to the fallback, never bounced back and forth.
    assert [c["payload"]["popup_uuid"] for c in simulator.calls()] == [POPUP_A, FALLBACK]


# --------------------------------------------------------------------------------------------------- pace


def drain(app: App, passes: int = 40) -> None:
    """Sweep, the test's clock moved on to each next due time, until nothing is due."""
    sweeper = Sweeper(app.runtime)
    clock = clock_of(app)
    for _ in range(passes):
        dues = [r["due_at"] for r in app.store.scan_leads() if r.get("due_at") is not None]
        if not dues:
            return
        clock.advance_to(max(min(dues), clock.now()) + 0.05)
        sweeper.run()
    raise AssertionError("leads still due after every pass")


def test_pace_6_a_minute_spreads_a_burst_of_60_over_ten_minutes(
    tmp_path: Path, simulator: Simulator, any_store: str
) -> None:
    start = next_minute()
    app = make_app(tmp_path, simulator, any_store, f'popup_uuid = "{POPUP_A}"\npace = "6/minute"', at=start)
    answers = [post(app, {"phone": phone(i)}) for i in range(60)]
    assert sum(1 for a in answers if a.get("uuid")) == 6
    assert sum(1 for a in answers if a.get("scheduled")) == 54
    # Arrival order: the later a lead came, the later its slot.
    dues = [app.store.get_lead(a["lead_id"])["due_at"] for a in answers[6:]]  # type: ignore[index]
    assert dues == sorted(dues) and dues[0] == start + 60 and dues[-1] == start + 9 * 60
    drain(app)
    placed = simulator.placed()
    numbers = [c["payload"]["phonenumber"] for c in placed]
    assert len(placed) == 60 and len(set(numbers)) == 60  # every lead called, none twice
    records = [app.store.get_lead(a["lead_id"]) for a in answers]
    per_minute = Counter(int((r["placed_at"] - start) // 60) for r in records if r is not None)
    assert sorted(per_minute) == list(range(10)) and max(per_minute.values()) <= 6, per_minute
    print("pace timeline (calls per minute):", [per_minute[m] for m in range(10)])


# ------------------------------------------------------------------------------------------------- recall

RECALL_ROUTE = (
    f'popup_uuid = "{POPUP_A}"\n'
    'outcome = { after = "1m", give_up = "1h" }\n'
    'retry = { schedule = ["1m"], service_hours = "mon-fri 09:00-18:00", timezone = "America/Santiago" }\n'
)


def recall_app(tmp_path: Path, simulator: Simulator, store: str, recall: str, at: float) -> App:
    return make_app(tmp_path, simulator, store, RECALL_ROUTE + f"recall = {recall}", at=at)


def calls_of(app: App, lead_id: str) -> list[dict[str, Any]]:
    record = app.store.get_lead(lead_id)
    assert record is not None
    calls: list[dict[str, Any]] = record.get("calls") or []
    return calls


def test_not_answered_then_connected_is_two_calls_then_none(
    tmp_path: Path, simulator: Simulator, any_store: str
) -> None:
    app = recall_app(tmp_path, simulator, any_store, '{ schedule = ["10m"], max_calls = 5 }', next_monday_10())
    simulator.queue_fates(POPUP_A, "not_answered", "connected", "not_answered", "not_answered")
    answer = post(app, {"phone": phone(21)})
    drain(app)
    calls = calls_of(app, answer["lead_id"])
    assert len(simulator.placed()) == 2
    assert [c["connected"] for c in calls] == [False, True]
    assert calls[0]["uuid"] == answer["uuid"] and calls[1]["uuid"] != calls[0]["uuid"]
    assert {c["popup_uuid"] for c in calls} == {POPUP_A}
    record = app.store.get_lead(answer["lead_id"])
    assert record is not None and record["state"] == "placed" and record["outcome"]["connected"] is True


def test_never_answered_stops_at_max_calls(tmp_path: Path, simulator: Simulator, any_store: str) -> None:
    app = recall_app(tmp_path, simulator, any_store, '{ schedule = ["10m", "1h"], max_calls = 3 }', next_monday_10())
    simulator.queue_fates(POPUP_A, *["not_answered"] * 6)
    answer = post(app, {"phone": phone(22)})
    drain(app)
    calls = calls_of(app, answer["lead_id"])
    assert len(simulator.placed()) == 3 and len(calls) == 3
    assert all(c["connected"] is False for c in calls) and len({c["uuid"] for c in calls}) == 3
    record = app.store.get_lead(answer["lead_id"])
    # All unanswered: placed, not connected, not failed.
    assert record is not None and record["state"] == "placed" and record["outcome"]["connected"] is False
    assert record["due_at"] is None


def test_a_connected_first_call_is_the_only_call(tmp_path: Path, simulator: Simulator, any_store: str) -> None:
    app = recall_app(tmp_path, simulator, any_store, '{ schedule = ["10m"], max_calls = 3 }', next_monday_10())
    simulator.queue_fates(POPUP_A, "connected", "not_answered")
    answer = post(app, {"phone": phone(23)})
    drain(app)
    assert len(simulator.placed()) == 1
    assert [c["connected"] for c in calls_of(app, answer["lead_id"])] == [True]


def test_a_recall_due_after_hours_waits_for_the_opening(tmp_path: Path, simulator: Simulator, any_store: str) -> None:
    monday_1750 = next_monday_10() + 7 * 3600 + 50 * 60
    app = recall_app(tmp_path, simulator, any_store, '{ schedule = ["30m"], max_calls = 2 }', monday_1750)
    simulator.queue_fates(POPUP_A, "not_answered", "connected")
    answer = post(app, {"phone": phone(24)})
    drain(app)
    record = app.store.get_lead(answer["lead_id"])
    assert record is not None and len(record["calls"]) == 2
    tuesday_9 = next_monday_10() + 23 * 3600
    assert tuesday_9 <= record["placed_at"] < tuesday_9 + 120


def test_an_opt_out_between_two_calls_stops_the_recalls(tmp_path: Path, simulator: Simulator, any_store: str) -> None:
    app = recall_app(tmp_path, simulator, any_store, '{ schedule = ["10m"], max_calls = 3 }', next_monday_10())
    simulator.queue_fates(POPUP_A, "not_answered", "not_answered", "not_answered")
    answer = post(app, {"phone": phone(25)})
    sweeper = Sweeper(app.runtime)
    clock = clock_of(app)
    for _ in range(10):  # until the recall is scheduled
        record = app.store.get_lead(answer["lead_id"])
        assert record is not None and record["due_at"] is not None
        if (record.get("outcome") or {}).get("recall"):
            break
        clock.advance_to(record["due_at"] + 0.05)
        sweeper.run()
    app.store.set_optout(app.runtime.attempter.phone_hash("+56960002511"), True)
    drain(app)
    assert len(simulator.placed()) == 1 and len(calls_of(app, answer["lead_id"])) == 1
