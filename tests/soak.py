"""Exactly once under retries: many distinct leads, senders that retry and resend, a faulty FormCall.

`make soak` runs 2,000 leads with the memory store and again with two instances sharing Redis;
tests/test_soak.py runs a small version of the same in `make test`.
"""

from __future__ import annotations

import argparse
import collections
import json
import random
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from formcall_webhook.simulator import Simulator  # noqa: E402 - after the path setup above
from tests.fakes.redis_server import RedisServer  # noqa: E402
from tests.harness import FunctionProcess, forbidden_in_logs  # noqa: E402

POPUP = "e5c98214-d0f6-11e1-8c30-001d09ef4a24"
TOKEN = "soak-token-8e21"
TIMEOUT = 0.5
# FormCall failing in every way the simulator knows, including the two that place the call and
# lose the answer (slow, placed_then_reset): the cases where a naive retry rings twice.
FAULTS: list[dict[str, Any]] = [
    {"kind": "slow", "seconds": TIMEOUT + 0.3},
    {"kind": "placed_then_reset"},
    {"kind": "reset"},
    {"kind": "reset_mid_answer"},
    {"kind": "http500_html"},
    {"kind": "html_200"},
    {"kind": "malformed_json"},
    {"kind": "drip", "seconds": TIMEOUT + 0.5},
    {"kind": "error", "code": 3},
    {"kind": "error", "code": 6},
]
RETRYABLE = {429, 500, 502, 503}
MAX_DELIVERIES = 12


@dataclass
class Counts:
    leads: int = 0
    submissions: int = 0
    retries: int = 0
    resends: int = 0
    duplicates: int = 0
    answered_4xx: int = 0
    gave_up: int = 0
    calls_placed: int = 0
    faults_injected: int = 0
    statuses: collections.Counter[int] = field(default_factory=collections.Counter)
    problems: list[str] = field(default_factory=list)

    def table(self, title: str) -> str:
        rows = [
            ("distinct leads", self.leads),
            ("submissions sent", self.submissions),
            ("retries after 5xx/429", self.retries),
            ("extra resends (20%)", self.resends),
            ("FormCall faults injected", self.faults_injected),
            ("calls placed", self.calls_placed),
            ("duplicates suppressed", self.duplicates),
            ("leads answered 4xx", self.answered_4xx),
            ("leads given up (still 5xx)", self.gave_up),
            ("leads called twice or more", sum(1 for p in self.problems if "calls" in p)),
        ]
        width = max(len(r[0]) for r in rows)
        lines = [title, *(f"  {name:<{width}}  {value:>7}" for name, value in rows)]
        lines.append(f"  statuses: {dict(sorted(self.statuses.items()))}")
        return "\n".join(lines)


def lead_number(index: int) -> str:
    """Distinct valid Chilean mobiles, typed in a few human ways; one lead in twenty mistyped."""
    local = f"{52000000 + index * 37:08d}"
    if index % 20 == 19:
        return f"+56 9 {local[:5]}"
    styles = (f"+56 9 {local[:4]} {local[4:]}", f"9{local}", f"56 9 {local}", f"09 {local[:4]}-{local[4:]}")
    return styles[index % len(styles)]


