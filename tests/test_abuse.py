"""Abuse of a public endpoint, against a real functions-framework process: memory, slow bodies, leaks,
echoes and the default rate limits."""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from formcall_webhook import mapping
from formcall_webhook.app import Request, _read_limited, read_stream, route_name
from formcall_webhook.errors import BadRequest, RequestTimeout
from formcall_webhook.simulator import Simulator
from tests.harness import FunctionProcess, start_all, stop_all

POPUP = "e5c98214-d0f6-11e1-8c30-001d09ef4a24"
TOKEN = "formcall-abuse-52e1"
SIMULATOR_TOKENS = (TOKEN,)
API_KEY = "api-key-never-in-templates-9c1f"
# The body timeout main.py gives the reader until the pipeline passes the route's own.
BODY_TIMEOUT = 10.0
# A route's own, shorter body timeout, so the stalled-upload test waits seconds, not ten.
ROUTE_BODY_TIMEOUT = 5.0
# Room a busy machine may need on top of a deadline: a bound still far below what a missed deadline costs.
SLACK = 20.0


@pytest.fixture(scope="module")
def logdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("abuse-logs")


def function(logdir: Path, name: str, env: dict[str, str], config: str) -> FunctionProcess:
    """A process (not started yet) with this config file."""
    path = logdir / f"{name}.toml"
    path.write_text(config, encoding="utf-8")
    return FunctionProcess({**env, "FORMCALL_CONFIG": str(path)}, logdir / f"{name}.log")


# Headers a sender may send that no template may read (test_templates_never_see_credentials_or_signatures).
PRIVATE_HEADERS = {
    "Authorization": "Bearer s3cr3t",
    "Cookie": "session=abc",
    "X-Api-Key": API_KEY,
    "X-HubSpot-Signature-v3": "sig3",
    "X-HubSpot-Signature": "sig1",
    "Webhook-Signature": "v1,abc",
    "Typeform-Signature": "sha256=abc",
    "Tally-Signature": "abc",
    "X-Webflow-Signature": "abc",
}


@pytest.fixture(scope="module")
def processes(logdir: Path, simulator: Simulator) -> Iterator[dict[str, FunctionProcess]]:
    """The module's two processes, started at once.

    "dry", for the tests that place no call: the default route with a short body timeout (8 threads, so
    8 stalled uploads take them all), a token route for the memory test, a route whose templates try to
    read private headers, and a route open to any origin; no rate limit, these tests are not about it.
    "placing", a public route with the default rate limits, placing calls on the simulator."""
    adicional = "\n".join(f"H{i} = \"{{{{ headers['{name.lower()}'] }}}}\"" for i, name in enumerate(PRIVATE_HEADERS))
    config = f"""
[defaults]
popup_uuid = "{POPUP}"
dry_run = true
rate_limit = false
[routes.default]
body_timeout_seconds = {ROUTE_BODY_TIMEOUT}
[routes.headers]
auth = {{ type = "token", secret = "env:API_KEY", header = "X-Api-Key" }}
[routes.headers.adicional]
{adicional}
Visible = "{{{{ headers['x-campaign'] }}}}"
All = "{{{{ headers | tojson }}}}"
[routes.cors]
cors_origins = ["*"]
[routes.memory]
auth = {{ type = "token", secret = "env:API_KEY" }}
"""
    placing = f'[routes.default]\npopup_uuid = "{POPUP}"\ndedupe = {{ key = "{{{{ n }}}}" }}\n'
    started = {
        "dry": function(logdir, "dry", {"THREADS": "8", "API_KEY": API_KEY}, config),
        "placing": function(
            logdir, "per-phone", {"FORMCALL_API_URL": simulator.api_url, "FORMCALL_SECURITY_TOKEN": TOKEN}, placing
        ),
    }
    start_all(started.values())
    yield started
    stop_all(started.values())


@pytest.fixture(scope="module")
def dry(processes: dict[str, FunctionProcess]) -> FunctionProcess:
    return processes["dry"]


@pytest.fixture(scope="module")
def placing(processes: dict[str, FunctionProcess]) -> FunctionProcess:
    return processes["placing"]


# -- memory: keys the sender chooses must not grow the caches without bound --


def _worker_rss_kb(fn: FunctionProcess) -> int:
    """VmRSS of gunicorn's workers: the processes of the function's group other than the master."""
    assert fn.process is not None
    master = fn.process.pid
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == master:
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            status = Path(f"/proc/{entry}/status").read_text()
        except OSError:
            continue
        # Field 5 of stat (after the parenthesised command) is the process group.
        if int(stat.rsplit(")", 1)[1].split()[2]) != master:
            continue
        total += next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
    assert total > 0, "no worker found"
    return total


