"""Where the time and the memory go, for a figure of `make bench` that misses its goal.

    python bench/profile.py components        # CPU µs of each piece of a submission, and of HTTP clients
    python bench/profile.py worker            # py-spy (GIL holders) on the serving gunicorn worker at c=8
    python bench/profile.py memory            # tracemalloc: what grows between 1,000 and 20,000 submissions
    python bench/profile.py cold              # cold start: -X importtime of `import main`, then the parts
                                              # of a start in a fresh interpreter (bench/first_request.py)

Not part of `make bench`, and not in requirements-dev.txt: `worker` needs py-spy
(`pip install --target /tmp/prof py-spy==0.4.3`, then `--py-spy /tmp/prof/bin/py-spy`; it needs
ptrace, which root has here). CPU times come from time.process_time(), so other processes on the
machine slow them less than wall-clock times; they are still only comparable within one run.
"""

from __future__ import annotations

import argparse
import collections
import http.client
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import phonenumbers
import requests
import urllib3

from bench.inprocess import ENVIRON, HEADERS, body_reader
from bench.loadgen import Leads, run_load
from bench.procs import BENCH, POPUP, ROOT, TOKEN, ServerProcess, SimulatorProcess, base_env
from bench.run import function_config
from formcall_webhook import config as config_module
from formcall_webhook import guards, keys, mapping, phones
from formcall_webhook.app import App, Request
from formcall_webhook.clients.formcall import FormCallClient
from formcall_webhook.logs import RequestLogger
from formcall_webhook.submission import map_submission, parse_submission

T = TypeVar("T")


def _cpu_us(name: str, fn: Callable[[T], object], items: Sequence[T], warmup: int = 500) -> float:
    for item in items[:warmup]:
        fn(item)
    began = time.process_time()
    for item in items:
        fn(item)
    micros = (time.process_time() - began) / len(items) * 1e6
    print(f"  {name:<52} {micros:9.1f} µs CPU")
    return micros


def components(iterations: int) -> None:
    """Each step of parse + map, and what the rest of App.handle adds, timed alone."""
    route = config_module.load(ENVIRON).routes["default"]
    leads = Leads(8_000_000)
    bodies = [leads.body() for _ in range(iterations)]
    parsed = [parse_submission(route, "POST", HEADERS, b"", raw) for raw in bodies]
    typed = [body["telefono"] for body, _ in parsed]
    numbers = [phones.parse(t, "CL") for t in typed]
    leads_ = [phones.normalize(t, "CL", frozenset({"CL"}), phones.DEFAULT_NUMBER_TYPES) for t in typed]
    print("parse_submission + map_submission, zero-config route, landing-page body:")
    _cpu_us(
        "parse_submission + map_submission",
        lambda r: map_submission(route, *parse_submission(route, "POST", HEADERS, b"", r), HEADERS),
        bodies,
    )
    _cpu_us("parse_submission (JSON body)", lambda r: parse_submission(route, "POST", HEADERS, b"", r), bodies)
    _cpu_us("map_submission", lambda p: map_submission(route, p[0], p[1], HEADERS), parsed)
    _cpu_us("  mapping.template_context", lambda p: mapping.template_context(p[0], p[1], HEADERS, "default"), parsed)

    def finder_all(p: tuple[dict[str, Any], dict[str, Any]]) -> None:
        finder = mapping.Finder(p[0])
        finder.phone()
        finder.adicional()

    _cpu_us("  Finder: walk + phone + adicional (4 finds)", finder_all, parsed)
    _cpu_us(
        "  phones.normalize", lambda t: phones.normalize(t, "CL", frozenset({"CL"}), phones.DEFAULT_NUMBER_TYPES), typed
    )
    _cpu_us("    phones.parse (phonenumbers.parse + is_valid_number)", lambda t: phones.parse(t, "CL"), typed)
    _cpu_us("      phonenumbers.parse", lambda t: phonenumbers.parse(t, "CL"), typed)
    _cpu_us("      phonenumbers.is_valid_number", phonenumbers.is_valid_number, numbers)
    _cpu_us("    phonenumbers.number_type (again)", phonenumbers.number_type, numbers)
    _cpu_us(
        "    phonenumbers.length_of_national_destination_code",
        phonenumbers.length_of_national_destination_code,
        numbers,
    )
    print("the rest of App.handle, per request:")
    _cpu_us("Number.masked (parses the e164 again for its country code)", lambda lead: lead.masked, leads_)
    _cpu_us(
        "phones.mask(e164, country_code) (the code already known)",
        lambda lead: phones.mask(lead.e164, lead.country_code),
        leads_,
    )
    _cpu_us(
        "guards.client_ip, no X-Forwarded-For (ValueError path)", lambda _: guards.client_ip({}, "127.0.0.1"), bodies
    )
    _cpu_us(
        "guards.client_ip, X-Forwarded-For set",
        lambda _: guards.client_ip({"x-forwarded-for": "200.1.2.3"}, ""),
        bodies,
    )
    _cpu_us("guards.prefers_html('application/json')", lambda _: guards.prefers_html("application/json"), bodies)
    logger = RequestLogger(20, None, open(os.devnull, "w"))  # noqa: SIM115 - for the life of this process
    fields = {"route": "default", "outcome": "placed", "status": 200, "uuid": "0" * 32, "phone": "+56*****567"}
    _cpu_us(
        "RequestLogger.write (one JSON line, to /dev/null)",
        lambda _: logger.write("INFO", "m", fields, HEADERS),
        bodies,
    )
    _cpu_us("keys.lead_claim (HMAC of the lead)", lambda lead: keys.lead_claim(lead.e164, POPUP, key=b"k"), leads_)