def run(
    leads: int,
    *,
    store: str = "memory",
    concurrency: int = 16,
    fault_rate: float = 0.10,
    resend_rate: float = 0.20,
    seed: int = 20261128,
    workdir: Path | None = None,
) -> Counts:
    """One soak run; the counts, with `problems` listing every lead not called exactly once or 4xx."""
    workdir = workdir or Path(tempfile.mkdtemp(prefix="soak-"))
    counts = Counts(leads=leads)
    rng = random.Random(seed)
    lock = threading.Lock()
    config = workdir / "formcall.toml"
    config.write_text(
        f'[formcall]\ntimeout_seconds = {TIMEOUT}\n[routes.default]\npopup_uuid = "{POPUP}"\n', encoding="utf-8"
    )
    redis: RedisServer | None = RedisServer().start() if store == "redis" else None
    sim = Simulator(tokens=(TOKEN,), quiet=True).start()
    sim.set_fault_rate(fault_rate, FAULTS, seed=seed)
    env = {"FORMCALL_CONFIG": str(config), "FORMCALL_API_URL": sim.api_url, "FORMCALL_SECURITY_TOKEN": TOKEN}
    if redis is not None:
        env["FORMCALL_STORE_URL"] = redis.url
    # With Redis, two instances behind one URL, as Cloud Functions scales out.
    instances = [FunctionProcess(env, workdir / f"soak-{store}-{i}.log").start() for i in range(2 if redis else 1)]
    final: dict[int, tuple[int, dict[str, Any]]] = {}

    def deliver(index: int) -> None:
        session = requests.Session()
        body = json.dumps({"telefono": lead_number(index), "nombre": f"Lead {index}"})
        with lock:
            resend = rng.random() < resend_rate
        first_uuid: str | None = None
        sends = 0
        while sends < MAX_DELIVERIES:
            instance = instances[sends % len(instances)]
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
                if answer.get("duplicate"):
                    counts.duplicates += 1
            if status in RETRYABLE or status == 599:
                with lock:
                    counts.retries += 1
                # As HubSpot and Zapier do: wait (Retry-After, kept short here) and send it again.
                wait = float(response.headers.get("Retry-After", "1")) if status != 599 else 1.0
                time.sleep(min(wait, 3.0) * 0.5 + 0.05)
                continue
            if status < 300 and resend and first_uuid is None:
                # A sender that delivers the same lead again although it was answered.
                first_uuid = answer.get("uuid")
                with lock:
                    counts.resends += 1
                continue
            if first_uuid is not None and answer.get("uuid") != first_uuid:
                with lock:
                    counts.problems.append(f"lead {index}: resend answered another uuid")
            break
        final[index] = (status, answer)

    try:
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            list(pool.map(deliver, range(leads)))
        time.sleep(TIMEOUT + 1)  # let slow faults finish placing what they will
        calls = sim.placed()
        counts.calls_placed = len(calls)
        counts.faults_injected = sum(1 for c in sim.calls() if c.get("fault"))
        per_number = collections.Counter(
            c["payload"]["country_code"] + c["payload"]["areacode"] + c["payload"]["phonenumber"] for c in calls
        )
        for index in range(leads):
            local = f"{52000000 + index * 37:08d}"
            placed = per_number.get(f"569{local}", 0)
            status, _ = final.get(index, (0, {}))
            if 400 <= status < 500 and status != 429:
                counts.answered_4xx += 1
                if placed:
                    counts.problems.append(f"lead {index}: answered {status} but {placed} calls placed")
            elif status >= 500 or status in (0, 429):
                counts.gave_up += 1
                if placed > 1:
                    counts.problems.append(f"lead {index}: {placed} calls placed")
            elif placed != 1:
                counts.problems.append(f"lead {index}: answered {status} with {placed} calls placed")
        logs = "\n".join(p.log_path.read_text(errors="replace") for p in instances)
        numbers = {f"569{52000000 + i * 37:08d}" for i in range(leads)}
        leaked = forbidden_in_logs(logs, {TOKEN, *numbers})
        if leaked or "Traceback" in logs:
            counts.problems.append(f"logs leak {len(leaked)} values or hold a traceback")
    finally:
        for instance in instances:
            instance.stop()
        sim.stop()
        if redis is not None:
            redis.stop()
    return counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--leads", type=int, default=2000)
    parser.add_argument("--store", choices=["memory", "redis", "both"], default="both")
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    failed = False
    for store in ("memory", "redis") if args.store == "both" else (args.store,):
        started = time.monotonic()
        counts = run(args.leads, store=store, concurrency=args.concurrency)
        print(counts.table(f"soak, {store} store, {time.monotonic() - started:.0f} s"))
        for problem in counts.problems[:20]:
            print(f"  PROBLEM {problem}")
        failed = failed or bool(counts.problems)
    print("every lead called exactly once or answered 4xx" if not failed else "FAILED")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
