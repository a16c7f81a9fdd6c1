"""The lead ledger's cost (spec 8), in process, against the FormCall simulator.

    python bench/ledger.py --sim-url URL [--leads 200] [--sweep-leads 1000] [--rounds 3]

prints one JSON object:

1. store round trips per placed lead, counted: each backend's own `round_trips` counter read before
   and after `--leads` distinct leads go through the real pipeline (App.handle, every answer a 200
   with a uuid), for memory://, a real redis-server (cross-checked with the server's own
   total_commands_processed) and Google's Firestore emulator (skipped where it cannot run);
2. sweep throughput: `--sweep-leads` leads kept while FormCall answers error 3, then one
   Sweeper.run pass over them once due, with memory:// (leads placed per second); against the
   request path placing as many distinct leads on the same simulator, in the same process, one after
   another (leads placed per second). The two alternate for `--rounds` rounds.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.loadgen import Leads
from bench.procs import POPUP, TOKEN
from formcall_webhook.app import App, Request
from formcall_webhook.sweep import Sweeper

HEADERS = {"content-type": "application/json", "accept": "application/json", "x-forwarded-for": "200.1.2.3"}


# Spec 11's keys on the round-trip row: three popups weighted 2:1:1, each paced (never reached here, so
# every lead is placed and its pace counted in the admission's round trip).
TALK_ROUTE = (
    f'popup_uuid = [{{ uuid = "{POPUP}", weight = 2 }}, {{ uuid = "{POPUP[:-1]}5", weight = 1 }}, '
    f'{{ uuid = "{POPUP[:-1]}6", weight = 1 }}]\npace = "100000/second"\n'
)


def write_config(folder: Path, retry: str = "", route: str = "") -> Path:
    """The bench's function config: zero-config's route, without the public rate limits (one client IP)."""
    path = folder / f"ledger{len(list(folder.iterdir()))}.toml"
    popup = route or f'popup_uuid = "{POPUP}"\n'
    path.write_text(
        f"[formcall]\ntimeout_seconds = 8\n{retry}[routes.default]\n{popup}rate_limit = false\n",
        encoding="utf-8",
    )
    return path


def make_app(config: Path, sim_url: str, store_url: str) -> App:
    app = App(
        {
            "FORMCALL_CONFIG": str(config),
            "FORMCALL_API_URL": sim_url + "/calls/manage/api",
            "FORMCALL_SECURITY_TOKEN": TOKEN,
            "FORMCALL_STORE_URL": store_url,
        }
    )
    app.logger.stream = open(os.devnull, "w")  # noqa: SIM115 - lives as long as this process
    return app


def post(app: App, raw: bytes) -> dict[str, Any]:
    request = Request(
        method="POST",
        path="/",
        headers={**HEADERS, "content-length": str(len(raw))},
        query_string=b"",
        read_body=lambda limit, timeout=None: raw[:limit],
        content_length=len(raw),
        remote_addr="127.0.0.1",
        url="http://127.0.0.1:8080/",
    )
    answer = app.handle(request)
    body: dict[str, Any] = json.loads(answer.body)
    if answer.status != 200:
        raise AssertionError(f"answered {answer.status}: {body}")
    return body


def control(sim_url: str, action: str, value: Any = None) -> None:
    """The simulator's /_sim/ controls (it runs in a process of its own)."""
    host, port = sim_url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        data = json.dumps(value).encode() if value is not None else b""
        conn.request("POST", f"/_sim/{action}", data, {"Content-Type": "application/json"})
        answer = conn.getresponse()
        if answer.status != 200:
            raise RuntimeError(f"simulator control {action}: {answer.status} {answer.read()[:200]!r}")
        answer.read()
    finally:
        conn.close()


# ---- 1. round trips per placed lead ---------------------------------------------------------------