def clients(iterations: int) -> None:
    """CPU per FormCall call, by HTTP client, against the simulator in its own process."""
    with tempfile.TemporaryDirectory() as tmp:
        sim = SimulatorProcess(Path(tmp)).start()
        try:
            payload = {
                "popup_uuid": POPUP, "country_code": "56", "areacode": "9", "phonenumber": "51234567",
                "security_token": TOKEN, "adicional": {"Nombre": "Ana", "Email": "ana@example.cl"},
            }  # fmt: skip
            client = FormCallClient(sim.api_url, 8)
            session = requests.Session()
            pool = urllib3.HTTPConnectionPool("127.0.0.1", sim.port, maxsize=4)
            conn = http.client.HTTPConnection("127.0.0.1", sim.port, timeout=8)
            path = "/calls/manage/api"
            json_headers = {"Content-Type": "application/json"}

            def raw_http(_: int) -> object:
                conn.request("POST", path, json.dumps(payload).encode(), json_headers)
                return json.loads(conn.getresponse().read())

            calls = list(range(iterations))
            print("one FormCall call (loopback, simulator in its own process), client side:")
            _cpu_us(
                "requests.post, no session (the baseline)",
                lambda _: requests.post(sim.api_url, json=payload, timeout=8).json(),
                calls,
                100,
            )
            _cpu_us(
                "FormCallClient.place_call (requests.Session)", lambda _: client.place_call(dict(payload)), calls, 100
            )
            _cpu_us(
                "requests.Session().post, defaults",
                lambda _: session.post(sim.api_url, json=payload, timeout=8).json(),
                calls,
                100,
            )
            _cpu_us(
                "urllib3.HTTPConnectionPool.urlopen",
                lambda _: json.loads(
                    pool.urlopen(
                        "POST", path, body=json.dumps(payload).encode(), headers=json_headers, retries=False
                    ).data
                ),
                calls,
                100,
            )
            _cpu_us("http.client.HTTPConnection, kept alive", raw_http, calls, 100)
        finally:
            sim.stop()


