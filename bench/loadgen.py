"""A closed-loop HTTP load generator for loopback: N threads, one keep-alive connection each.

Every request is a distinct lead (the function dedupes identical ones, which would short-circuit
and flatter it). Numbers are Chilean mobiles +56 9 5XXX XXXX from one counter shared by the whole
benchmark run: national numbers 9[2458]XXXXXXX are all valid in phonenumbers' metadata for CL
(mobile and fixed-line patterns alike, so FIXED_LINE_OR_MOBILE), checked on a sample at start.
"""

from __future__ import annotations

import http.client
import itertools
import json
import statistics
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import phonenumbers

_NAMES = ("Ana", "Benjamín", "Catalina", "Diego", "Fernanda", "Ignacio", "Josefa", "Matías", "Sofía", "Tomás")
_SURNAMES = ("González", "Muñoz", "Rojas", "Díaz", "Pérez", "Soto", "Contreras", "Silva", "Martínez", "Sepúlveda")
_MAX_LEADS = 10_000_000  # 7 digits after "+56 9 5"


class Leads:
    """Distinct, valid lead bodies: {"telefono", "nombre", "email"}, as a landing page posts them."""

    def __init__(self, start: int = 0) -> None:
        self._counter = itertools.count(start)
        self.issued = start

    def number(self, n: int) -> str:
        if not 0 <= n < _MAX_LEADS:
            raise ValueError("out of distinct leads")
        digits = f"{n:07d}"
        return f"+56 9 5{digits[:3]} {digits[3:]}"

    def reserve(self, count: int) -> int:
        """Skip `count` numbers for another process to use; the first of them. Not thread-safe."""
        first = next(self._counter)
        self._counter = itertools.count(first + count)
        self.issued = first + count
        return first

    def body(self) -> bytes:
        # next() on itertools.count is atomic under the GIL: threads share one counter safely.
        n = next(self._counter)
        self.issued = n + 1
        name = f"{_NAMES[n % 10]} {_SURNAMES[(n // 10) % 10]}"
        lead = {"telefono": self.number(n), "nombre": name, "email": f"lead{n}@example.cl"}
        return json.dumps(lead, ensure_ascii=False).encode()

    def check(self, first: int, last: int, samples: int = 200) -> None:
        """phonenumbers.is_valid_number on a spread of the numbers this run will use."""
        step = max(1, (last - first) // samples)
        for n in [*range(first, last, step), last]:
            parsed = phonenumbers.parse(self.number(n), "CL")
            if not phonenumbers.is_valid_number(parsed):
                raise AssertionError(f"lead number {self.number(n)} is not valid")


@dataclass
class RunResult:
    target: str
    concurrency: int
    ok: int
    errors: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    first_error: str | None = None
    worker_cpu_ms: float = float("nan")  # filled in by the caller, who knows the server's pid
    simulator_cpu_ms: float = float("nan")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of unsorted values; NaN when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def _answer_ok(status: int, data: bytes) -> bool:
    # 200 with a uuid, and never the dedupe short cut: every lead must have placed a call.
    return status == 200 and b"uuid" in data and b"duplicate" not in data


def run_load(
    target: str,
    port: int,
    leads: Leads,
    concurrency: int,
    max_seconds: float,
    max_requests: int,
    path: str = "/",
    host: str = "127.0.0.1",
) -> RunResult:
    """Closed loop: each thread sends its next request as soon as the previous one is answered.

    Stops at max_requests sent or max_seconds elapsed, whichever comes first; every request sent
    is waited for. Throughput is answered-OK requests over the wall time from the common start to
    the last thread's end.
    """
    sent = itertools.count()
    latencies: list[list[float]] = [[] for _ in range(concurrency)]
    errors = [0] * concurrency
    first_error: list[str] = []
    barrier = threading.Barrier(concurrency + 1)
    deadline = [0.0]
    headers = {"Content-Type": "application/json", "Accept": "application/json"}

    def worker(index: int) -> None:
        conn = http.client.HTTPConnection(host, port, timeout=30)
        mine = latencies[index]
        try:
            conn.connect()
            barrier.wait()
            while next(sent) < max_requests and time.perf_counter() < deadline[0]:
                body = leads.body()
                began = time.perf_counter()
                try:
                    conn.request("POST", path, body, headers)
                    response = conn.getresponse()
                    data = response.read()
                except (OSError, http.client.HTTPException) as err:
                    errors[index] += 1
                    if not first_error:
                        first_error.append(f"{type(err).__name__}: {err}")
                    conn.close()
                    conn = http.client.HTTPConnection(host, port, timeout=30)
                    continue
                elapsed = time.perf_counter() - began
                if _answer_ok(response.status, data):
                    mine.append(elapsed)
                else:
                    errors[index] += 1
                    if not first_error:
                        first_error.append(f"HTTP {response.status}: {data[:200]!r}")
                if response.will_close:
                    conn.close()
                    conn = http.client.HTTPConnection(host, port, timeout=30)
        finally:
            conn.close()

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(concurrency)]
    for thread in threads:
        thread.start()
    started = time.perf_counter()
    deadline[0] = started + max_seconds
    barrier.wait()
    started = time.perf_counter()
    deadline[0] = started + max_seconds
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    merged = [x for per_thread in latencies for x in per_thread]
    ok = len(merged)
    return RunResult(
        target=target,
        concurrency=concurrency,
        ok=ok,
        errors=sum(errors),
        seconds=round(seconds, 3),
        rps=round(ok / seconds, 1) if seconds > 0 else 0.0,
        p50_ms=round(statistics.median(merged) * 1000, 2) if merged else float("nan"),
        p99_ms=round(percentile(merged, 99) * 1000, 2),
        first_error=first_error[0] if first_error else None,
    )
