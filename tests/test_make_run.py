"""`make run` and the `leads` command (spec 7 and 8): what `make run` keeps, a second shell with no other
setting lists, shows, counts and retries; and the commands that call FormCall refuse before harm.

The function runs as `make run` runs it: a real functions-framework process with `.env.example`'s values
(its FORMCALL_API_URL pointed at this test's simulator, as `make run` points it at SIM_PORT), in a
directory of its own, so its store is that directory's `.formcall/leads.db`. The commands run in that
directory with nothing but PATH (and PYTHONPATH, as a checkout would give them).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from formcall_webhook.cli.context import NO_POPUP, CliError, Context, make_run_settings
from formcall_webhook.config import DEFAULT_API_URL
from formcall_webhook.simulator import Simulator
from tests.harness import ROOT, FunctionProcess, coverage_env, free_port

SIMULATOR_TOKENS = ("dev-token",)
POPUP = "e5c98214-d0f6-11e1-8c30-001d09ef4a24"  # .env.example's token, the one the simulator takes


def env_example(api_url: str) -> tuple[str, dict[str, str]]:
    """.env.example as `make run` reads it (KEY=VALUE lines), FORMCALL_API_URL following the simulator."""
    text = (ROOT / ".env.example").read_text(encoding="utf-8")
    text = text.replace("FORMCALL_API_URL=http://127.0.0.1:8081/calls/manage/api", f"FORMCALL_API_URL={api_url}")
    values = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key and not key.startswith("#"):
            values[key] = value
    return text, values


@pytest.fixture
def workdir(tmp_path: Path, simulator: Simulator) -> Path:
    text, _ = env_example(simulator.api_url)
    (tmp_path / ".env.example").write_text(text, encoding="utf-8")
    return tmp_path


def shell(workdir: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """A second shell: the command in make run's directory, with no setting of its own."""
    done = subprocess.run(
        [sys.executable, "-m", "formcall_webhook", *args],
        cwd=workdir,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), **coverage_env(), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "Traceback" not in done.stderr, done.stderr
    return done


def test_a_second_shell_lists_and_retries_what_make_run_keeps(workdir: Path, simulator: Simulator) -> None:
    _, values = env_example(simulator.api_url)
    assert values["FORMCALL_STORE_URL"] == "sqlite://.formcall/leads.db"
    # Sweeps every second, logged at DEBUG here so the test sees that idle ones are DEBUG (not INFO).
    values.update(FORMCALL_SWEEP_SECONDS="1", FORMCALL_LOG_LEVEL="DEBUG")
    with FunctionProcess(values, workdir / "function.log", cwd=workdir).start() as function:
        placed = function.post(json={"telefono": "+56 9 6123 4567", "nombre": "Ana", "utm_source": "google",
                                     "utm_campaign": "verano"}).json()  # fmt: skip
        simulator.inject({"kind": "error", "code": 3})  # FormCall unavailable: the lead is kept for later
        kept = function.post(json={"telefono": "+56 9 6234 5678", "nombre": "Beto"}).json()
        assert placed.get("uuid") and kept.get("scheduled") is True, (placed, kept)
        assert (workdir / ".formcall" / "leads.db").is_file()

        done = shell(workdir, "leads", "list", "--json")
        assert done.returncode == 0, done.stderr
        shown = [json.loads(line) for line in done.stdout.splitlines()]
        assert [(s["lead_id"], s["state"], s["phone"]) for s in shown] == [
            (placed["lead_id"], "placed", "+56*****567"), (kept["lead_id"], "scheduled", "+56*****678")]  # fmt: skip
        assert "make run's store sqlite://.formcall/leads.db" in done.stderr

        retried = shell(workdir, "leads", "retry", kept["lead_id"])
        assert retried.returncode == 0, retried.stderr
        assert retried.stdout.startswith(f"{kept['lead_id']}: placed, uuid ")
        assert [c["payload"]["phonenumber"] for c in simulator.placed()] == ["61234567", "62345678"]

        (by_campaign,) = [json.loads(line) for line in shell(workdir, "leads", "stats", "--by", "utm_campaign",
                                                             "--json", "--since", "1h").stdout.splitlines()
                          if '"verano"' in line]  # fmt: skip
        assert (by_campaign["leads"], by_campaign["placed"], by_campaign["connected"]) == (1, 1, None)
        report = shell(workdir, "leads", "report", "--html", "informe.html")
        assert report.returncode == 0, report.stderr
        page = (workdir / "informe.html").read_text(encoding="utf-8")
        assert "Leads y llamadas" in page and "verano" in page and "567" not in page

        deadline = time.monotonic() + 30
        while not (idle := [e for e in function.log_entries() if e.get("message") == "sweep: 0 due"]):
            assert time.monotonic() < deadline, "the function never swept itself"
            time.sleep(0.2)
    assert {e["severity"] for e in idle} == {"DEBUG"}


