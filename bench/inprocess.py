"""The in-process cost of one submission, without the network.

    python bench/inprocess.py [--iterations N] [--warmup N]

prints one JSON object: the time of parse_submission + map_submission (body bytes to FormCall
payload: parse, find the fields, normalize the phone, build the payload) on a landing-page body
with the zero-config route, interleaved in blocks with a naive reference (json.loads,
phonenumbers.parse + is_valid_number, a payload dict); and App.handle end to end with
FORMCALL_DRY_RUN=true (size, auth, parse, map, answer and the JSON log line, written to
/dev/null). Each iteration is a distinct lead. Run in a process of its own so nothing else shares
its interpreter.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import phonenumbers

from bench.loadgen import Leads, percentile
from bench.procs import POPUP, TOKEN
from formcall_webhook import config as config_module
from formcall_webhook.app import App, Request
from formcall_webhook.submission import map_submission, parse_submission

HEADERS = {
    "host": "127.0.0.1:8080",
    "user-agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36",
    "content-type": "application/json",
    "accept": "application/json",
    "origin": "https://acme.cl",
    "x-forwarded-for": "200.1.2.3",
}
ENVIRON = {
    "FORMCALL_API_URL": "http://127.0.0.1:9/calls/manage/api",
    "FORMCALL_SECURITY_TOKEN": TOKEN,
    "FORMCALL_POPUP_UUID": POPUP,
}


def body_reader(raw: bytes) -> Callable[[int], bytes]:
    """Request.read_body for a body already in memory."""

    def read(limit: int, timeout: float | None = None) -> bytes:
        return raw[:limit]

    return read


def _summary(samples_ns: list[int], cpu_ns: list[int]) -> dict[str, Any]:
    """Wall-clock median, p99 and mean; and the thread-CPU-time median, which time slices lost
    to other processes do not inflate (cache and frequency effects of a busy machine remain)."""
    micros = [s / 1000 for s in samples_ns]
    return {
        "iterations": len(micros),
        "median_us": round(statistics.median(micros), 1),
        "p99_us": round(percentile(micros, 99), 1),
        "mean_us": round(statistics.fmean(micros), 1),
        "cpu_median_us": round(statistics.median(cpu_ns) / 1000, 1),
    }


def naive_parse_map(raw: bytes) -> dict[str, Any]:
    """The least a correct mapping does: read the JSON, parse and validate the number, build the payload.

    No field finder, no region or type policy, no split by destination code: a reference that
    moves with the machine's speed exactly as the function does.
    """
    data = json.loads(raw)
    number = phonenumbers.parse(data["telefono"], "CL")
    if not phonenumbers.is_valid_number(number):
        raise ValueError("invalid number")
    return {
        "popup_uuid": POPUP,
        "country_code": str(number.country_code),
        "areacode": "",
        "phonenumber": str(number.national_number),
        "security_token": "",
        "adicional": {"Nombre": data.get("nombre", ""), "Email": data.get("email", "")},
    }


def time_parse_map(iterations: int, warmup: int, leads: Leads, block: int = 500) -> dict[str, Any]:
    """parse_submission + map_submission, and naive_parse_map, in alternating blocks of `block`."""
    config = config_module.load(ENVIRON)
    route = config.routes["default"]
    assert route.phone is None, "expected the zero-config route (no formcall.toml)"
    assert route.adicional is None, "expected the zero-config route (no formcall.toml)"

    def function(raw: bytes) -> None:
        body, query = parse_submission(route, "POST", HEADERS, b"", raw)
        mapped = map_submission(route, body, query, HEADERS)
        assert mapped.payload["areacode"] == "9"

    samples: dict[str, tuple[list[int], list[int]]] = {"function": ([], []), "naive": ([], [])}
    clock, cpu_clock = time.perf_counter_ns, time.thread_time_ns
    done = 0
    while done < warmup + iterations:
        count = min(block, warmup + iterations - done)
        for name, run in (("function", function), ("naive", naive_parse_map)):
            bodies = [leads.body() for _ in range(count)]
            wall, cpu = samples[name]
            for raw in bodies:
                cpu_began = cpu_clock()
                began = clock()
                run(raw)
                elapsed = clock() - began
                cpu_elapsed = cpu_clock() - cpu_began
                if done >= warmup:
                    wall.append(elapsed)
                    cpu.append(cpu_elapsed)
        done += count
    function_summary = _summary(*samples["function"])
    naive_summary = _summary(*samples["naive"])
    return {
        **function_summary,
        "naive": naive_summary,
        "ratio_to_naive": round(function_summary["median_us"] / naive_summary["median_us"], 2),
    }


def speed_index(rounds: int = 5) -> float:
    """Milliseconds for a fixed pure-Python loop (best of `rounds`): how fast this machine is right now."""
    best = float("inf")
    for _ in range(rounds):
        began = time.perf_counter()
        total = 0
        for i in range(1_000_000):
            total += i
        best = min(best, time.perf_counter() - began)
    return round(best * 1000, 1)


def time_handle_dry_run(iterations: int, warmup: int, leads: Leads) -> dict[str, Any]:
    app = App({**ENVIRON, "FORMCALL_DRY_RUN": "true"})
    app.logger.stream = open(os.devnull, "w")  # noqa: SIM115 - lives as long as this process
    bodies = [leads.body() for _ in range(warmup + iterations)]
    samples: list[int] = []
    cpu_samples: list[int] = []
    clock, cpu_clock = time.perf_counter_ns, time.thread_time_ns
    for i, raw in enumerate(bodies):
        request = Request(
            method="POST",
            path="/",
            headers={**HEADERS, "content-length": str(len(raw))},
            query_string=b"",
            read_body=body_reader(raw),
            content_length=len(raw),
            remote_addr="127.0.0.1",
            url="http://127.0.0.1:8080/",
        )
        cpu_began = cpu_clock()
        began = clock()
        answer = app.handle(request)
        elapsed = clock() - began
        cpu_elapsed = cpu_clock() - cpu_began
        if answer.status != 200:
            raise AssertionError(f"dry run answered {answer.status}: {answer.body[:200]!r}")
        if i >= warmup:
            samples.append(elapsed)
            cpu_samples.append(cpu_elapsed)
    return _summary(samples, cpu_samples)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=20_000)
    parser.add_argument("--warmup", type=int, default=2_000)
    parser.add_argument("--lead-start", type=int, default=5_000_000, help="first lead number of the counter")
    parser.add_argument("--config", help="the function's config file (the bench's: rate_limit = false)")
    args = parser.parse_args(argv)
    if args.config:
        ENVIRON["FORMCALL_CONFIG"] = args.config
    leads = Leads(args.lead_start)
    result = {
        "speed_index_ms": speed_index(),
        "parse_map": time_parse_map(args.iterations, args.warmup, leads),
        "handle_dry_run": time_handle_dry_run(args.iterations, args.warmup, leads),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
