"""Spec 11, every lead talked to: weighted routing, the fallback popup, the pace per popup, and recalls of
unanswered leads, with each store, against the simulator on a clock the test controls."""

from __future__ import annotations

import io
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from formcall_webhook.app import App, Request, read_stream
from formcall_webhook.runtime import Runtime
from formcall_webhook.simulator import Simulator
from formcall_webhook.sweep import Sweeper
from tests.clock import TestClock, clock_of

TOKEN = "talk-token-11"
SIMULATOR_TOKENS = (TOKEN,)
POPUP_A = "e5c98214-d0f6-11e1-8c30-00000000000a"
POPUP_B = "e5c98214-d0f6-11e1-8c30-00000000000b"
POPUP_C = "e5c98214-d0f6-11e1-8c30-00000000000c"
FALLBACK = "e5c98214-d0f6-11e1-8c30-0000000000ff"
# A Monday, 10:00 in Santiago (UTC-3 in December): within "mon-fri 09:00-18:00".
MONDAY_10 = 1796475600.0


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
    clock = TestClock(simulator, at=at)
    if at is not None:
        simulator.advance_clock(at - simulator_now(simulator))
    return App(runtime=Runtime(environ, clock=clock.now))


def simulator_now(simulator: Simulator) -> float:
    now: float = simulator._state.now()  # type: ignore[attr-defined]
    return now


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


def test_weighted_routing_2_1_1_within_5_points_in_every_window_of_100(
    tmp_path: Path, simulator: Simulator, any_store: str
) -> None:
    route = (
        f'popup_uuid = [{{ uuid = "{POPUP_A}", weight = 2 }}, {{ uuid = "{POPUP_B}", weight = 1 }}, '
        f'{{ uuid = "{POPUP_C}", weight = 1 }}]'
    )
    app = make_app(tmp_path, simulator, any_store, route)
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
    # The record names the lead's popup.
    for answer, call in zip(answers[:20], placed[:20], strict=True):
        record = app.store.get_lead(answer["lead_id"])
        assert record is not None and record["popup_uuid"] == call["payload"]["popup_uuid"]


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