def test_without_make_runs_store_the_default_is_memory_and_no_popup_is_asked(tmp_path: Path) -> None:
    done = shell(tmp_path, "leads", "list")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[:2] == ["lead_id", "received_at"]
    assert done.stderr.startswith("warning: the store is memory://")
    assert "popup_uuid" not in done.stderr
    # A store URL of one's own is never replaced, even beside make run's.
    (tmp_path / ".formcall").mkdir()
    (tmp_path / ".formcall" / "leads.db").write_bytes(b"")
    assert make_run_settings({"FORMCALL_STORE_URL": "redis://127.0.0.1:1/0"}, tmp_path) == {}
    assert make_run_settings({}, tmp_path) == {"FORMCALL_STORE_URL": "sqlite://.formcall/leads.db"}


def test_retry_without_a_token_refuses_and_changes_nothing(workdir: Path, simulator: Simulator) -> None:
    _, values = env_example(simulator.api_url)
    simulator.inject({"kind": "error", "code": 3})
    with FunctionProcess(values, workdir / "function.log", cwd=workdir).start() as function:
        kept = function.post(json={"telefono": "+56 9 6234 5678"}).json()
    assert kept.get("scheduled") is True, kept
    before = json.loads(shell(workdir, "leads", "show", kept["lead_id"], "--json").stdout)

    done = shell(workdir, "leads", "retry", kept["lead_id"], FORMCALL_SECURITY_TOKEN="")
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr.splitlines()[-1].startswith("error: refused: no FormCall token")
    done = shell(workdir, "sweep", FORMCALL_SECURITY_TOKEN="")
    assert done.returncode == 1 and "no FormCall token" in done.stderr

    # No FormCall named at all: production is refused, before anything is done.
    done = shell(workdir, "leads", "retry", kept["lead_id"], FORMCALL_API_URL="")
    assert done.returncode == 1
    assert f"refused: this would call production FormCall ({DEFAULT_API_URL})" in done.stderr
    assert "--production" in done.stderr
    after = json.loads(shell(workdir, "leads", "show", kept["lead_id"], "--json").stdout)
    assert after == before
    assert simulator.placed() == []


def test_production_only_when_named_or_asked(tmp_path: Path) -> None:
    base = {"FORMCALL_SECURITY_TOKEN": "t0ken", "FORMCALL_STORE_URL": "memory://"}
    with pytest.raises(CliError, match="production FormCall"):
        Context(base).may_call_formcall(production=False)
    Context(base).may_call_formcall(production=True)
    named = tmp_path / "formcall.toml"
    named.write_text(f'[formcall]\napi_url = "{DEFAULT_API_URL}"\n', encoding="utf-8")
    Context({**base, "FORMCALL_CONFIG": str(named)}).may_call_formcall(production=False)
    Context({**base, "FORMCALL_API_URL": DEFAULT_API_URL}).may_call_formcall(production=False)
    with pytest.raises(CliError, match="no FormCall token"):
        Context({"FORMCALL_API_URL": "http://127.0.0.1:9/x", "FORMCALL_STORE_URL": "memory://"}).may_call_formcall(
            production=False
        )
    # No popup configured: the commands read records, which carry their own, so none is asked for.
    assert Context({"FORMCALL_STORE_URL": "memory://"}).environ["FORMCALL_POPUP_UUID"] == NO_POPUP
    assert Context({"FORMCALL_POPUP_UUID": POPUP}).environ["FORMCALL_POPUP_UUID"] == POPUP


def test_make_run_with_a_broken_config_stops_before_starting_anything(tmp_path: Path) -> None:
    """Spec 7 / issue 20: `make run` runs `check` first; a broken config stops it with check's message and a
    hint, before the simulator or the function starts (both ports stay free)."""
    make = shutil.which("make")
    assert make is not None, "make is needed to run make run"
    bad = tmp_path / "formcall.toml"
    bad.write_text('[routes.default]\npopup_uuid = "not-a-uuid"\nphonne = "tel"\n', encoding="utf-8")
    port, sim_port = free_port(), free_port()
    env = {**os.environ, **coverage_env(), "FORMCALL_CONFIG": str(bad)}
    # STAMP= : the test's own virtualenv is already installed; BIN is the one running this test.
    args = [make, "-s", "run", "STAMP=", f"BIN={Path(sys.executable).parent}", f"PORT={port}", f"SIM_PORT={sim_port}"]
    proc = subprocess.Popen(
        args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        out, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.communicate(timeout=30)
        raise AssertionError("make run started with a broken config") from None
    assert proc.returncode != 0
    assert f"error: {bad}: routes.default.popup_uuid" in err, err
    assert "did you mean" in err, err
    assert f"make run: {bad} has the errors above; fix each key named" in err, err
    assert "Place a simulated call" not in out and "listening on" not in out
    for p in (port, sim_port):
        with socket.socket() as sock:
            assert sock.connect_ex(("127.0.0.1", p)) != 0, f"something listens on {p}"