_FRAME = re.compile(r"(?P<func>.*?) \((?P<file>[^:()]*)(?::\d+)?\)$")
KEY_FRAMES = (
    "ThreadWorker.handle (gthread.py)",
    "Flask.wsgi_app (app.py)",
    "formcall_webhook (main.py)",
    "App.handle (app.py)",
    "_read_limited (app.py)",
    "authenticate (__init__.py)",
    "client_ip (guards.py)",
    "parse_submission (submission.py)",
    "map_submission (submission.py)",
    "normalize (phones.py)",
    "Finder.find (mapping.py)",
    "Number.masked (phones.py)",
    "acquire (once.py)",
    "complete (once.py)",
    "FormCallClient.place_call (formcall.py)",
    "Session.post (sessions.py)",
    "App._dress (app.py)",
    "App._log (app.py)",
    "Response.__init__ (response.py)",
)


def summarize_collapsed(path: Path, top: int) -> None:
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue  # a frame name that held a newline; rare enough to drop
        count = int(count_text)
        total += count
        names = []
        for frame in stack.split(";"):
            match = _FRAME.match(frame)
            names.append(f"{match['func']} ({match['file'].rsplit('/', 1)[-1]})" if match else frame)
        own[names[-1]] += count
        for name in set(names):
            inclusive[name] += count
    print(f"{total} samples holding the GIL in the worker")
    print("key frames, inclusive % of GIL-holding samples:")
    for name in KEY_FRAMES:
        print(f"  {100 * inclusive[name] / total:5.1f}%  {name}")
    print(f"top {top} by inclusive %:")
    for name, count in inclusive.most_common(top):
        print(f"  {100 * count / total:5.1f}%  {name}")
    print("top 20 by own (self) %:")
    for name, count in own.most_common(20):
        print(f"  {100 * count / total:5.1f}%  {name}")


