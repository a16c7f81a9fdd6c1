"""No lead lost (spec 8): distinct leads from senders that never retry, while FormCall is down for
stretches, answers error 2 for stretches, places every call and loses every answer for a stretch (the
connection reset after the call is placed), and fails 10% of calls at random.

FormCall's /calls/list rows are the documented ones (no customer number), as the real platform's are;
`--rich-rows` gives the simulator's richer rows instead. A lead whose call could not be told apart in
the listing is kept with `uuid_certain: false`; the table counts them.

`make soak` runs 2,000 leads per store: memory:// (one process that sweeps itself), then two function
processes and two sweepers sharing Redis, then the same sharing Google's Firestore emulator.
tests/test_soak.py runs a short version of each in `make test`.

At the end, after sweeping until nothing is due, every lead must be placed, pending, or failed with a
logged reason: an ERROR `lead_failed` line naming it when its sender had been answered 200, or the
request's own line when FormCall refused it (422) while the sender waited. No number called twice;
every lead_id answered in the store.

    python tests/soak.py [--leads 2000] [--store all|memory|redis|firestore] [--seconds 60] [--rich-rows]
                         [--unplaced-lost]
    python tests/soak.py sweeper [--every 0.5]     # one sweeper process (the soak starts two)
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from formcall_webhook.attempt import DEFAULT_HASH_KEY  # noqa: E402
from formcall_webhook.consent import optout_hash  # noqa: E402 - after the path setup above
from formcall_webhook.simulator import Simulator  # noqa: E402
from formcall_webhook.stores import Backend, open_store  # noqa: E402
from tests.fakes.firestore_emulator import FirestoreEmulator  # noqa: E402
from tests.fakes.redis_server import RedisServer  # noqa: E402
from tests.harness import FunctionProcess, coverage_env, forbidden_in_logs, start_all, stop_all  # noqa: E402

POPUP = "e5c98214-d0f6-11e1-8c30-001d09ef4a24"
TOKEN = "soak-token-8e21"
# FormCall's timeout. The store's own timeout is derived from it (an eighth for Redis, a quarter for
# Firestore): at 2 s they are 0.25 s and 0.5 s, which a busy 2-core machine keeps to.
TIMEOUT = 2.0
# FormCall failing in every way the simulator knows, including the three that place the call and lose
# the answer (slow, placed_then_reset, malformed_json): the cases where a naive retry rings twice.
#
# Left out by default: a lost answer for which nothing was placed. That is a `reset` after the request
# went out; a `drip` of an error answer cut (on a busy machine) before it says `"success": false`; and
# slow, placed_then_reset or malformed_json while the popup is out of hours, when FormCall places
# nothing. It is the one case the spec's settle rule cannot tell from a lost answer whose call was
# placed: when the two fall in one popup's minute, the two leads share one row, and one of them goes
# unrung (spec 8: none rung twice). At this soak's pace (2,000 leads in a minute on one popup) every
# such answer falls in such a minute. `--unplaced-lost` puts them back to show that price;
# tests/test_lost_answers.py and tests/test_exactly_once.py prove a lone one is called once, and
# tests/test_faults.py walks every fault through the function.
FAULTS: list[dict[str, Any]] = [
    {"kind": "slow", "seconds": TIMEOUT + 0.3},
    {"kind": "placed_then_reset"},
    {"kind": "reset_mid_answer"},
    {"kind": "http500_html"},
    {"kind": "html_200"},
    {"kind": "malformed_json"},
    {"kind": "error", "code": 3},
    {"kind": "error", "code": 6},
]
# FormCall down: nothing it answers is usable (an error page, a captive portal), and its list is down too.
DOWN: list[dict[str, Any]] = [{"kind": "http500_html"}, {"kind": "html_200"}]
# What `--unplaced-lost` adds, in every stretch but the lost one: answers lost with nothing placed.
UNPLACED: list[dict[str, Any]] = [{"kind": "reset"}, {"kind": "drip", "seconds": TIMEOUT + 0.5}]
# Out of service hours FormCall places nothing, so these lose an answer that placed nothing.
LOST_KINDS = ("slow", "placed_then_reset", "malformed_json")
# Every answer lost: FormCall places the call, then resets the connection.
LOST: list[dict[str, Any]] = [{"kind": "placed_then_reset"}]
# The weather while the leads arrive, by the share of leads released so far; "normal" is 10% faults.
WEATHER: list[tuple[float, str]] = [
    (0.00, "normal"),
    (0.15, "down"),
    (0.30, "normal"),
    (0.40, "pending"),
    (0.50, "error2"),
    (0.60, "lost"),
    (0.70, "normal"),
    (0.80, "down"),
    (0.90, "normal"),
]
RETRYABLE = {429, 500, 502, 503, 504, 599}
MAX_DELIVERIES = 12
STORES = ("memory", "redis", "firestore")


def lead_number(index: int) -> str:
    """Distinct valid Chilean mobiles, typed in a few human ways; one lead in twenty mistyped."""
    local = f"{52000000 + index * 37:08d}"
    if mistyped(index):
        return f"+56 9 {local[:5]}"
    styles = (f"+56 9 {local[:4]} {local[4:]}", f"9{local}", f"56 9 {local}", f"09 {local[:4]}-{local[4:]}")
    return styles[index % len(styles)]


def mistyped(index: int) -> bool:
    return index % 20 == 19


def lead_digits(index: int) -> str:
    """The number as FormCall receives it: country code, area code and number."""
    return f"569{52000000 + index * 37:08d}"


def lead_name(index: int) -> str:
    # Distinctive, so the log scan can tell an adicional value (Nombre) leaked.
    return f"Soakname{index}q"


def retries(index: int) -> bool:
    """One sender in five is a CRM that retries 5xx/429 (HubSpot, Zapier); the rest never retry."""
    return index % 5 == 0


@dataclass
class Counts:
    store: str
    leads: int = 0
    submissions: int = 0
    answered: collections.Counter[str] = field(default_factory=collections.Counter)
    retries: int = 0
    resends: int = 0
    faults_injected: int = 0
    calls_placed: int = 0
    leads_placed: int = 0
    leads_pending: int = 0
    leads_failed: int = 0
    # Leads kept with uuid_certain: false (their call could not be told apart in /calls/list), and
    # how many of those FormCall never rang (each is lost too: it shares another lead's call).
    uuid_uncertain: int = 0
    uncertain_not_called: int = 0
    rich_rows: bool = False
    called_twice: int = 0
    lost: int = 0
    sweeps: int = 0
    seconds: float = 0.0
    stretches: list[str] = field(default_factory=list)
    statuses: collections.Counter[int] = field(default_factory=collections.Counter)
    problems: list[str] = field(default_factory=list)
    # Each lead with uuid_certain: false, and each lost one: the weather it was sent in, the faults its
    # FormCall requests met, and whether FormCall rang it (the soak's evidence of where they come from).
    notes: list[str] = field(default_factory=list)
    shared_from: collections.Counter[str] = field(default_factory=collections.Counter)

    def row(self) -> list[str]:
        a = self.answered
        return [
            self.store + (" (rich rows)" if self.rich_rows else ""),
            f"{self.leads:,}",
            f"{self.submissions:,}",
            f"{a['placed']:,} / {a['pending']:,} / {a['scheduled']:,} / {a['duplicate']:,}",
            f"{a['4xx']:,}",
            f"{a['5xx']:,}",
            f"{self.retries:,} / {self.resends:,}",
            f"{self.faults_injected:,}",
            f"{self.calls_placed:,}",
            f"{self.leads_placed:,} / {self.leads_pending:,} / {self.leads_failed:,}",
            f"{self.uuid_uncertain:,} ({self.uncertain_not_called:,})",
            f"{self.called_twice:,}",
            f"{self.lost:,}",
            f"{self.seconds:.0f} s",
        ]


HEADERS = [
    "store",
    "leads",
    "submissions",
    "answered 200 placed / pending / scheduled / duplicate",
    "4xx",
    "5xx",
    "sender retries / resends",
    "faults injected",
    "calls placed",
    "leads placed / pending / failed",
    "uuid_certain: false (of them never rung)",
    "called twice",
    "lost",
    "time",
]


def table(rows: list[Counts]) -> str:
    cells = [HEADERS, *(c.row() for c in rows)]
    widths = [max(len(r[i]) for r in cells) for i in range(len(HEADERS))]
    lines = ["| " + " | ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) + " |" for r in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


class SweeperProcess:
    """`python tests/soak.py sweeper`: Runtime + Sweeper in a loop, as Cloud Scheduler's calls are."""

    def __init__(self, env: dict[str, str], log_path: Path, every: float = 0.5) -> None:
        self.env = env
        self.log_path = log_path
        self.every = every
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> SweeperProcess:
        env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", tempfile.gettempdir()), **self.env}
        env.update(coverage_env())
        env["PYTHONUNBUFFERED"] = "1"
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, str(Path(__file__).resolve()), "sweeper", "--every", str(self.every)],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, sig)
            try:
                process.wait(timeout=10)
                return
            except subprocess.TimeoutExpired:
                continue


