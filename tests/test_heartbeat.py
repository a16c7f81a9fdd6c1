"""Spec 8's heartbeat: every sweep writes its time and counts to the store; when the request path keeps
a lead for later and the last sweep is older than 5 minutes (shared stores only), WARNING sweeper_stale,
once per interval, not on every request. On the test's clock, with each store."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from formcall_webhook.app import App, Request, read_stream
from formcall_webhook.runtime import Runtime
from formcall_webhook.simulator import Simulator
from formcall_webhook.sweep import Sweeper
from tests.clock import TestClock, clock_of

POPUP = "e5c98214-d0f6-11e1-8c30-001d09ef4a24"
TOKEN = "beat-token-9d0"
SIMULATOR_TOKENS = (TOKEN,)


# The stores' own heartbeat contract is in test_ledger.py; here, the sweep and the request path.


def make_app(tmp_path: Path, simulator: Simulator, url: str) -> App:
    path = tmp_path / "f.toml"
    path.write_text(
        '[formcall]\ntimeout_seconds = 2\n[defaults.retry]\nschedule = ["1h"]\nmax_age = "24h"\n'
        f"[routes.default]\npopup_uuid = '{POPUP}'\nrate_limit = false\n"
    )
    environ = {"FORMCALL_CONFIG": str(path), "FORMCALL_API_URL": simulator.api_url,
               "FORMCALL_SECURITY_TOKEN": TOKEN, "FORMCALL_STORE_URL": url}  # fmt: skip
    return App(runtime=Runtime(environ, clock=TestClock(simulator).now))


def kept(app: App, phone: str, simulator: Simulator) -> None:
    """A lead FormCall refuses for now (error 3): kept for later, answered 200 scheduled."""
    simulator.inject({"kind": "error", "code": 3})
    raw = json.dumps({"phone": phone}).encode()
    stream = io.BytesIO(raw)
    req = Request(
        "POST", "/", {"content-type": "application/json"}, b"", lambda n, *_: read_stream(stream, n), len(raw)
    )
    answer = app.handle(req)
    assert (answer.status, json.loads(answer.body).get("scheduled")) == (200, True)


def stale_lines(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith("{")]
    return [e for e in lines if e.get("outcome") == "sweeper_stale"]


def test_a_sweep_writes_its_time_and_counts(tmp_path: Path, simulator: Simulator, store_url: str) -> None:
    app = make_app(tmp_path, simulator, store_url)
    kept(app, "+56 9 6500 0001", simulator)
    clock_of(app).advance(3601)
    counts = Sweeper(app.runtime).run()
    beat = app.store.read_heartbeat()
    assert beat is not None
    assert dict(beat.counts) == counts == {"due": 1, "placed": 1, "pending": 0, "scheduled": 0, "failed": 0}
    assert abs(beat.at - clock_of(app).now()) < 5


@pytest.mark.parametrize("store_url", ["redis", "firestore"], indirect=True)
def test_a_stale_sweeper_is_warned_once_per_interval(
    tmp_path: Path, simulator: Simulator, store_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    app = make_app(tmp_path, simulator, store_url)
    clock = clock_of(app)
    kept(app, "+56 9 6500 0002", simulator)
    (first,) = stale_lines(capsys)
    assert (first["severity"], first["reason"]) == ("WARNING", "no sweep yet")
    kept(app, "+56 9 6500 0003", simulator)
    assert stale_lines(capsys) == []  # not on every request
    clock.advance(2)
    Sweeper(app.runtime).run()
    clock.advance(299)  # the interval is over; the last sweep is 299 s old: fresh enough
    kept(app, "+56 9 6500 0004", simulator)
    assert stale_lines(capsys) == []
    clock.advance(400)  # 699 s since the last sweep
    kept(app, "+56 9 6500 0005", simulator)
    (late,) = stale_lines(capsys)
    assert late["reason"].startswith("the last sweep was 69")


def test_memory_never_warns(tmp_path: Path, simulator: Simulator, capsys: pytest.CaptureFixture[str]) -> None:
    app = make_app(tmp_path, simulator, "memory://")
    kept(app, "+56 9 6500 0006", simulator)
    assert stale_lines(capsys) == []
