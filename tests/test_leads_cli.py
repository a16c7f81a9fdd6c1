"""`python -m formcall_webhook leads ...` and `sweep`, run as an operator would (spec 8, 9 and 10).

The commands run as subprocesses against a real store; the leads they read come from the real pipeline
(App in-process, same store URL, the FormCall simulator) or, for stats, from records saved directly.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from formcall_webhook import records
from formcall_webhook.app import App, Request, read_stream
from formcall_webhook.consent import optout_hash
from formcall_webhook.runtime import Runtime
from formcall_webhook.simulator import Simulator
from formcall_webhook.stores import Backend
from tests.clock import TestClock
from tests.fakes.firestore_emulator import FirestoreEmulator
from tests.fakes.redis_server import RedisServer
from tests.harness import ROOT, coverage_env, free_port

POPUP = "e5c98214-d0f6-11e1-8c30-001d09ef4a24"
POPUP_OTHER = "0f1e2d3c-4b5a-4697-8877-665544332211"
TOKEN = "leads-cli-token-7c2"
SIMULATOR_TOKENS = (TOKEN,)
HASH_KEY = "leads-cli-hash-key-3d9"
# Three Chilean mobiles: X is the person who asks; Y and Z are everyone else.
X, Y, Z = "+56961234567", "+56962345678", "+56963456789"


@pytest.fixture(params=["redis", "firestore"])
def store_url(request: pytest.FixtureRequest) -> str:
    if request.param == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        import redis

        redis.Redis.from_url(server.url).flushdb()
        return server.url
    pytest.importorskip("formcall_webhook.stores.firestore")
    emulator: FirestoreEmulator = request.getfixturevalue("firestore_emulator")
    emulator.clear()
    return emulator.store_url


class Setup:
    """One config, one store: the App that takes submissions and the CLI that reads what they left."""

    def __init__(self, tmp_path: Path, simulator: Simulator, store_url: str) -> None:
        path = tmp_path / "formcall.toml"
        path.write_text(
            "[formcall]\ntimeout_seconds = 0.5\n"
            '[leads]\nhash_key = "env:LEADS_HASH_KEY"\n'
            '[defaults]\nrate_limit = { per_phone = "2/day" }\n'
            '[defaults.retry]\nschedule = ["1s"]\nmax_age = "1h"\n'
            f"[routes.default]\npopup_uuid = '{POPUP}'\n"
            f"[routes.other]\npopup_uuid = '{POPUP_OTHER}'\n",
            encoding="utf-8",
        )
        self.env = {
            "FORMCALL_CONFIG": str(path),
            "FORMCALL_API_URL": simulator.api_url,
            "FORMCALL_SECURITY_TOKEN": TOKEN,
            "FORMCALL_STORE_URL": store_url,
            "LEADS_HASH_KEY": HASH_KEY,
        }
        if "FIRESTORE_EMULATOR_HOST" in os.environ:
            self.env["FIRESTORE_EMULATOR_HOST"] = os.environ["FIRESTORE_EMULATOR_HOST"]
        self.clock = TestClock()
        self.app = App(runtime=Runtime(self.env, clock=self.clock.now))
        self.simulator = simulator

    @property
    def store(self) -> Backend:
        return self.app.store

    def post(self, phone: str, route: str = "", **fields: str) -> tuple[int, dict[str, Any]]:
        raw = json.dumps({"phone": phone, "nombre": "Ana Pérez", **fields}).encode()
        stream = io.BytesIO(raw)
        req = Request(
            "POST", f"/{route}", {"content-type": "application/json"}, b"",
            lambda n, *_: read_stream(stream, n), len(raw), remote_addr="203.0.113.9",
        )  # fmt: skip
        response = self.app.handle(req)
        return response.status, json.loads(response.body)

    def cli(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, "-m", "formcall_webhook", *args],
            cwd=ROOT,
            env={"PATH": "/usr/bin:/bin", **coverage_env(), **self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert "Traceback" not in done.stderr, done.stderr
        return done

    def leads(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.cli("leads", *args)


@pytest.fixture
def setup(tmp_path: Path, simulator: Simulator, store_url: str) -> Setup:
    return Setup(tmp_path, simulator, store_url)


def national(e164: str) -> str:
    """The digits after +56: what must never appear in output unless asked for."""
    return e164[3:]


def no_number(text: str, *numbers: str, names: bool = False) -> None:
    """No whole number (of `numbers`, default all three) and, unless `names`, no adicional value."""
    for number in numbers or (X, Y, Z):
        assert national(number) not in text, f"a whole number in the output: {text}"
    assert names or "Ana" not in text, f"an adicional value in the output: {text}"


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


# -- list and show --


def test_list_and_show_mask_numbers_unless_asked(setup: Setup) -> None:
    status, placed = setup.post("+56 9 6123 4567")
    assert (status, placed.get("uuid") is not None) == (200, True), placed
    setup.simulator.inject({"kind": "error", "code": 3})
    status, kept = setup.post("+56 9 6234 5678", "other")
    assert (status, kept.get("scheduled")) == (200, True), kept

    done = setup.leads("list")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["lead_id", "received_at", "route", "state", "attempts", "last_error", "uuid", "phone"]
    assert placed["lead_id"] in lines[1] and "placed" in lines[1] and "+56*****567" in lines[1]
    assert kept["lead_id"] in lines[2] and "scheduled" in lines[2] and "+56*****678" in lines[2]
    no_number(done.stdout + done.stderr)
    # Times as the route's clock reads them (retry.timezone, America/Santiago by default); --json keeps UTC.
    stored = setup.store.get_lead(placed["lead_id"])
    assert stored is not None
    santiago = datetime.fromtimestamp(int(stored["received_ts"]), ZoneInfo("America/Santiago"))
    assert lines[1].split()[1] == santiago.isoformat(timespec="seconds")

    done = setup.leads("list", "--json", "--since", "1d")
    shown = json_lines(done.stdout)
    assert [s["lead_id"] for s in shown] == [placed["lead_id"], kept["lead_id"]]
    assert set(shown[0]) == set(records.PUBLIC_FIELDS)
    assert (shown[0]["state"], shown[0]["uuid"], shown[0]["phone"]) == ("placed", placed["uuid"], "+56*****567")
    assert (shown[1]["route"], shown[1]["attempts"], shown[1]["phone"]) == ("other", 1, "+56*****678")
    no_number(done.stdout)

    assert [s["lead_id"] for s in json_lines(setup.leads("list", "--json", "--state", "scheduled").stdout)] == [
        kept["lead_id"]
    ]
    assert [s["lead_id"] for s in json_lines(setup.leads("list", "--json", "--route", "default").stdout)] == [
        placed["lead_id"]
    ]
    assert setup.leads("list", "--json", "--route", "nope").stdout == ""

    # Asked for: the whole number where the record still holds it (the scheduled lead); the placed one
    # was minimized (keep_fields = "until_done"), so only its masked number is left to show.
    asked = json_lines(setup.leads("list", "--json", "--show-numbers").stdout)
    assert (asked[0]["phone"], asked[1]["phone"]) == ("+56*****567", Y)
    assert asked[1]["adicional"] == {"Nombre": "Ana Pérez"}

    done = setup.leads("show", kept["lead_id"])
    assert done.returncode == 0
    fields = dict(line.split(None, 1) for line in done.stdout.splitlines())
    assert list(fields) == list(records.PUBLIC_FIELDS)
    assert (fields["lead_id"], fields["state"], fields["phone"]) == (kept["lead_id"], "scheduled", "+56*****678")
    assert fields["received_at"].endswith(("-03:00", "-04:00")) and fields["next_attempt_at"][19:] in (
        "-03:00",
        "-04:00",
    )
    no_number(done.stdout)
    one = json_lines(setup.leads("show", kept["lead_id"], "--json").stdout)
    assert one == [shown[1]]

    done = setup.leads("show", "ld_nosuchlead")
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.startswith("error: no lead 'ld_nosuchlead' in redis://127.0.0.1:") or "firestore" in done.stderr


# -- retry --


def test_retry_a_failed_lead_places_one_call_and_a_second_retry_none(setup: Setup) -> None:
    setup.simulator.inject({"kind": "error", "code": 1})  # FormCall refuses it: kept as failed
    status, body = setup.post("+56 9 6123 4567")
    assert (status, body["error"]) == (422, "formcall_rejected")
    (failed,) = json_lines(setup.leads("list", "--json", "--state", "failed").stdout)
    assert setup.simulator.placed() == []

    done = setup.leads("retry", failed["lead_id"])
    assert done.returncode == 0, done.stderr
    (call,) = setup.simulator.placed()
    assert done.stdout.strip() == f"{failed['lead_id']}: placed, uuid {call['uuid']}"
    assert setup.store.get_lead(failed["lead_id"])["state"] == "placed"  # type: ignore[index]

    again = setup.leads("retry", failed["lead_id"])
    assert again.returncode == 1
    assert (
        again.stderr.strip() == f"error: {failed['lead_id']} is already placed (uuid {call['uuid']}): nothing to retry"
    )
    assert len(setup.simulator.placed()) == 1
    assert setup.leads("retry", "ld_nosuchlead").returncode == 1
    no_number(done.stdout + again.stderr)


# -- forget and export --


def test_forget_deletes_records_claims_and_the_rate_count(setup: Setup) -> None:
    _, first = setup.post("+56 9 6123 4567")
    _, second = setup.post("+56 9 6123 4567", "other")  # another popup: another lead, the count now 2 of 2
    _, other = setup.post("+56 9 6234 5678")
    assert all("uuid" in body for body in (first, second, other)), (first, second, other)
    status, dup = setup.post("+56961234567", "other", nombre="again")
    assert (status, dup.get("duplicate"), dup["lead_id"]) == (200, True, second["lead_id"])  # the dedupe claim holds

    done = setup.leads("forget", "09 6123 4567")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        "forgot +56*****567: 2 record(s) deleted, with their claims and rate count; opt-out list: not on it"
    )
    no_number(done.stdout)
    assert setup.store.get_lead(first["lead_id"]) is None
    assert setup.store.get_lead(second["lead_id"]) is None
    assert setup.store.get_lead(other["lead_id"]) is not None
    assert [r["lead_id"] for r in setup.store.scan_leads()] == [other["lead_id"]]

    # A resubmission is a new lead, not a duplicate of a forgotten one, and not over the per-phone limit.
    for route in ("", "other"):
        status, body = setup.post("+56 9 6123 4567", route)
        assert status == 200 and "duplicate" not in body, body
        assert body["lead_id"] not in (first["lead_id"], second["lead_id"])
    assert len(setup.simulator.placed()) == 5
    status, body = setup.post("+56 9 6123 4567", "other", nombre="third")
    assert body.get("duplicate") is True  # the new lead's claim: forget did not switch dedupe off


def test_export_phone_is_the_persons_copy_among_many(setup: Setup) -> None:
    setup.simulator.inject({"kind": "error", "code": 3})
    _, kept = setup.post("+56 9 6123 4567", "other")  # scheduled: its record still holds the number
    _, placed = setup.post("+56 9 6123 4567")  # placed: minimized
    for number in (Y, Z):
        setup.post(number)

    done = setup.leads("export", "--phone", "(9) 6123-4567")
    assert done.returncode == 0, done.stderr
    copy = json.loads(done.stdout)
    assert [r["lead_id"] for r in copy] == [kept["lead_id"], placed["lead_id"]]
    assert [r["phone"] for r in copy] == [X, X]
    assert copy[0]["adicional"] == {"Nombre": "Ana Pérez"}
    assert copy[0]["state"] == "scheduled" and copy[1]["uuid"] == placed["uuid"]
    no_number(done.stdout, Y, Z, names=True)  # the person's own, no one else's

    csv_done = setup.leads("export", "--csv")
    lines = csv_done.stdout.splitlines()
    assert lines[0] == ",".join(records.PUBLIC_FIELDS)
    assert len(lines) == 5
    assert sum("+56*****567" in line for line in lines) == 2
    no_number(csv_done.stdout)
    shown = setup.leads("export", "--csv", "--show-numbers").stdout
    assert X in shown  # the scheduled lead's whole number, asked for
    assert setup.leads("export").returncode == 2  # --csv or --phone


def test_forget_then_export_leaves_nothing_but_the_optout(setup: Setup) -> None:
    setup.post("+56 9 6123 4567")
    setup.post("+56 9 6234 5678")
    assert setup.leads("opt-out", X).returncode == 0
    done = setup.leads("forget", X)
    assert done.stdout.strip().endswith("opt-out list: on it, kept")
    assert json.loads(setup.leads("export", "--phone", X).stdout) == []
    assert len(json.loads(setup.leads("export", "--phone", Y).stdout)) == 1
    # The opposition outlives the deletion: the number is still refused, and nothing is kept of it.
    status, body = setup.post("+56 9 6123 4567", "other")
    assert (status, body["error"]) == (422, "opted_out")
    assert setup.store.is_opted_out(optout_hash(HASH_KEY.encode(), X))
    assert json.loads(setup.leads("export", "--phone", X).stdout) == []


# -- opt-out and opt-in --


WRITTEN = ["+56 9 6123 4567", "56961234567", "09 6123 4567", "(9) 6123-4567", "0056 9 6123 4567"]


# The number is read before any store is opened: each way of writing it once (Redis), and Firestore's
# opt-out and opt-in once, with the last of them.
@pytest.mark.parametrize(
    ("store_url", "written"),
    [*(("redis", written) for written in WRITTEN), ("firestore", WRITTEN[-1])],
    indirect=["store_url"],
)
def test_opt_out_however_the_number_is_written(setup: Setup, written: str) -> None:
    done = setup.leads("opt-out", written)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "opted out: +56*****567; every later submission of it is answered 422 opted_out"
    for route, typed in (("", "+56961234567"), ("other", "9 6123 4567")):
        status, body = setup.post(typed, route)
        assert (status, body["error"]) == (422, "opted_out"), body
    assert setup.simulator.calls() == []
    assert list(setup.store.scan_leads()) == []

    done = setup.leads("opt-in", written)
    assert done.stdout.strip() == "opted in: +56*****567 may be called again"
    status, body = setup.post("+56 9 6123 4567")
    assert status == 200 and body.get("uuid"), body
    assert len(setup.simulator.placed()) == 1


@pytest.mark.parametrize("store_url", ["redis"], indirect=True)  # what the store does: the test above
def test_a_number_that_is_not_one_is_a_usage_error(setup: Setup) -> None:
    done = setup.leads("opt-out", "12")
    assert done.returncode == 2
    assert done.stderr.strip() == "error: The phone number is not a valid number. (read with region CL)"
    done = setup.leads("forget", "961234567", "--region", "ZZ")
    assert done.returncode == 2
    # Read with another region's rules: an Argentine number written as Argentines do.
    assert setup.leads("opt-out", "011 15-2345-6789", "--region", "AR").stdout.startswith("opted out: +54*****789")


# -- stats --


def _seed(store: Backend, received: float, route: str, state: str, **fields: Any) -> dict[str, Any]:
    record = records.new_record(
        lead_id=records.new_lead_id(), route=route, received=received,
        payload={"popup_uuid": POPUP, "country_code": "56", "areacode": "9", "phonenumber": "61234567"},
        masked="+56*****567", phone_hash=optout_hash(HASH_KEY.encode(), X), keep_days=30, claims=[],
    )  # fmt: skip
    record = records.changed(record, state=state, **fields)
    assert store.save_lead(record, None)
    return record


def test_stats_by_day_and_route_with_calls_connect_rate_median_and_p90(setup: Setup) -> None:
    now = time.time()
    day = now - 3 * 3600
    call_at = datetime.fromtimestamp(day + 30, ZoneInfo("America/Santiago")).isoformat()
    outcome = {"call_status": "Conectada", "connected": True, "successful": True, "duration_customer": 40}
    _seed(setup.store, day, "default", "placed", placed_at=day + 5, uuid="u-5", outcome={**outcome, "call_at": call_at})
    for wait in (60, 90, 600):
        _seed(setup.store, day, "default", "placed", placed_at=day + wait, uuid=f"u-{wait}")
    _seed(setup.store, day, "default", "failed", last_error="formcall_rejected")
    _seed(setup.store, day, "other", "scheduled", due_at=now + 60)
    _seed(setup.store, day, "other", "pending", placed_at=day + 12, uuid="u-12",
          outcome={"call_status": "No contesta", "connected": False, "successful": False})  # fmt: skip
    _seed(setup.store, now - 9 * 86400, "default", "placed", placed_at=now - 9 * 86400 + 1)  # before --since

    done = setup.leads("stats", "--json", "--by", "route")
    assert done.returncode == 0, done.stderr
    assert json_lines(done.stdout) == [
        # Waits 30 (FormCall's call_at, not placed_at's 5), 60, 90 and 600: median 75, p90 the 4th.
        {"route": "default", "leads": 5, "placed": 4, "pending": 0, "scheduled": 0, "failed": 1,
         "calls_per_lead": 0.8, "connected": 1, "successful": 1, "connect_rate": 1.0, "median_seconds": 75.0,
         "p90_seconds": 600.0, "connects_by_call": {"1": 1}},
        {"route": "other", "leads": 2, "placed": 0, "pending": 1, "scheduled": 1, "failed": 0,
         "calls_per_lead": 0.5, "connected": 0, "successful": 0, "connect_rate": 0.0, "median_seconds": 12.0,
         "p90_seconds": 12.0, "connects_by_call": {}},
    ]  # fmt: skip
    local_day = datetime.fromtimestamp(day, ZoneInfo("America/Santiago")).date().isoformat()
    by_day = json_lines(setup.leads("stats", "--json").stdout)
    assert [(row["day"], row["leads"], row["connected"]) for row in by_day] == [(local_day, 7, 1)]

    table = setup.leads("stats", "--by", "route").stdout.splitlines()
    assert table[0] == ("leads received in the last 7d, by route (America/Santiago); "
                        "wait = submission to first call; – = no outcome tracked")  # fmt: skip
    assert table[1].split() == ["route", "leads", "placed", "pending", "scheduled", "failed", "calls/lead", "connected",
                                "successful", "connect", "rate", "median", "wait", "p90", "wait",
                                "connects/call"]  # fmt: skip
    assert table[2].split() == ["default", "5", "4", "0", "0", "1", "0.80", "1", "1", "100%", "1m15s", "10m00s", "1:1"]
    assert table[3].split() == ["other", "2", "0", "1", "1", "0", "0.50", "0", "0", "0%", "12s", "12s", "0"]
    csv_rows = setup.leads("stats", "--csv", "--by", "route").stdout.splitlines()
    assert csv_rows[0].split(",")[:3] == ["route", "leads", "placed"]
    assert csv_rows[1].split(",") == ["default", "5", "4", "0", "0", "1", "0.80", "1", "1", "100%", "1m15s", "10m00s",
                                      "1:1"]  # fmt: skip
    wider = json_lines(setup.leads("stats", "--json", "--since", "30d", "--timezone", "UTC").stdout)
    assert sum(row["leads"] for row in wider) == 8
    assert setup.leads("stats", "--since", "a week").returncode == 2
    assert setup.leads("stats", "--timezone", "Mars/Olympus").returncode == 2
    assert setup.leads("stats", "--by", "week").returncode == 2


# -- sweep --


def test_sweep_once_prints_the_counts_and_loop_stops_on_sigterm(setup: Setup) -> None:
    setup.simulator.inject({"kind": "error", "code": 3})
    # Received two seconds ago on the test's clock: with schedule = ["1s"], due by now for the CLI's process.
    setup.clock.advance(-2)
    _, body = setup.post("+56 9 6123 4567")
    assert body.get("scheduled") is True
    done = setup.cli("sweep")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"due": 1, "placed": 1, "pending": 0, "scheduled": 0, "failed": 0}
    assert '"outcome":"placed"' in done.stderr  # the sweeper's log lines: stderr, out of the counts' way
    no_number(done.stdout + done.stderr)
    assert len(setup.simulator.placed()) == 1

    loop = subprocess.Popen(
        [sys.executable, "-m", "formcall_webhook", "sweep", "--loop", "0.2"],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", **coverage_env(), **setup.env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert loop.stdout is not None
        passes = [json.loads(loop.stdout.readline()) for _ in range(2)]
        assert passes == [{"due": 0, "placed": 0, "pending": 0, "scheduled": 0, "failed": 0}] * 2
        os.killpg(loop.pid, signal.SIGTERM)
        assert loop.wait(timeout=10) == 0
    finally:
        if loop.poll() is None:
            os.killpg(loop.pid, signal.SIGKILL)
            loop.wait()
    assert len(setup.simulator.placed()) == 1
    assert setup.cli("sweep", "--loop", "0").returncode == 2


# -- failures --


@pytest.fixture
def down(tmp_path: Path, simulator: Simulator) -> Setup:
    return Setup(tmp_path, simulator, f"redis://127.0.0.1:{free_port()}/0")


@pytest.mark.parametrize(
    "args", [["leads", "list"], ["leads", "show", "ld_x"], ["leads", "opt-out", X], ["leads", "stats"], ["sweep"]]
)
def test_a_store_that_is_down_is_one_line_and_exit_1(down: Setup, args: list[str]) -> None:
    done = down.cli(*args)
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1
    assert done.stderr.startswith("error: the store redis://127.0.0.1:"), done.stderr
    assert "cannot be reached; nothing was changed. (store error: ConnectionError)" in done.stderr


def test_a_broken_config_names_file_key_and_problem(tmp_path: Path, simulator: Simulator) -> None:
    setup = Setup(tmp_path, simulator, "memory://")
    bad = tmp_path / "bad.toml"
    bad.write_text(f"[leads]\nkeep_fields = 'forever'\n[routes.default]\npopup_uuid = '{POPUP}'\n", encoding="utf-8")
    done = setup.leads("list", "--config", str(bad))
    assert done.returncode == 1
    assert done.stderr.strip() == f'error: {bad}: leads.keep_fields: must be "until_done" or "keep", not \'forever\''
    # memory:// is the default, and another process's memory: say so rather than list nothing silently.
    empty = setup.leads("list")
    columns = ["lead_id", "received_at", "route", "state", "attempts", "last_error", "uuid", "phone"]
    assert (empty.returncode, empty.stdout.split()) == (0, columns)
    assert empty.stderr.startswith("warning: the store is memory:// (FORMCALL_STORE_URL unset?)")
    assert setup.cli("leads").returncode == 2
    assert setup.leads("list", "--since", "3x").returncode == 2


def test_readme_documents_every_command_and_option() -> None:
    """README's command reference names every leads subcommand and every option it takes."""
    from formcall_webhook.cli import build_parser

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    start = readme.index("### The `leads` and `sweep` commands")
    section = readme[start : readme.index("\n## ", start)]
    top = build_parser()._subparsers._group_actions[0]  # type: ignore[union-attr]
    leads = top.choices["leads"]._subparsers._group_actions[0]
    commands = {f"leads {name}": parser for name, parser in leads.choices.items()}
    commands["sweep"] = top.choices["sweep"]
    for command, parser in commands.items():
        assert f"`{command}" in section or f"/ `{command}" in section, f"README does not document {command}"
        for action in parser._actions:
            for option in action.option_strings:
                if option not in ("-h", "--help", "--config"):
                    rows = [line for line in section.splitlines() if f"`{command}" in line]
                    assert any(option in row for row in rows), f"README does not document {command} {option}"
    assert "`--config FILE`" in section