def sweeper_main(every: float) -> int:
    """One sweeper: a pass every `every` seconds until SIGTERM, logging as the deployed sweep does."""
    from formcall_webhook.runtime import Runtime
    from formcall_webhook.sweep import Sweeper

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    runtime = Runtime()
    sweeper = Sweeper(runtime)
    while not stop.is_set():
        try:
            sweeper.run(budget_seconds=20)
        except Exception as err:  # a store hiccup: log it and sweep again, as the scheduler would
            runtime.logger.write(
                "ERROR", "sweep failed", {"outcome": "sweep", "source": "sweep", "reason": type(err).__name__}, {}
            )
        stop.wait(every)
    return 0


class Weather:
    """The simulator's mood: normal (10% random faults), down, out of service hours (error 2), out of
    service hours with the popup keeping calls pending (random faults go on in both), or every answer
    lost after its call is placed."""

    def __init__(self, sim: Simulator, fault_rate: float, seed: int, unplaced_lost: bool = False) -> None:
        self.sim = sim
        self.fault_rate = fault_rate
        self.seed = seed
        self.faults = [*FAULTS, *UNPLACED] if unplaced_lost else FAULTS
        self.down = [*DOWN, *UNPLACED] if unplaced_lost else DOWN
        self.out_of_hours = self.faults if unplaced_lost else [f for f in FAULTS if f["kind"] not in LOST_KINDS]
        self.now = ""
        self.stretches: list[str] = []

    def set(self, mood: str) -> None:
        if mood == self.now:
            return
        self.now = mood
        self.stretches.append(mood)
        self.seed += 1
        if mood == "down":
            self.sim.set_fault_rate(1.0, self.down, seed=self.seed)
            self.sim.set_list_down("http500_html")
            self.sim.set_popup(POPUP)
        elif mood == "lost":
            self.sim.set_fault_rate(1.0, LOST, seed=self.seed)
            self.sim.set_list_up()
            self.sim.set_popup(POPUP)
        elif mood in ("error2", "pending"):
            # Out of service hours: error 2, or the call kept pending when the popup is set to.
            self.sim.set_fault_rate(self.fault_rate, self.out_of_hours, seed=self.seed)
            self.sim.set_list_up()
            if self.out_of_hours is not self.faults:
                # A slow answer already on its way is judged when it ends: let it end in service hours.
                self.sim.wait_for_calls(len(self.sim.calls()), timeout=30.0)
            self.sim.set_popup(POPUP, in_service_hours=False, keep_pending=mood == "pending")
        else:
            self.sim.set_fault_rate(self.fault_rate, self.faults, seed=self.seed)
            self.sim.set_list_up()
            self.sim.set_popup(POPUP)

    def at(self, share: float) -> None:
        self.set(mood_at(share))