def round_trips(app: App, leads: Leads, count: int, writes: Callable[[], int] | None = None) -> dict[str, Any]:
    for _ in range(3):  # warm up: connections, scripts loaded, Firestore's channel
        post(app, leads.body())
    store = app.store
    before, writes_before = store.round_trips, writes() if writes else 0
    began = time.perf_counter()
    for _ in range(count):
        answer = post(app, leads.body())
        if not answer.get("uuid") or answer.get("duplicate") or answer.get("scheduled"):
            raise AssertionError(f"not placed: {answer}")
    elapsed = time.perf_counter() - began
    result: dict[str, Any] = {
        "leads": count,
        "round_trips": store.round_trips - before,
        "per_lead": round((store.round_trips - before) / count, 3),
        "ms_per_lead": round(elapsed * 1000 / count, 2),
    }
    if writes is not None:
        result["socket_writes_per_lead"] = round((writes() - writes_before) / count, 3)
    return result


def count_redis_writes() -> Callable[[], int]:
    """Count redis-py's sends (one per command, pipeline or script call: a round trip each), apart
    from the store's own counter."""
    import redis.connection

    sent = [0]
    original: Callable[..., None] = redis.connection.AbstractConnection.send_packed_command

    def counting(self: Any, command: Any, check_health: bool = True) -> None:
        sent[0] += 1
        original(self, command, check_health)

    redis.connection.AbstractConnection.send_packed_command = counting  # type: ignore[method-assign]
    return lambda: sent[0]


def bench_round_trips(folder: Path, sim_url: str, leads: Leads, count: int) -> dict[str, Any]:
    from tests.fakes.firestore_emulator import FirestoreEmulator
    from tests.fakes.redis_server import RedisServer

    config = write_config(folder)
    talk = write_config(folder, route=TALK_ROUTE)
    out: dict[str, Any] = {"memory": round_trips(make_app(config, sim_url, "memory://"), leads, count)}
    paced: dict[str, Any] = {"memory": round_trips(make_app(talk, sim_url, "memory://"), leads, count)}
    out["paced_weighted"] = paced
    redis_server = RedisServer().start()
    try:
        writes = count_redis_writes()
        out["redis"] = round_trips(make_app(config, sim_url, redis_server.url), leads, count, writes)
        paced["redis"] = round_trips(make_app(talk, sim_url, redis_server.url), leads, count, writes)
    finally:
        redis_server.stop()
    try:
        emulator = FirestoreEmulator().start()
    except BaseException as err:  # pytest's Skipped: no gcloud or Java here
        if type(err).__name__ != "Skipped":
            raise
        out["firestore"] = {"skipped": str(err)}
        return out
    try:
        out["firestore"] = round_trips(make_app(config, sim_url, emulator.store_url), leads, count)
        paced["firestore"] = round_trips(make_app(talk, sim_url, emulator.store_url), leads, count)
    finally:
        emulator.stop()
    return out


# ---- 2. sweep throughput --------------------------------------------------------------------------


def request_path_rate(app: App, leads: Leads, count: int) -> float:
    """Leads placed per second by App.handle, FormCall answering at once."""
    began = time.perf_counter()
    for _ in range(count):
        if not post(app, leads.body()).get("uuid"):
            raise AssertionError("not placed")
    return count / (time.perf_counter() - began)


def sweep_rate(app: App, sim_url: str, leads: Leads, count: int) -> tuple[float, dict[str, int]]:
    """Leads placed per second by one Sweeper.run pass over `count` due leads."""
    control(sim_url, "fault_rate", {"rate": 1.0, "kinds": [{"kind": "error", "code": 3}], "seed": 1})
    try:
        for _ in range(count):
            if not post(app, leads.body()).get("scheduled"):
                raise AssertionError("not scheduled")
    finally:
        control(sim_url, "fault_rate", {"rate": 0.0, "kinds": []})
    time.sleep(1.1)  # the schedule's one second: every lead is due now
    began = time.perf_counter()
    counts = Sweeper(app.runtime).run(budget_seconds=3600)
    elapsed = time.perf_counter() - began
    if counts["placed"] != count:
        raise AssertionError(f"the pass placed {counts['placed']} of {count}: {counts}")
    return count / elapsed, counts