def test_csv_cells_a_spreadsheet_would_run_are_quoted() -> None:
    from formcall_webhook.cli.leads import _cell

    assert _cell('=HYPERLINK("http://x")') == '\'=HYPERLINK("http://x")'
    assert _cell("@SUM(A1)") == "'@SUM(A1)"
    assert _cell("-2+3") == "'-2+3"
    assert (_cell("+56*****567"), _cell(X), _cell(3), _cell(None), _cell(True)) == ("+56*****567", X, "3", "", "true")


# -- the store's hash key (spec 10, issue 18.3) --


def test_a_command_or_function_with_another_hash_key_refuses(
    tmp_path: Path, simulator: Simulator, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 18.3: the CLI, run with a config lacking leads.hash_key, said "every later submission ... 422"
    and then the function called the number. The store's key fingerprint refuses it: exit 1, nothing
    changed; a function with another key answers 500 misconfigured with the reason logged."""
    setup = Setup(tmp_path, simulator, f"sqlite://{tmp_path}/leads.db")
    status, first = setup.post(X)  # the function, with its key: the store's fingerprint is its key's
    assert status == 200 and first["uuid"]
    bare = tmp_path / "bare.toml"
    bare.write_text(f"[routes.default]\npopup_uuid = '{POPUP}'\n", encoding="utf-8")
    for env in ({"FORMCALL_CONFIG": str(bare)}, {"LEADS_HASH_KEY": "another-key"}):
        done = setup.cli("leads", "opt-out", Y, env=env)
        assert done.returncode == 1, done
        assert "leads.hash_key is not the key this store's hashes were made with" in done.stderr, done.stderr
        assert "opted out" not in done.stdout and national(Y) not in done.stderr
    status, body = setup.post(Y)  # nothing was put on the list under a key nobody uses
    assert status == 200 and body["uuid"]
    # The right key: the opt-out holds.
    done = setup.leads("opt-out", Z)
    assert done.returncode == 0, done.stderr
    assert setup.post(Z)[1]["error"] == "opted_out"
    # A function process with another key refuses before anything is kept or called.
    other = App(runtime=Runtime({**setup.env, "LEADS_HASH_KEY": "another-key"}, clock=setup.clock.now))
    capsys.readouterr()
    raw = json.dumps({"phone": "+56 9 6999 0001"}).encode()
    stream = io.BytesIO(raw)
    response = other.handle(
        Request("POST", "/", {"content-type": "application/json"}, b"", lambda n, *_: read_stream(stream, n), len(raw))
    )
    assert (response.status, json.loads(response.body)["error"]) == (500, "misconfigured")
    (line,) = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith("{")]
    assert "leads.hash_key is not the key this store's hashes were made with" in line["reason"]
    assert len(simulator.placed()) == 2


def test_a_sweeper_with_another_hash_key_refuses(tmp_path: Path, simulator: Simulator) -> None:
    """Spec 10: the sweeper is a process of the store too: another key, and it refuses (500 misconfigured)."""
    from formcall_webhook.errors import Misconfigured
    from formcall_webhook.sweep import Sweeper

    setup = Setup(tmp_path, simulator, f"sqlite://{tmp_path}/leads.db")
    assert setup.post(X)[0] == 200
    other = Runtime({**setup.env, "LEADS_HASH_KEY": "another-key"}, clock=setup.clock.now)
    with pytest.raises(Misconfigured) as refused:
        Sweeper(other).run()
    assert "not the key this store's hashes were made with" in (refused.value.reason or "")
    assert Sweeper(setup.app.runtime).run()["due"] == 0