def worker(seconds: float, py_spy: str | None, target: str, top: int, keep: Path | None) -> None:
    spy = py_spy or shutil.which("py-spy")
    if spy is None:
        raise SystemExit(
            "py-spy not found: pip install --target /tmp/prof py-spy==0.4.3; --py-spy /tmp/prof/bin/py-spy"
        )
    with tempfile.TemporaryDirectory() as tmp:
        log_dir = Path(tmp)
        sim = SimulatorProcess(log_dir).start()
        env = {"FORMCALL_API_URL": sim.api_url, "FORMCALL_SECURITY_TOKEN": TOKEN, "FORMCALL_POPUP_UUID": POPUP,
               "FORMCALL_CONFIG": str(function_config(log_dir))}  # fmt: skip
        if target == "function":
            server = ServerProcess("function", ROOT / "main.py", "formcall_webhook", env, log_dir)
        else:
            server = ServerProcess("baseline", ROOT / "bench" / "baseline" / "main.py", "baseline", env, log_dir)
        leads = Leads(9_000_000)
        out = log_dir / "profile.txt"
        try:
            server.start()
            run_load(server.name, server.port, leads, 8, 2.0, 100_000)
            pid = server.worker_pid()
            command = [spy, "record", "-p", str(pid), "-d", str(int(seconds)), "-r", "250", "--gil", "--nonblocking"]
            recorder = subprocess.Popen(  # noqa: S603 - the py-spy the caller named
                [*command, "--format", "raw", "-o", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            time.sleep(0.5)
            result = run_load(server.name, server.port, leads, 8, seconds - 1, 1_000_000)
            recorder.wait(timeout=seconds + 30)
            print(f"{server.name} at c=8 under py-spy: {result.rps} req/s, {result.ok} ok, {result.errors} errors")
            summarize_collapsed(out, top)
            if keep is not None:
                shutil.copy(out, keep)
        finally:
            server.stop()
            sim.stop()


def memory(first: int, total: int, top: int) -> None:
    """App in this process, placing real calls on the simulator; what is allocated and kept."""
    with tempfile.TemporaryDirectory() as tmp:
        sim = SimulatorProcess(Path(tmp)).start()
        try:
            app = App({"FORMCALL_API_URL": sim.api_url, "FORMCALL_SECURITY_TOKEN": TOKEN, "FORMCALL_POPUP_UUID": POPUP,
                       "FORMCALL_CONFIG": str(function_config(Path(tmp)))})  # fmt: skip
            app.logger.stream = open(os.devnull, "w")  # noqa: SIM115 - for the life of this process
            leads = Leads(9_500_000)

            def submit(count: int) -> None:
                for _ in range(count):
                    raw = leads.body()
                    answer = app.handle(
                        Request("POST", "/", {**HEADERS, "content-length": str(len(raw))}, b"", body_reader(raw))
                    )
                    if answer.status != 200:
                        raise AssertionError(f"{answer.status} {answer.body[:200]!r}")

            tracemalloc.start(3)
            submit(first)
            before = tracemalloc.take_snapshot()
            started = time.monotonic()
            done = first
            while done < total:
                step = min(5_000, total - done)
                submit(step)
                done += step
                sim.reset()
                print(
                    f"  {done:,} submissions, traced {tracemalloc.get_traced_memory()[0] / 2**20:.1f} MiB", flush=True
                )
            after = tracemalloc.take_snapshot()
            grown = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
            print(
                f"{total - first:,} submissions in {time.monotonic() - started:.0f} s; "
                f"kept {grown / 2**20:.2f} MiB more"
            )
            store: Any = app.store
            print(f"store: {type(store).__name__} holding {len(store) if hasattr(store, '__len__') else '?'} keys")
            print(f"top {top} lines by growth (traceback of 3 frames):")
            for stat in after.compare_to(before, "traceback")[:top]:
                frames = " <- ".join(f"{Path(f.filename).name}:{f.lineno}" for f in stat.traceback)
                print(f"  {stat.size_diff / 2**20:+7.2f} MiB {stat.count_diff:+8,d} blocks  {frames}")
        finally:
            sim.stop()


_IMPORT_LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \| (\s*)(\S+)")


def importtime(env: dict[str, str], runs: int, top: int) -> None:
    """`python -X importtime -c "import functions_framework, flask; import main"`, `runs` times: what
    main.py adds to hello world's imports (its own, and `App().warm()`'s lazy ones), as the median self
    and cumulative ms of each module; the modules hello world also loads are left out."""
    own: dict[str, list[int]] = collections.defaultdict(list)
    cumulative: dict[str, list[int]] = collections.defaultdict(list)
    for _ in range(runs):
        done = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", "import functions_framework, flask\nimport main"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=True,
        )  # fmt: skip
        after_framework = False
        for line in done.stderr.splitlines():
            if match := _IMPORT_LINE.match(line):
                if after_framework:
                    own[match[4]].append(int(match[1]))
                    cumulative[match[4]].append(int(match[2]))
                # functions_framework's own line, unindented, closes hello world's imports (Flask's among them).
                after_framework = after_framework or (match[3] == "" and match[4] == "functions_framework")
    median = {name: statistics.median(values) / 1000 for name, values in cumulative.items()}
    median_own = {name: statistics.median(values) / 1000 for name, values in own.items()}
    by_package: collections.Counter[str] = collections.Counter()
    for name, ms in median_own.items():
        top_level = name.split(".")[0]
        by_package[name if top_level == "formcall_webhook" else top_level] += ms
    package = sum(ms for name, ms in median_own.items() if name.startswith("formcall_webhook"))
    print(f"-X importtime, what import main adds to functions_framework + flask, median of {runs} runs (ms):")
    print(f"  main cumulative {median.get('main', 0):.1f} ({len(median)} modules); "
          f"formcall_webhook.* self total {package:.1f}")  # fmt: skip
    print(f"  top {top} by cumulative:")
    for name, ms in sorted(median.items(), key=lambda item: -item[1])[:top]:
        print(f"    {ms:7.1f}  (self {median_own[name]:6.1f})  {name}")
    print(f"  top {top} by self, the package's modules one by one, others by top-level package:")
    for name, ms in by_package.most_common(top):
        print(f"    {ms:7.1f}  {name}")


def first_requests(env: dict[str, str], runs: int, show: str, hello: bool) -> None:
    """bench/first_request.py in a fresh interpreter, `runs` times without a profiler (medians of each
    part), then once with cProfile on the parts named in `show`."""
    leads = Leads(9_700_000)

    def child(*extra: str) -> dict[str, Any]:
        done = subprocess.run(  # noqa: S603 - our own interpreter and script
            [sys.executable, str(BENCH / "first_request.py"), leads.body().decode(), *extra],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"first_request.py {' '.join(extra)} exited {done.returncode}: {done.stderr[-3000:]}")
        result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
        return result

    variants = [("hello", ("--hello",)), ("function", ())] if hello else [("function", ())]
    samples: dict[str, dict[str, list[float]]] = {name: collections.defaultdict(list) for name, _ in variants}
    last: dict[str, dict[str, Any]] = {}
    for _ in range(runs):
        for name, extra in variants:
            last[name] = child(*extra)
            for part, ms in last[name]["times_ms"].items():
                samples[name][part].append(ms)
    for name, _ in variants:
        print(f"{name}: first answer {last[name]['first'][0]} {last[name]['first'][1][:80]!r}")
        print(f"  parts, median of {runs} fresh interpreters (ms):")
        for part, values in samples[name].items():
            print(f"    {part:<42} {statistics.median(values):8.1f}   runs {[round(v) for v in values]}")
    function = last["function"]
    print(f"  modules main.py loads besides the package import: {len(function['modules_loaded_by_main'])}")
    print(f"  modules loaded during the first request ({len(function['modules_loaded_by_first_request'])}, "
          "the self-sweep's starting thread included):")  # fmt: skip
    print("    " + " ".join(function["modules_loaded_by_first_request"]))
    for part in show.split(",") if show else []:
        result = child("--profile", part)
        print(f"--- cProfile of {part} ({result['times_ms'][part]:.1f} ms under the profiler) ---")
        print(result["stats"][part])


def cold(runs: int, top: int, show: str, hello: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        sim = SimulatorProcess(Path(tmp)).start()
        try:
            # bench/run.py's environment for the function: zero-config plus its config file.
            env = {**base_env(), "FORMCALL_API_URL": sim.api_url, "FORMCALL_SECURITY_TOKEN": TOKEN,
                   "FORMCALL_POPUP_UUID": POPUP, "FORMCALL_CONFIG": str(function_config(Path(tmp)))}  # fmt: skip
            print(f"load average {os.getloadavg()[0]:.2f}")
            importtime(env, runs, top)
            first_requests(env, runs, show, hello)
            print(f"load average {os.getloadavg()[0]:.2f}")
        finally:
            sim.stop()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    comp = sub.add_parser("components", help="CPU µs per piece of a submission, and per HTTP client")
    comp.add_argument("--iterations", type=int, default=10_000)
    work = sub.add_parser("worker", help="py-spy on the serving worker at concurrency 8")
    work.add_argument("--seconds", type=float, default=20)
    work.add_argument("--py-spy", dest="py_spy")
    work.add_argument("--target", choices=("function", "baseline"), default="function")
    work.add_argument("--top", type=int, default=40)
    work.add_argument("--keep", type=Path, help="also keep py-spy's collapsed stacks in this file")
    mem = sub.add_parser("memory", help="tracemalloc growth between two submission counts")
    mem.add_argument("--first", type=int, default=1_000)
    mem.add_argument("--total", type=int, default=20_000)
    mem.add_argument("--top", type=int, default=12)
    cold_ = sub.add_parser("cold", help="-X importtime of import main; a cold start's parts, timed and profiled")
    cold_.add_argument("--runs", type=int, default=5, help="fresh interpreters of each kind (medians)")
    cold_.add_argument("--top", type=int, default=30)
    cold_.add_argument(
        "--profile", default="load,first_request", help="parts to show under cProfile, comma-separated, or ''"
    )
    cold_.add_argument("--no-hello", dest="hello", action="store_false", help="skip hello world's parts")
    args = parser.parse_args(argv)
    if args.command == "cold":
        cold(args.runs, args.top, args.profile, args.hello)
    elif args.command == "components":
        components(args.iterations)
        clients(max(500, args.iterations // 10))
    elif args.command == "worker":
        worker(args.seconds, args.py_spy, args.target, args.top, args.keep)
    else:
        memory(args.first, args.total, args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