@pytest.mark.slow
def test_long_field_names_do_not_grow_the_worker(dry: FunctionProcess) -> None:
    # One unique 63 KB key per request; NFKD makes each U+FDFA 18 characters. The token route (dry run).
    filler = "\ufdfa" * 21_000
    fn = dry
    with requests.Session() as session:

        def send(i: int) -> None:
            body = json.dumps({f"{i}{filler}": "x", "phone": "+56 9 6123 4567"}, ensure_ascii=False).encode()
            assert len(body) < 65536
            answer = session.post(
                fn.url + "/memory",
                data=body,
                headers={"Content-Type": "application/json", "X-Webhook-Token": API_KEY},
                timeout=30,
            )
            assert answer.status_code == 200, answer.text

        for i in range(300):
            send(i)
        before = _worker_rss_kb(fn)
        # 1,000 unique 63 KB names: an unbounded cache would hold 63 MB of them, six times the bound below.
        for i in range(300, 1300):
            send(i)
        after = _worker_rss_kb(fn)
    assert after - before < 10 * 1024, f"worker grew from {before} kB to {after} kB"


def test_fold_ignores_names_no_form_uses() -> None:
    assert mapping.fold("Teléfono") == "telefono"
    assert mapping.fold("x" * 65) == ""
    # Short, but NFKD-expanded past any name: folded to nothing, never cached at full length.
    assert mapping.fold("\ufdfa" * 10) == ""
    assert mapping.Finder({"\ufdfa" * 1000: "+56961234567", "telefono": "+56 9 6123 4567"}).phone() == "+56 9 6123 4567"
    assert mapping.Finder({"properties__" + "p" * 200 + "__phone__value": "+56961234567"}).phone() == "+56961234567"


# -- slow bodies: a stalled upload gets 408 and frees its thread --


def _stalled_client(port: int, results: list[tuple[float, bytes]]) -> None:
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=ROUTE_BODY_TIMEOUT + SLACK + 10) as sock:
        sock.sendall(
            b'POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"pho'
        )
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    results.append((time.monotonic() - started, answer))


@pytest.mark.slow
def test_stalled_uploads_get_408_and_do_not_block_other_requests(dry: FunctionProcess) -> None:
    results: list[tuple[float, bytes]] = []
    stalled = [threading.Thread(target=_stalled_client, args=(dry.port, results)) for _ in range(8)]
    for thread in stalled:
        thread.start()
    time.sleep(0.5)  # every worker thread now waits on a stalled body
    # Every thread is taken, so the normal request waits for the route's body deadline to free one:
    # answered within it (and slack), never held for as long as the stalled clients would wait.
    normal = dry.post(json={"phone": "+56 9 6123 4567"}, timeout=ROUTE_BODY_TIMEOUT + SLACK)
    for thread in stalled:
        thread.join(ROUTE_BODY_TIMEOUT + SLACK + 15)
    assert normal.status_code == 200 and normal.json()["dry_run"] is True
    assert len(results) == 8
    for elapsed, answer in results:
        assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
        assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["error"] == "request_timeout"
        # The route's deadline ended each, not the client's patience (monotonic: never early).
        assert ROUTE_BODY_TIMEOUT <= elapsed < ROUTE_BODY_TIMEOUT + SLACK


@pytest.mark.slow
def test_an_oversized_upload_gets_413_without_the_rest_being_read(dry: FunctionProcess) -> None:
    # A 100 MB body declared, 64 KB sent, then nothing: the answer must not wait for (or buffer) the rest.
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", dry.port), timeout=BODY_TIMEOUT) as sock:
        sock.sendall(
            b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100000000\r\n\r\n" + b"x" * 65536
        )
        answer = sock.recv(65536)
    elapsed = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
    assert elapsed < ROUTE_BODY_TIMEOUT  # before the body deadline: the rest was not waited for


class _TrickleStream:
    """A body that arrives one byte per `delay` seconds, as a slow client sends it."""

    def __init__(self, delay: float) -> None:
        self.delay = delay

    def read(self, size: int = -1) -> bytes:
        time.sleep(self.delay)
        return b"x"


class _BrokenStream:
    def read(self, size: int = -1) -> bytes:
        raise ConnectionResetError("peer went away")


def test_read_stream_deadline_without_a_socket() -> None:
    started = time.monotonic()
    with pytest.raises(RequestTimeout):
        read_stream(_TrickleStream(0.05), 10_000, timeout=0.3)  # type: ignore[arg-type]
    assert time.monotonic() - started < 0.3 + SLACK  # the whole body would take 500 s
    assert read_stream(_TrickleStream(0), 5, timeout=5) == b"xxxxx"  # type: ignore[arg-type]
    with pytest.raises(BadRequest):
        read_stream(_BrokenStream(), 10, timeout=5)  # type: ignore[arg-type]