def mood_at(share: float) -> str:
    return [mood for start, mood in WEATHER if share >= start][-1]


def rejection_points(leads: int, count: int) -> set[int]:
    """Where FormCall refuses one request for good (error 6), spread over the normal stretches."""
    normal = [i for i in range(leads) if mood_at(i / leads) == "normal"]
    if not normal or count <= 0:
        return set()
    step = len(normal) / count
    return {normal[int(k * step)] for k in range(count)}


def warm_emulator(firestore: FirestoreEmulator, rounds: int = 30) -> None:
    """Round trips through a client of the soak's own, so the emulator (a JVM, slow on its first requests
    as Firestore itself never is) has warmed up before the leads arrive. The function's processes keep
    their cold clients: their first requests are still the soak's to survive. What it wrote is cleared."""
    store = open_store(firestore.store_url)
    for n in range(rounds):
        store.put(f"soak-warm-{n}", "x", 60)
        store.hit(f"soak-warm-hit-{n % 3}", 60)
        store.due_leads(time.time(), 8)
    firestore.clear()


def write_config(workdir: Path) -> Path:
    config = workdir / "formcall.toml"
    # A public route: the default rate limits (30/hour per IP) would refuse the soak's one client IP.
    config.write_text(
        f"[formcall]\ntimeout_seconds = {TIMEOUT}\n"
        '[defaults.retry]\nschedule = ["1s"]\nmax_age = "2h"\n'
        f'[routes.default]\npopup_uuid = "{POPUP}"\nrate_limit = false\n',
        encoding="utf-8",
    )
    return config


def stop_run(
    sweepers: list[SweeperProcess],
    instances: list[FunctionProcess],
    sim: Simulator,
    redis: RedisServer | None,
    firestore: FirestoreEmulator | None,
) -> None:
    """End what one run started: its sweepers, function processes and simulator, and the Redis server or
    Firestore emulator it started itself (given here only then)."""
    for sweeper in sweepers:
        sweeper.stop()
    stop_all(instances)
    sim.stop()
    if redis is not None:
        redis.stop()
    if firestore is not None:
        firestore.stop()


