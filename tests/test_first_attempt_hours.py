"""Service hours hold for the first attempt too (spec 8): a lead received out of hours or on a holiday
is answered 200 scheduled, due at the next opening, and FormCall hears nothing before then. The clock
is the test's: it is set to the instants that matter, never waited for."""

from __future__ import annotations

import io
import json
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from formcall_webhook.app import App, Request, read_stream
from formcall_webhook.runtime import Runtime
from formcall_webhook.simulator import Simulator
from formcall_webhook.sweep import Sweeper
from tests.clock import TestClock

POPUP = "e5c98214-d0f6-11e1-8c30-001d09ef4a24"
TOKEN = "hours-token-3f1"
SIMULATOR_TOKENS = (TOKEN,)
SANTIAGO = ZoneInfo("America/Santiago")


def make_app(tmp_path: Path, simulator: Simulator, clock: TestClock) -> App:
    path = tmp_path / "f.toml"
    path.write_text(
        '[defaults.retry]\nservice_hours = "mon-fri 09:00-19:00"\ntimezone = "America/Santiago"\nholidays = "CL"\n'
        f"[routes.default]\npopup_uuid = '{POPUP}'\nrate_limit = false\n"
    )
    environ = {"FORMCALL_CONFIG": str(path), "FORMCALL_API_URL": simulator.api_url,
               "FORMCALL_SECURITY_TOKEN": TOKEN, "FORMCALL_STORE_URL": "memory://"}  # fmt: skip
    return App(runtime=Runtime(environ, clock=clock.now))


def post(app: App, phone: str) -> tuple[int, dict[str, Any]]:
    raw = json.dumps({"phone": phone}).encode()
    stream = io.BytesIO(raw)
    req = Request(
        "POST", "/", {"content-type": "application/json"}, b"", lambda n, *_: read_stream(stream, n), len(raw)
    )
    response = app.handle(req)
    return response.status, json.loads(response.body)


@pytest.mark.parametrize(
    ("received", "opening"),
    [
        # Saturday 03:00: Monday at nine.
        (datetime(2026, 12, 12, 3, 0, tzinfo=SANTIAGO), datetime(2026, 12, 14, 9, 0, tzinfo=SANTIAGO)),
        # Tuesday 8 December (Inmaculada Concepción, a holiday in Chile) at 10:00: Wednesday at nine.
        (datetime(2026, 12, 8, 10, 0, tzinfo=SANTIAGO), datetime(2026, 12, 9, 9, 0, tzinfo=SANTIAGO)),
        # Friday 19:30: Monday at nine.
        (datetime(2026, 12, 11, 19, 30, tzinfo=SANTIAGO), datetime(2026, 12, 14, 9, 0, tzinfo=SANTIAGO)),
    ],
    ids=["saturday-night", "holiday", "friday-evening"],
)
def test_a_lead_out_of_hours_waits_for_the_opening(
    tmp_path: Path, simulator: Simulator, received: datetime, opening: datetime
) -> None:
    clock = TestClock(at=received.timestamp())
    app = make_app(tmp_path, simulator, clock)
    status, body = post(app, "+56 9 6400 0001")
    assert (status, body["scheduled"]) == (200, True), body
    record = app.store.get_lead(body["lead_id"])
    assert record is not None
    assert (record["state"], record["attempts"], record["attempt_since"]) == ("scheduled", 0, None)
    assert record["due_at"] == opening.timestamp()
    # A resend meanwhile is the same lead.
    status, again = post(app, "+56 9 6400 0001")
    assert (status, again.get("duplicate"), again["lead_id"]) == (200, True, body["lead_id"])
    # A minute before the opening, the sweep has nothing to do and FormCall has heard nothing.
    clock.advance_to(opening.timestamp() - 60)
    assert Sweeper(app.runtime).run()["due"] == 0
    assert simulator.calls() == []
    clock.advance_to(opening.timestamp())
    assert Sweeper(app.runtime).run()["placed"] == 1
    (call,) = simulator.calls()
    placed = app.store.get_lead(body["lead_id"])
    assert placed is not None and (placed["state"], placed["uuid"], placed["attempts"]) == ("placed", call["uuid"], 1)


def test_a_lead_in_hours_is_called_at_once(tmp_path: Path, simulator: Simulator) -> None:
    clock = TestClock(at=datetime(2026, 12, 10, 11, 0, tzinfo=SANTIAGO).timestamp())  # a Thursday morning
    app = make_app(tmp_path, simulator, clock)
    status, body = post(app, "+56 9 6400 0002")
    assert (status, body.get("uuid")) == (200, simulator.calls()[0]["uuid"])
