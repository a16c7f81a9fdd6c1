"""One cold start in this fresh interpreter, timed in parts; run by `python bench/profile.py cold`.

    python bench/first_request.py BODY_JSON [--profile {none,load,first_request}] [--hello]

The environment is the bench's (bench/run.py: FORMCALL_API_URL of a running simulator, the token,
the popup, FORMCALL_CONFIG). What functions-framework does in the gunicorn master and worker, in one
process and without the fork: import functions_framework and Flask (hello world pays this too), import
the package, run main.py (`create_app`: the rest of its imports, `App()`, `App.warm()`), then the first
POST through the Flask app's WSGI callable and a second one for comparison; with --hello, the same
for bench/hello/main.py (no package import). Prints one JSON object:
the milliseconds of each part, and with --profile the cProfile of that part (the one part profiled, so
the others keep their times). Imports only the standard library before the parts it times.
"""

from __future__ import annotations

import time

STARTED = time.perf_counter()

import sys  # noqa: E402 - after the clock: the interpreter's own start is not ours to count
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
# The project, not bench/, on the path: bench/profile.py would shadow the standard library's profile.
sys.path[0] = str(ROOT)

import argparse  # noqa: E402
import cProfile  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import pstats  # noqa: E402
import threading  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import Any  # noqa: E402

NAME = "formcall_webhook"


def timed(name: str, times: dict[str, float], profiled: str, stats: dict[str, str], fn: Callable[[], Any]) -> Any:
    """Runs fn, recording its wall milliseconds as `name` and the process's CPU milliseconds (every
    thread: other processes' load inflates them less) as `name cpu`."""
    profiler = cProfile.Profile() if profiled == name else None
    began, cpu = time.perf_counter(), time.process_time()
    if profiler is not None:
        profiler.enable()
    try:
        return fn()
    finally:
        if profiler is not None:
            profiler.disable()
        times[name] = round((time.perf_counter() - began) * 1000, 2)
        times[f"{name} cpu"] = round((time.process_time() - cpu) * 1000, 2)
        if profiler is not None:
            out = io.StringIO()
            report = pstats.Stats(profiler, stream=out)
            report.sort_stats("cumulative").print_stats(45)
            report.sort_stats("tottime").print_stats(25)
            stats[name] = out.getvalue()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("body")
    parser.add_argument("--profile", choices=("none", "load", "first_request"), default="none")
    parser.add_argument("--hello", action="store_true", help="bench/hello/main.py instead of main.py")
    args = parser.parse_args(argv)
    source, target = (ROOT / "bench" / "hello" / "main.py", "hello") if args.hello else (ROOT / "main.py", NAME)
    times: dict[str, float] = {}
    stats: dict[str, str] = {}

    def framework() -> Any:
        import flask  # noqa: F401
        import functions_framework

        return functions_framework

    functions_framework = timed("functions_framework_and_flask", times, args.profile, stats, framework)
    before = set(sys.modules)
    if not args.hello:
        timed("package_import", times, args.profile, stats, lambda: __import__("formcall_webhook.app"))
    flask_app = timed(
        "load",
        times,
        args.profile,
        stats,
        lambda: functions_framework.create_app(target, str(source)),
    )
    from werkzeug.test import EnvironBuilder

    def post(body: bytes) -> tuple[int, bytes]:
        environ = EnvironBuilder(
            method="POST",
            path="/",
            data=body,
            headers={"Content-Type": "application/json", "Host": "127.0.0.1"},
        ).get_environ()
        status: list[str] = []

        def start_response(line: str, headers: list[tuple[str, str]], exc_info: object = None) -> None:
            status.append(line)

        chunks = flask_app(environ, start_response)
        try:
            data = b"".join(chunks)
        finally:
            getattr(chunks, "close", lambda: None)()
        return int(status[0].split()[0]), data

    after_load = set(sys.modules)
    first = timed("first_request", times, args.profile, stats, lambda: post(args.body.encode()))
    after_first = set(sys.modules)
    second_body = json.loads(args.body)  # another lead: the last digit moved on by one
    second_body["telefono"] = second_body["telefono"][:-1] + str((int(second_body["telefono"][-1]) + 1) % 10)
    second = timed("second_request", times, "none", stats, lambda: post(json.dumps(second_body).encode()))
    waited = time.perf_counter()
    for thread in threading.enumerate():
        if thread.name == "formcall-self-sweep-start":
            thread.join(30)
    times["self_sweep_start_left_after_second_ms"] = round((time.perf_counter() - waited) * 1000, 2)
    times["script_total"] = round((time.perf_counter() - STARTED) * 1000, 2)
    times["script_total cpu"] = round(time.process_time() * 1000, 2)
    print(
        json.dumps(
            {
                "times_ms": times,
                "first": [first[0], first[1].decode(errors="replace")[:200]],
                "second": [second[0], second[1].decode(errors="replace")[:200]],
                "modules_loaded_by_main": sorted(after_load - before),
                "modules_loaded_by_first_request": sorted(after_first - after_load),
                "stats": stats,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
