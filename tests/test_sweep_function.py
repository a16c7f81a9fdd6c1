"""The sweeper as it is deployed: `formcall_sweep` in a real functions-framework process, and memory://
sweeping itself inside the webhook's own process (spec 8)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import redis
import requests

from formcall_webhook.simulator import Simulator
from tests.fakes.redis_server import RedisServer
from tests.harness import FunctionProcess

POPUP = "e5c98214-d0f6-11e1-8c30-001d09ef4a24"
TOKEN = "sweep-fn-token-31"
SIMULATOR_TOKENS = (TOKEN,)


def config(tmp_path: Path) -> Path:
    path = tmp_path / "formcall.toml"
    path.write_text(
        f'[formcall]\ntimeout_seconds = 2\n[defaults.retry]\nschedule = ["1s"]\n'
        f'[routes.default]\npopup_uuid = "{POPUP}"\nrate_limit = false\n'
    )
    return path


def test_memory_store_sweeps_itself(tmp_path: Path, simulator: Simulator) -> None:
    env = {
        "FORMCALL_CONFIG": str(config(tmp_path)),
        "FORMCALL_API_URL": simulator.api_url,
        "FORMCALL_SECURITY_TOKEN": TOKEN,
        "FORMCALL_SWEEP_SECONDS": "1",
    }
    with FunctionProcess(env, tmp_path / "fn.log").start() as fn:
        simulator.inject({"kind": "http500_html"})
        answer = fn.post(json={"phone": "+56 9 6240 0001"}).json()
        assert answer["scheduled"] is True, answer
        placed = simulator.wait_for_calls(2, timeout=30)
        assert [c["outcome"] for c in placed][-1] == "placed"
        deadline = time.monotonic() + 30
        while True:  # the sweeper records the uuid just after FormCall answers it
            again = fn.post(json={"phone": "+56 9 6240 0001"}).json()
            if "uuid" in again or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert (again["duplicate"], again["lead_id"], again["uuid"]) == (True, answer["lead_id"], placed[-1]["uuid"])
        entries = fn.log_entries()
    swept = [e for e in entries if e.get("source") == "sweep" and e.get("outcome") == "placed"]
    assert len(swept) == 1 and swept[0]["lead_id"] == answer["lead_id"]
    assert len(simulator.placed()) == 1


def test_formcall_sweep_entry_point(tmp_path: Path, simulator: Simulator, redis_server: RedisServer) -> None:
    redis.Redis.from_url(redis_server.url).flushdb()
    env = {
        "FORMCALL_CONFIG": str(config(tmp_path)),
        "FORMCALL_API_URL": simulator.api_url,
        "FORMCALL_SECURITY_TOKEN": TOKEN,
        "FORMCALL_STORE_URL": redis_server.url,
    }
    with (
        FunctionProcess(env, tmp_path / "webhook.log").start() as webhook,
        FunctionProcess(env, tmp_path / "sweep.log", target="formcall_sweep").start() as sweeper,
    ):
        simulator.inject({"kind": "error", "code": 3})
        lead = webhook.post(json={"phone": "+56 9 6240 0002"}).json()
        assert lead["scheduled"] is True
        empty = requests.post(sweeper.url, timeout=30)
        assert (empty.status_code, empty.json()) == (200, {"due": 0, "placed": 0, "pending": 0, "scheduled": 0,
                                                           "failed": 0})  # fmt: skip
        # The lead is due a second after its attempt (schedule = ["1s"]): a pass finds it once it is.
        deadline = time.monotonic() + 30
        while (counts := requests.post(sweeper.url, timeout=30).json())["due"] == 0:
            assert time.monotonic() < deadline, "the lead never became due"
            time.sleep(0.2)
        assert counts == {"due": 1, "placed": 1, "pending": 0, "scheduled": 0, "failed": 0}
        assert len(simulator.placed()) == 1
        lines = [json.loads(x) for x in (tmp_path / "sweep.log").read_text().splitlines() if x.startswith("{")]
    summary = [e for e in lines if e.get("outcome") == "sweep"]
    assert summary[-1]["placed"] == 1


def test_formcall_sweep_store_down_is_503(tmp_path: Path, simulator: Simulator) -> None:
    from tests.harness import free_port

    env = {
        "FORMCALL_CONFIG": str(config(tmp_path)),
        "FORMCALL_API_URL": simulator.api_url,
        "FORMCALL_SECURITY_TOKEN": TOKEN,
        "FORMCALL_STORE_URL": f"redis://127.0.0.1:{free_port()}/0",
    }
    with FunctionProcess(env, tmp_path / "sweep.log", target="formcall_sweep").start() as sweeper:
        answer = requests.post(sweeper.url, timeout=30)
    assert (answer.status_code, answer.json()["error"]) == (503, "store_unavailable")


def test_an_in_process_app_starts_no_self_sweep(tmp_path: Path, simulator: Simulator) -> None:
    """Only main.py starts memory://'s self-sweep: a test that builds an App meets none it did not ask for."""
    import io
    import threading

    from formcall_webhook.app import App, Request, read_stream

    env = {"FORMCALL_CONFIG": str(config(tmp_path)), "FORMCALL_API_URL": simulator.api_url,
           "FORMCALL_SECURITY_TOKEN": TOKEN, "FORMCALL_SWEEP_SECONDS": "1"}  # fmt: skip
    app = App(env)
    raw = json.dumps({"phone": "+56 9 6240 0009"}).encode()
    stream = io.BytesIO(raw)
    answer = app.handle(Request("POST", "/", {"content-type": "application/json"}, b"",
                                lambda n, *_: read_stream(stream, n), len(raw)))  # fmt: skip
    assert answer.status == 200
    assert [t.name for t in threading.enumerate() if "self-sweep" in t.name] == []