def run(
    leads: int,
    *,
    store: str = "memory",
    seconds: float = 6.0,
    concurrency: int = 16,
    fault_rate: float = 0.10,
    resend_rate: float = 0.20,
    seed: int = 20261128,
    workdir: Path | None = None,
    firestore: FirestoreEmulator | None = None,
    redis: RedisServer | None = None,
    drain_seconds: float = 120.0,
    rejections: int | None = None,
    rich_rows: bool = False,
    on_sent: Callable[[], None] | None = None,
    unplaced_lost: bool = False,
) -> Counts:
    """One soak run against one store; `problems` lists every lead not accounted for, and why.

    Leads arrive evenly over `seconds`. Besides the random faults, FormCall refuses `rejections`
    requests for good (error 6; default 3, or one lead in a hundred), so the failed path is always
    walked: the lead those land on, on the request path or in a sweep, must end failed and logged.
    A Redis server or Firestore emulator not given is started (and stopped) here. `rich_rows`: the
    simulator's /calls/list rows name the customer's number (the documented rows do not). `unplaced_lost`:
    FormCall also loses answers for which it placed nothing (see FAULTS). `on_sent` is
    called once every lead has been answered, before the sweeping to the end.
    """
    if store not in STORES:
        raise ValueError(f"store must be one of {STORES}")
    workdir = workdir or Path(tempfile.mkdtemp(prefix="soak-"))
    counts = Counts(store=store, leads=leads, rich_rows=rich_rows)
    rng = random.Random(seed)
    lock = threading.Lock()
    config = write_config(workdir)
    began = time.monotonic()
    own_redis = own_firestore = False
    env = {"FORMCALL_CONFIG": str(config), "FORMCALL_SECURITY_TOKEN": TOKEN}
    if store == "redis":
        if redis is None:
            redis, own_redis = RedisServer().start(), True
        import redis as redis_client

        redis_client.Redis.from_url(redis.url).flushdb()
        env["FORMCALL_STORE_URL"] = redis.url
    elif store == "firestore":
        if firestore is None:
            firestore, own_firestore = FirestoreEmulator().start(), True
        firestore.clear()
        warm_emulator(firestore)
        env["FORMCALL_STORE_URL"] = firestore.store_url
        # The children's environments are built from scratch: the emulator's address must be passed on.
        env["FIRESTORE_EMULATOR_HOST"] = firestore.host
    else:
        env["FORMCALL_STORE_URL"] = "memory://"
        env["FORMCALL_SWEEP_SECONDS"] = "1"  # memory:// sweeps itself: no other process sees its leads
    sim = Simulator(tokens=(TOKEN,), quiet=True, rich_rows=rich_rows).start()
    env["FORMCALL_API_URL"] = sim.api_url
    weather = Weather(sim, fault_rate, seed, unplaced_lost)
    weather.set("normal")
    shared = store != "memory"
    instances: list[FunctionProcess] = []
    sweepers: list[SweeperProcess] = []
    final: dict[int, tuple[int, dict[str, Any]]] = {}
    firsts: dict[int, tuple[int, dict[str, Any]]] = {}
    moods: dict[int, str] = {}

    def deliver(index: int) -> None:
        session = requests.Session()
        body = json.dumps({"telefono": lead_number(index), "nombre": lead_name(index)})
        with lock:
            resend = rng.random() < resend_rate
        sends = 0
        status, answer = 0, {}
        while sends < MAX_DELIVERIES:
            instance = instances[(index + sends) % len(instances)]
            sends += 1
            try:
                response = session.post(
                    instance.url, data=body, headers={"Content-Type": "application/json"}, timeout=30
                )
                status, answer = response.status_code, response.json()
            except (requests.RequestException, ValueError) as err:
                status, answer = 599, {"error": type(err).__name__}
            with lock:
                counts.submissions += 1
                counts.statuses[status] += 1
                counts.answered[_word(status, answer)] += 1
            if index not in firsts:
                firsts[index] = (status, answer)
            if status in RETRYABLE and retries(index):
                # As HubSpot and Zapier do: wait (Retry-After, kept short here) and send it again.
                with lock:
                    counts.retries += 1
                time.sleep(1.0)
                continue
            if status < 300 and resend and sends == 1:
                # A sender that delivers the same lead again although it was answered.
                with lock:
                    counts.resends += 1
                continue
            break
        final[index] = (status, answer)

    try:
        instances = [FunctionProcess(env, workdir / f"soak-{store}-{i}.log") for i in range(2 if shared else 1)]
        start_all(instances)
        if shared:
            sweepers = [SweeperProcess(env, workdir / f"sweeper-{store}-{i}.log").start() for i in range(2)]
        refusals = rejection_points(leads, max(3, leads // 100) if rejections is None else rejections)
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            futures = []
            for index in range(leads):
                weather.at(index / leads)
                moods[index] = weather.now
                if index in refusals:
                    sim.inject({"kind": "error", "code": 6})
                delay = started + index * seconds / leads - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                futures.append(pool.submit(deliver, index))
            for future in futures:
                future.result()
        if on_sent is not None:
            on_sent()
        weather.set("normal")
        store_view = open_store(env["FORMCALL_STORE_URL"]) if shared else None
        drained = _drain(store_view, instances, [*firsts.values(), *final.values()], drain_seconds)
        if not drained:
            counts.problems.append(f"leads still due after {drain_seconds:.0f} s of sweeping")
        # Slow faults place their call late: every request FormCall received must be handled first.
        if not _settled_calls(sim, drain_seconds):
            counts.problems.append(f"FormCall requests still unhandled after {drain_seconds:.0f} s")
        log_paths = [p.log_path for p in instances] + [p.log_path for p in sweepers]
        logs = [path.read_text(errors="replace") for path in log_paths]
        entries = [e for path in log_paths for e in _entries(path)]
        counts.sweeps = sum(1 for e in entries if e.get("outcome") == "sweep")
        records = list(store_view.scan_leads()) if store_view is not None else None
        _check(counts, sim, final, firsts, entries, records, moods)
        leaked = forbidden_in_logs(
            "\n".join(logs), {TOKEN, *(lead_digits(i) for i in range(leads)), *(lead_name(i) for i in range(leads))}
        )
        if leaked or any("Traceback" in text for text in logs):
            counts.problems.append(f"logs leak {len(leaked)} values or hold a traceback")
    finally:
        stop_run(sweepers, instances, sim, redis if own_redis else None, firestore if own_firestore else None)
    counts.seconds = time.monotonic() - began
    counts.stretches = weather.stretches
    return counts


def _settled_calls(sim: Simulator, limit: float) -> bool:
    """Wait until every place-call request the simulator received has its outcome."""
    try:
        sim.wait_for_calls(len(sim.calls()), timeout=limit)
    except TimeoutError:
        return False
    return True


def _entries(path: Path) -> list[dict[str, Any]]:
    entries = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith("{"):
            with contextlib.suppress(ValueError):
                entries.append(json.loads(line))
    return entries


def _drain(
    store: Backend | None,
    instances: list[FunctionProcess],
    answers: list[tuple[int, dict[str, Any]]],
    limit: float,
) -> bool:
    """Wait until nothing is due: no record with a due time (shared stores, read from the store), or
    every lead answered `scheduled` settled in the log (memory://, whose store only its process sees)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if store is not None:
            if all(r.get("due_at") is None for r in store.scan_leads()):
                return True
        else:
            waiting = {a["lead_id"] for s, a in answers if s == 200 and a.get("scheduled")}
            settled = {
                e.get("lead_id")
                for p in instances
                for e in _entries(p.log_path)
                if e.get("source") == "sweep" and e.get("outcome") in ("placed", "pending", "lead_failed")
            }
            if waiting <= settled:
                return True
        time.sleep(0.5)
    return False


def _check(
    counts: Counts,
    sim: Simulator,
    final: dict[int, tuple[int, dict[str, Any]]],
    firsts: dict[int, tuple[int, dict[str, Any]]],
    entries: list[dict[str, Any]],
    records: list[dict[str, Any]] | None,
    moods: dict[int, str] | None = None,
) -> None:
    """Every lead accounted for: placed (one call), pending, or failed with its logged reason. A lead
    kept with uuid_certain: false must have been rung once too (its uuid may be another's, never its
    call); one FormCall never rang is lost, whatever its record says."""
    calls = sim.calls()
    placed = [c for c in calls if c["outcome"] == "placed"]
    counts.calls_placed = len(placed)
    counts.faults_injected = sum(1 for c in calls if c.get("fault"))
    per_number: dict[str, list[str]] = collections.defaultdict(list)
    # What each number's FormCall requests met, in order: the fault, else the outcome.
    history: dict[str, list[str]] = collections.defaultdict(list)
    last_sent: dict[str, float] = {}
    owner: dict[str, tuple[str, float]] = {}  # a call's uuid: the number it rang, when it was asked for
    for c in calls:
        p = c["payload"]
        if isinstance(p, dict) and all(isinstance(p.get(k), str) for k in ("country_code", "areacode", "phonenumber")):
            digits = p["country_code"] + p["areacode"] + p["phonenumber"]
            history[digits].append(str(c.get("fault") or c["outcome"]))
            sent = datetime.fromisoformat(c["received_at"]).timestamp()
            last_sent[digits] = sent
            if c["outcome"] == "placed":
                per_number[digits].append(c["uuid"])
                owner[c["uuid"]] = (digits, sent)
    index_of = {lead_digits(i): i for i in range(counts.leads)}
    kept: dict[int, tuple[str | None, bool]] = {}
    noted: list[tuple[int, list[str], bool, str]] = []
    counts.called_twice = sum(1 for uuids in per_number.values() if len(uuids) > 1)
    # A lead that fails after its sender was answered 200 must raise the alert: an ERROR lead_failed line.
    failed_logged = {
        e.get("lead_id") for e in entries if e.get("outcome") == "lead_failed" and e.get("severity") == "ERROR"
    }
    # One FormCall refused on the request path was answered 422, so its sender knows: the request's own
    # line, with the lead_id and the reason, is its logged reason (a failed record, not an alert).
    told = {
        e.get("lead_id")
        for e in entries
        if e.get("source") == "request" and e.get("outcome") == "formcall_rejected" and e.get("status") == 422
        and e.get("lead_id") and e.get("reason")
    }  # fmt: skip
    # The last word the logs hold for each lead: the request's answer, then each sweep's attempt.
    last: dict[str, dict[str, Any]] = {}
    for e in entries:
        if e.get("lead_id") and e.get("outcome") in ("placed", "pending", "scheduled", "lead_failed", "opted_out"):
            last[e["lead_id"]] = e
    by_hash: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    for r in records or []:
        by_hash[r.get("phone_hash") or ""].append(r)
    for index in range(counts.leads):
        uncertain_before = counts.uuid_uncertain
        status, answer = final.get(index, (0, {}))
        first_status, first = firsts.get(index, (0, {}))
        rings = per_number.get(lead_digits(index), [])
        lost = _classify(index, status, answer)
        if mistyped(index):
            wrong = None if status == 422 and not rings else f"mistyped number answered {status}, {len(rings)} calls"
        elif records is not None:
            logged = failed_logged | told if status == 422 else failed_logged
            wrong = _check_record(counts, index, status, answer, rings, by_hash, logged)
        else:
            wrong = _check_logged(counts, status, answer, rings, last, failed_logged)
        if first_status == 200 and status == 200 and answer.get("lead_id") != first.get("lead_id"):
            wrong = wrong or "a resend answered another lead_id"
        if lost or wrong:
            # A lead rung twice is counted in that column (called_twice), not as lost too.
            if lost or len(rings) <= 1:
                counts.lost += 1
            counts.problems.append(f"lead {index}: {lost or wrong}")
        elif len(rings) > 1:
            counts.problems.append(f"lead {index}: {len(rings)} calls placed")
        uncertain = counts.uuid_uncertain > uncertain_before
        kept[index] = (_kept_uuid(index, answer, records, by_hash, last), uncertain)
        if lost or wrong or uncertain:
            noted.append((index, rings, uncertain, lost or wrong or "ok"))
    # Where the uuid_certain: false leads come from: the weather each was sent in, the faults its requests
    # met, and (for one FormCall never rang) whose call it was given, how long after its own last request
    # FormCall was asked for that call, and whether its owner holds it too, for certain.
    holds = {u: i for i, (u, uncertain) in kept.items() if u and not uncertain}
    for index, rings, uncertain, why in noted:
        mood = (moods or {}).get(index, "?")
        digits = lead_digits(index)
        note = f"lead {index} sent in {mood}, FormCall met {history.get(digits, [])}, rung {len(rings)}"
        kept_uuid = kept[index][0]
        if uncertain and not rings and kept_uuid in owner:
            theirs, sent = owner[kept_uuid]
            other = index_of.get(theirs, -1)
            whose = "held for certain by its owner" if holds.get(kept_uuid) == other else "shared"
            note += (
                f"; given lead {other}'s call (sent in {(moods or {}).get(other, '?')}, met "
                f"{history.get(theirs, [])}, asked {sent - last_sent.get(digits, sent):+.1f} s after this lead's "
                f"last request; {whose})"
            )
            counts.shared_from[f"{mood} lead given a {(moods or {}).get(other, '?')} lead's call, {whose}"] += 1
        elif uncertain:
            counts.shared_from[f"{mood} lead, rung {len(rings)}"] += 1
        counts.notes.append(f"{note}, {'uuid_certain: false' if uncertain else 'certain'}: {why}")
    if records is None:
        # memory://: a lead refused by FormCall (422) is known only by its log lines, not its number.
        rejected = sum(1 for s, a in final.values() if s == 422 and a.get("error") == "formcall_rejected")
        counts.leads_failed += rejected
        if len(told) != rejected:
            counts.problems.append(f"{rejected} leads refused by FormCall, {len(told)} request lines say so")


def _kept_uuid(
    index: int,
    answer: dict[str, Any],
    records: list[dict[str, Any]] | None,
    by_hash: dict[str, list[dict[str, Any]]],
    last: dict[str, dict[str, Any]],
) -> str | None:
    """The uuid the function kept for a lead: its record's (shared stores) or its last log line's."""
    if records is not None:
        kept = by_hash.get(optout_hash(DEFAULT_HASH_KEY, "+" + lead_digits(index)), [])
        return kept[0].get("uuid") if len(kept) == 1 else None
    return last.get(str(answer.get("lead_id")), {}).get("uuid")


def _word(status: int, answer: dict[str, Any]) -> str:
    """The table's column for one answer."""
    if status == 200:
        return next((w for w in ("duplicate", "scheduled", "pending") if answer.get(w)), "placed")
    return "4xx" if 400 <= status < 500 and status != 429 else "5xx"


def _classify(index: int, status: int, answer: dict[str, Any]) -> str | None:
    """A sender's last answer a 5xx (or none): the lead is lost, since the function kept nothing."""
    if _word(status, answer) != "5xx":
        return None
    who = "a retrying sender gave up on" if retries(index) else "a sender that never retries got"
    return f"{who} {status} {answer.get('error')}"


def _check_record(
    counts: Counts,
    index: int,
    status: int,
    answer: dict[str, Any],
    rings: list[str],
    by_hash: dict[str, list[dict[str, Any]]],
    failed_logged: set[Any],
) -> str | None:
    """A shared store: the lead's one record is placed (its one call), pending, or failed and logged."""
    kept = by_hash.get(optout_hash(DEFAULT_HASH_KEY, "+" + lead_digits(index)), [])
    if status == 422 and answer.get("error") != "formcall_rejected":
        return f"answered 422 {answer.get('error')}"
    if not kept:
        return None if status >= 500 or status == 0 else f"answered {status} {answer.get('lead_id')}: not in the store"
    if len(kept) != 1:
        return f"{len(kept)} records for one lead"
    record = kept[0]
    if status == 200 and answer.get("lead_id") != record["lead_id"]:
        return f"answered lead_id {answer.get('lead_id')}, stored {record['lead_id']}"
    return _settled(counts, record["state"], record["lead_id"], record.get("uuid"), rings, failed_logged,
                    due=record.get("due_at") is not None, uncertain=record.get("uuid_certain") is False)  # fmt: skip


def _check_logged(
    counts: Counts,
    status: int,
    answer: dict[str, Any],
    rings: list[str],
    last: dict[str, dict[str, Any]],
    failed_logged: set[Any],
) -> str | None:
    """memory://: the lead's last log line settles it (the store is inside the function's process)."""
    if status != 200:
        if status == 422 and answer.get("error") != "formcall_rejected":
            return f"answered 422 {answer.get('error')}"
        return None  # a 422 from FormCall is counted by _check; a 5xx is lost already
    lead_id = str(answer.get("lead_id"))
    entry = last.get(lead_id)
    if entry is None:
        return f"no log line settles {lead_id}"
    state = {"lead_failed": "failed", "opted_out": "failed"}.get(entry["outcome"], entry["outcome"])
    return _settled(counts, state, lead_id, entry.get("uuid"), rings, failed_logged,
                    uncertain=entry.get("uuid_certain") is False)  # fmt: skip


def _settled(
    counts: Counts,
    state: str,
    lead_id: Any,
    uuid: Any,
    rings: list[str],
    failed_logged: set[Any],
    due: bool = False,
    uncertain: bool = False,
) -> str | None:
    if due or state == "scheduled":
        return f"still {state}, due"
    if state == "failed":
        counts.leads_failed += 1
        if lead_id not in failed_logged:
            return "failed without a lead_failed line"
        return f"failed with {len(rings)} calls placed" if rings else None
    if state == "pending":
        counts.leads_pending += 1
        return f"pending but FormCall placed {rings}" if rings else None
    if state != "placed":
        return f"left {state}"
    counts.leads_placed += 1
    if uncertain:
        # Its call could not be told apart from another lost lead's: it was rung once, under either uuid.
        counts.uuid_uncertain += 1
        if not rings:
            counts.uncertain_not_called += 1
            return f"placed as {uuid} (uuid_certain: false) but FormCall never rang it"
        return None if len(rings) == 1 else f"placed as {uuid} (uuid_certain: false) but FormCall placed {rings}"
    return None if rings == [uuid] else f"placed as {uuid} but FormCall placed {rings}"


# ---- spec 11: the recall stretch ------------------------------------------------------------------

# Each lead's calls meet one fate, by its number: answered at once, never answered, busy. 2 in 5
# connect on the first call; the rest are recalled until max_calls.
RECALL_FATES = ("Conectada", "SIM-NoContesta", "SIM-Ocupada", "Conectada", "SIM-NoContesta")
RECALL_MAX_CALLS = 3


@dataclass
class RecallCounts:
    store: str
    leads: int = 0
    answered: int = 0
    calls_placed: int = 0
    connected_leads: int = 0
    after_connected: int = 0
    over_max_calls: int = 0
    outside_hours: int = 0
    rung_twice: int = 0
    lost: int = 0
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)

    def row(self) -> list[str]:
        counted = (self.leads, self.answered, self.calls_placed, self.connected_leads, self.after_connected,
                   self.over_max_calls, self.outside_hours, self.rung_twice, self.lost)  # fmt: skip
        return [self.store, *(f"{n:,}" for n in counted), f"{self.seconds:.0f} s"]


RECALL_HEADERS = ["recall stretch", "leads", "answered 200", "calls placed", "leads connected",
                  "calls after a connected one", "leads over max_calls", "calls outside hours",
                  "rung twice for one attempt", "lost", "time"]  # fmt: skip


def recall_table(rows: list[RecallCounts]) -> str:
    cells = [RECALL_HEADERS, *(c.row() for c in rows)]
    widths = [max(len(r[i]) for r in cells) for i in range(len(RECALL_HEADERS))]
    lines = ["| " + " | ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) + " |" for r in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def recall_digits(index: int) -> str:
    return f"569{53000000 + index * 41:08d}"


def run_recall(
    leads: int,
    *,
    store: str,
    seconds: float = 10.0,
    concurrency: int = 16,
    workdir: Path | None = None,
    firestore: FirestoreEmulator | None = None,
    redis: RedisServer | None = None,
    drain_seconds: float = 240.0,
) -> RecallCounts:
    """Spec 11's recall stretch: `leads` distinct leads with mixed call fates through two function
    processes and two sweepers sharing `store` (redis or firestore); outcome lookups and recalls a second
    apart. Then, from the simulator's calls and the records: no call after a connected one, no lead over
    max_calls, none outside the route's hours, none rung twice for one attempt (FormCall's calls for a
    number are exactly the record's `calls`), none lost (every lead answered 200 has a record whose calls
    ended)."""
    if store not in ("redis", "firestore"):
        raise ValueError("the recall stretch shares a store: redis or firestore")
    workdir = workdir or Path(tempfile.mkdtemp(prefix="soak-recall-"))
    counts = RecallCounts(store=store, leads=leads)
    began = time.monotonic()
    config = workdir / "recall.toml"
    # Service hours every day from 00:00 to 23:59: the hours are kept (a call in the last minute would
    # show), and the stretch never waits for an opening.
    config.write_text(
        f"[formcall]\ntimeout_seconds = {TIMEOUT}\n"
        '[defaults.retry]\nschedule = ["1s"]\nmax_age = "2h"\nservice_hours = "mon-sun 00:00-23:59"\n'
        f'[routes.default]\npopup_uuid = "{POPUP}"\nrate_limit = false\n'
        'outcome = { after = "1s", give_up = "1h" }\n'
        f'recall = {{ schedule = ["1s", "2s"], max_calls = {RECALL_MAX_CALLS} }}\n',
        encoding="utf-8",
    )
    own_redis = own_firestore = False
    env = {"FORMCALL_CONFIG": str(config), "FORMCALL_SECURITY_TOKEN": TOKEN}
    if store == "redis":
        if redis is None:
            redis, own_redis = RedisServer().start(), True
        import redis as redis_client

        redis_client.Redis.from_url(redis.url).flushdb()
        env["FORMCALL_STORE_URL"] = redis.url
    else:
        if firestore is None:
            firestore, own_firestore = FirestoreEmulator().start(), True
        firestore.clear()
        warm_emulator(firestore)
        env["FORMCALL_STORE_URL"] = firestore.store_url
        env["FIRESTORE_EMULATOR_HOST"] = firestore.host
    sim = Simulator(tokens=(TOKEN,), quiet=True).start()
    env["FORMCALL_API_URL"] = sim.api_url
    for index in range(leads):
        sim.set_fate(recall_digits(index), status=RECALL_FATES[index % len(RECALL_FATES)])
    instances: list[FunctionProcess] = []
    sweepers: list[SweeperProcess] = []
    answers: dict[int, dict[str, Any]] = {}

    def deliver(index: int) -> None:
        digits = recall_digits(index)
        body = json.dumps({"telefono": f"+{digits}", "nombre": lead_name(index)})
        try:
            response = requests.post(instances[index % 2].url, data=body,
                                     headers={"Content-Type": "application/json"}, timeout=30)  # fmt: skip
            if response.status_code == 200:
                answers[index] = response.json()
        except (requests.RequestException, ValueError):
            pass

    try:
        instances = [FunctionProcess(env, workdir / f"recall-{store}-{i}.log") for i in range(2)]
        start_all(instances)
        sweepers = [SweeperProcess(env, workdir / f"recall-sweeper-{store}-{i}.log").start() for i in range(2)]
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            futures = []
            for index in range(leads):
                delay = started + index * seconds / leads - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                futures.append(pool.submit(deliver, index))
            for future in futures:
                future.result()
        counts.answered = len(answers)
        store_view = open_store(env["FORMCALL_STORE_URL"])
        if not _drain(store_view, instances, [], drain_seconds):
            counts.problems.append(f"leads still due after {drain_seconds:.0f} s of sweeping")
        if not _settled_calls(sim, drain_seconds):
            counts.problems.append(f"FormCall requests still unhandled after {drain_seconds:.0f} s")
        _check_recalls(counts, sim, answers, list(store_view.scan_leads()))
    finally:
        stop_run(sweepers, instances, sim, redis if own_redis else None, firestore if own_firestore else None)
    counts.seconds = time.monotonic() - began
    return counts


def _check_recalls(
    counts: RecallCounts, sim: Simulator, answers: dict[int, dict[str, Any]], records: list[dict[str, Any]]
) -> None:
    from formcall_webhook.states import RetryPolicy, parse_service_hours

    hours = RetryPolicy(service_hours=parse_service_hours("mon-sun 00:00-23:59"), timezone="America/Santiago")
    placed = sim.placed()
    counts.calls_placed = len(placed)
    by_number: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    for call in placed:
        payload = call["payload"] or {}
        by_number["".join(str(payload.get(k) or "") for k in ("country_code", "areacode", "phonenumber"))].append(call)
        received = datetime.fromisoformat(str(call["received_at"])) if call.get("received_at") else None
        if received is not None and not hours.in_service(received.timestamp()):
            counts.outside_hours += 1
    by_id = {r["lead_id"]: r for r in records}
    for index, answer in answers.items():
        record = by_id.get(str(answer.get("lead_id")))
        fate = RECALL_FATES[index % len(RECALL_FATES)]
        calls = (record or {}).get("calls") or []
        if record is None or not calls or record.get("due_at") is not None:
            counts.lost += 1
            counts.problems.append(f"lead {index}: {'no record' if record is None else 'its calls did not end'}")
            continue
        connected = [n for n, c in enumerate(calls) if c.get("connected") is True]
        if connected:
            counts.connected_leads += 1
            counts.after_connected += len(calls) - 1 - connected[0]
        if len(calls) > RECALL_MAX_CALLS:
            counts.over_max_calls += 1
        rung = by_number.get(recall_digits(index), [])
        if len(rung) != len(calls) or len({c["uuid"] for c in rung}) != len(rung):
            counts.rung_twice += 1
            counts.problems.append(f"lead {index}: FormCall placed {len(rung)} calls, the record holds {len(calls)}")
        want = 1 if fate == "Conectada" else RECALL_MAX_CALLS
        if len(calls) != want:
            counts.problems.append(f"lead {index} ({fate}): {len(calls)} calls, {want} expected")
    for name in ("after_connected", "over_max_calls", "outside_hours", "rung_twice", "lost"):
        if getattr(counts, name):
            counts.problems.append(f"{name}: {getattr(counts, name)}")
    if counts.answered != counts.leads:
        counts.problems.append(f"{counts.leads - counts.answered} leads not answered 200")


def main(argv: list[str]) -> int:
    if argv[:1] == ["sweeper"]:
        parser = argparse.ArgumentParser(prog="soak.py sweeper")
        parser.add_argument("--every", type=float, default=0.5)
        return sweeper_main(parser.parse_args(argv[1:]).every)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=2000)
    parser.add_argument("--store", choices=[*STORES, "all"], default="all")
    parser.add_argument("--seconds", type=float, default=60.0, help="the leads arrive evenly over this long")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--notes", type=Path, help="write every lead's note (lost, or uuid_certain: false) here")
    parser.add_argument(
        "--rich-rows", action="store_true", help="/calls/list rows name the customer's number (documented rows do not)"
    )
    parser.add_argument(
        "--unplaced-lost", action="store_true", help="FormCall also loses answers it placed nothing for (see FAULTS)"
    )
    parser.add_argument("--recall-leads", type=int, default=500, help="the recall stretch's leads (0: none)")
    args = parser.parse_args(argv)
    if args.leads == 0:  # the recall stretch alone
        return recall_main(args.recall_leads, tuple(s for s in ("redis", "firestore") if args.store in (s, "all")))
    rows: list[Counts] = []
    skipped: list[str] = []
    for store in STORES if args.store == "all" else (args.store,):
        print(f"soak: {args.leads:,} leads, {store} store ...", flush=True)
        try:
            counts = run(
                args.leads, store=store, seconds=args.seconds, concurrency=args.concurrency, rich_rows=args.rich_rows,
                unplaced_lost=args.unplaced_lost,
            )  # fmt: skip
        except BaseException as err:
            # The fakes skip (pytest's Skipped) when redis-server or the emulator is not installed.
            if type(err).__name__ != "Skipped" or os.environ.get("CI"):
                raise
            skipped.append(f"{store}: {err}")
            continue
        rows.append(counts)
        if args.notes is not None:
            with args.notes.open("a", encoding="utf-8") as out:
                out.writelines(f"{store}: {note}\n" for note in counts.notes)
        print(table([counts]), flush=True)
        for problem in counts.problems[:20]:
            print(f"  PROBLEM {problem}")
        for note in counts.notes[:60]:
            print(f"  NOTE {note}")
        for origin, n in counts.shared_from.most_common():
            print(f"  uuid_certain: false, {origin}: {n}")
    print()
    print(table(rows))
    for line in skipped:
        print(f"skipped {line}")
    failed = any(c.problems for c in rows)
    print("FAILED" if failed else "every lead placed, pending, or failed with a logged reason; none lost or rung twice")
    shared = [s for s in ("redis", "firestore") if args.store in (s, "all")]
    if args.recall_leads and shared:
        failed = bool(recall_main(args.recall_leads, tuple(shared))) or failed
    return 1 if failed else 0


def recall_main(leads: int, stores: tuple[str, ...]) -> int:
    """The recall stretch on each shared store, then its table."""
    rows: list[RecallCounts] = []
    for store in stores:
        print(f"soak: recall stretch, {leads:,} leads, {store} store ...", flush=True)
        try:
            counts = run_recall(leads, store=store)
        except BaseException as err:
            if type(err).__name__ != "Skipped" or os.environ.get("CI"):
                raise
            print(f"skipped {store}: {err}")
            continue
        rows.append(counts)
        for problem in counts.problems[:20]:
            print(f"  PROBLEM {problem}")
    print()
    print(recall_table(rows))
    failed = any(c.problems for c in rows)
    print("FAILED" if failed else "recalls: none after a connected call, none over max_calls, none outside hours, "
          "none rung twice, none lost")  # fmt: skip
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