def test_read_stream_deadline_on_a_blocking_socket() -> None:
    left, right = socket.socketpair()
    with left, right:
        right.sendall(b"abc")
        stream = left.makefile("rb", buffering=0)
        started = time.monotonic()
        with pytest.raises(RequestTimeout):
            read_stream(stream, 100, timeout=0.5, sock=left)
        assert 0.4 < time.monotonic() - started < 0.5 + SLACK  # the peer never sends the rest
        assert left.gettimeout() is None  # blocking again, for the 408 to be written whole


def test_read_limited_passes_the_route_timeout() -> None:
    seen: list[tuple[int, ...]] = []

    def reader(limit: int, *timeout: float) -> bytes:
        seen.append((limit, *timeout))
        return b"{}"

    request = Request("POST", "/", {}, b"", reader)
    assert _read_limited(request, 100, 2.5) == b"{}"
    assert _read_limited(request, 100) == b"{}"
    assert seen == [(101, 2.5), (101,)]


# -- echoes and leaks --


@pytest.mark.slow
def test_a_megabyte_path_is_cut_in_the_answer_and_the_log(dry: FunctionProcess) -> None:
    before, size_before = len(dry.log_entries()), dry.log_path.stat().st_size
    answer = requests.post(f"{dry.url}/{'a' * 1_000_000}", json={}, timeout=30)
    near_miss = requests.post(f"{dry.url}/{'default' + 'x' * 100}", json={}, timeout=30)
    entries = dry.log_entries()[before:]
    log_size = dry.log_path.stat().st_size - size_before
    assert answer.status_code == 404 and answer.json()["error"] == "unknown_route"
    assert len(answer.content) < 300
    assert near_miss.status_code == 404
    # Unknown paths share one route value (the metrics' label); the path, cut, stays in the message.
    assert [e["route"] for e in entries] == ["(unknown)", "(unknown)"]
    assert "a" * 63 + "\u2026" in entries[0]["message"] and "a" * 64 not in entries[0]["message"]
    assert "default" + "x" * 56 + "\u2026" in entries[1]["message"]
    assert log_size < 4096


def test_route_name_is_cut_to_64_characters() -> None:
    assert route_name("/") == "default"
    assert route_name("/hubspot/") == "hubspot"
    assert route_name("/" + "r" * 64) == "r" * 64
    assert route_name("/" + "r" * 65) == "r" * 63 + "\u2026"


@pytest.mark.slow
def test_templates_never_see_credentials_or_signatures(dry: FunctionProcess) -> None:
    answer = dry.post("headers", json={"phone": "+56 9 6123 4567"}, headers={**PRIVATE_HEADERS, "X-Campaign": "verano"})
    assert answer.status_code == 200, answer.text
    sent = answer.json()["payload"]["adicional"]
    assert sent["Visible"] == "verano"
    assert set(sent) == {"Visible", "All"}
    for value in PRIVATE_HEADERS.values():
        assert value not in sent["All"]


def test_template_context_drops_private_headers() -> None:
    headers = {"authorization": "a", "x-my-token": "t", "x-hubspot-signature-v4": "s", "x-campaign": "c"}
    context = mapping.template_context({}, {}, headers, "default", {"X-My-Token"})
    assert context["headers"] == {"x-campaign": "c"}


@pytest.mark.slow
def test_wildcard_cors_answers_a_literal_star(dry: FunctionProcess) -> None:
    preflight = requests.options(dry.url + "/cors", headers={"Origin": "null"}, timeout=30)
    post = dry.post("cors", json={"phone": "+56 9 6123 4567"}, headers={"Origin": "null"})
    for answer in (preflight, post):
        assert answer.headers["Access-Control-Allow-Origin"] == "*"
        assert "Access-Control-Allow-Credentials" not in answer.headers


# -- an open, paid call endpoint is rate limited by default --


@pytest.mark.slow
def test_public_route_calls_a_number_at_most_3_times_a_day(placing: FunctionProcess, simulator: Simulator) -> None:
    answers = [placing.post(json={"phone": "+56 9 7123 4567", "n": str(n)}) for n in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert answers[3].json()["error"] == "rate_limited"
    assert placing.post(json={"phone": "+56 9 7123 4568", "n": "other"}).status_code == 200


@pytest.mark.slow
def test_public_route_is_limited_per_ip_by_default(placing: FunctionProcess, simulator: Simulator) -> None:
    def post(ip: str, n: int) -> requests.Response:
        # Google's front end appends the client's address; what comes before it is forged.
        forwarded = f"10.0.{n}.1, {ip}"
        return placing.post(
            json={"phone": f"+56 9 8100 {1000 + n}", "n": f"ip{n}"}, headers={"X-Forwarded-For": forwarded}
        )

    answers = [post("203.0.113.9", n).status_code for n in range(30)]
    limited = post("203.0.113.9", 30)
    other = post("198.51.100.7", 31)
    assert answers == [200] * 30
    assert limited.status_code == 429 and limited.json()["error"] == "rate_limited"
    assert 0 < int(limited.headers["Retry-After"]) <= 3600
    assert other.status_code == 200