def bench_sweep(folder: Path, sim_url: str, leads: Leads, count: int, rounds: int) -> dict[str, Any]:
    config = write_config(folder, retry='[defaults.retry]\nschedule = ["1s"]\nmax_age = "1h"\n')
    app = make_app(config, sim_url, "memory://")
    request_path_rate(app, leads, 50)  # warm up
    sweeps: list[float] = []
    requests_: list[float] = []
    for index in range(rounds):
        control(sim_url, "reset")
        # Alternate which goes first, so drift in the machine's load favours neither.
        steps = ("sweep", "request") if index % 2 == 0 else ("request", "sweep")
        for step in steps:
            if step == "sweep":
                sweeps.append(sweep_rate(app, sim_url, leads, count)[0])
            else:
                requests_.append(request_path_rate(app, leads, count))
    ratios = [s / r for s, r in zip(sweeps, requests_, strict=True)]
    return {
        "due_leads": count,
        "rounds": rounds,
        "sweep_leads_per_s": round(statistics.median(sweeps), 1),
        "request_path_leads_per_s": round(statistics.median(requests_), 1),
        "ratio": round(statistics.median(ratios), 3),
        "sweep_runs": [round(s, 1) for s in sweeps],
        "request_path_runs": [round(r, 1) for r in requests_],
    }


def bench_recalls(folder: Path, sim_url: str, leads: Leads, count: int) -> dict[str, Any]:
    """Spec 11: one Sweeper.run pass over `count` leads whose recall is due (memory://), each placing its
    second call: the leads are placed, then each record is moved to where the outcome work leaves a call
    that settled not answered (its call in `calls`, the recall due now), so the pass measures the recalls."""
    config = write_config(folder, route=f'popup_uuid = "{POPUP}"\nrecall = {{ schedule = ["1m"], max_calls = 3 }}\n')
    app = make_app(config, sim_url, "memory://")
    ids = []
    for _ in range(count):
        answer = post(app, leads.body())
        if not answer.get("uuid"):
            raise AssertionError(f"not placed: {answer}")
        ids.append(answer["lead_id"])
    from formcall_webhook.records import CallWork, Lead

    now = time.time()
    for lead_id in ids:
        lead = Lead.from_json(app.store.get_lead(lead_id) or {})
        unanswered = CallWork(due=True, call_status="SIM-NoContesta", connected=False, successful=False, last=("x",))
        due = lead.call_settled(unanswered).outcome_step(CallWork(due=True, extra={"recall": True}), now)
        if not app.store.save_lead(due.to_json(), lead.version):
            raise AssertionError("the record changed")
    began = time.perf_counter()
    Sweeper(app.runtime).run(budget_seconds=3600)
    elapsed = time.perf_counter() - began
    recalled = sum(len((app.store.get_lead(i) or {}).get("calls") or []) == 2 for i in ids)
    if recalled != count:
        raise AssertionError(f"the pass recalled {recalled} of {count}")
    return {"due_recalls": count, "recalls_per_s": round(count / elapsed, 1)}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sim-url", required=True, help="the simulator's base URL, e.g. http://127.0.0.1:8081")
    parser.add_argument("--leads", type=int, default=200, help="placed leads per store for the round trips")
    parser.add_argument("--sweep-leads", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--lead-start", type=int, default=8_000_000, help="first lead number of the counter")
    args = parser.parse_args(argv)
    leads = Leads(args.lead_start)
    with tempfile.TemporaryDirectory(prefix="formcall-bench-ledger-") as tmp:
        folder = Path(tmp)
        result = {
            "round_trips": bench_round_trips(folder, args.sim_url, leads, args.leads),
            "sweep": bench_sweep(folder, args.sim_url, leads, args.sweep_leads, args.rounds),
            "recalls": bench_recalls(folder, args.sim_url, leads, args.sweep_leads),
        }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
