"""Slow bodies do not starve the threads (issue 18.9): a real functions-framework process, served with
the THREADS deploy.sh gives it for Cloud Run's --concurrency 16, answers a normal request while 16 uploads
stall; 64 stalled uploads (four instances' worth, which Cloud Run never sends to one) are each cut at
the route's body deadline, and the normal request is answered then."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
import requests

from tests.harness import ROOT, FunctionProcess

POPUP = "e5c98214-d0f6-11e1-8c30-001d09ef4a24"
CONCURRENCY = 16
# The `slow` route's body deadline: far longer than any normal answer takes, so a normal request
# answered before it was answered while every stalled upload still held its thread.
SLOW_BODY_TIMEOUT = 40.0
# The `quick` route's: the 64-upload measurement waits for it.
QUICK_BODY_TIMEOUT = 3.0
SLACK = 20.0
_STALLED_HEAD = b'Host: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"pho'


def deployed_threads(concurrency: int) -> int:
    """The THREADS infra/deploy.sh sets on the webhook deployed with this --concurrency."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FORMCALL_", "COVERAGE_"))}
    for name in ("PROJECT", "REGION", "CONFIG", "PYTHON"):
        env.pop(name, None)
    result = subprocess.run(
        ["bash", str(ROOT / "infra" / "deploy.sh"), "--dry-run", "--project", "acme-prod", "--python", sys.executable,
         "--popup-uuid", POPUP, "--store-url", "memory://", "--max-instances", "1", "--token-version", "1",
         "--concurrency", str(concurrency)],
        capture_output=True, text=True, env=env, cwd=ROOT, stdin=subprocess.DEVNULL, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    (line,) = [x for x in result.stdout.splitlines() if x.startswith("gcloud functions deploy formcall-webhook ")]
    found = re.search(r"--set-env-vars THREADS=(\d+),", line)
    assert found, line
    return int(found.group(1))


@pytest.fixture(scope="module")
def threads() -> int:
    return deployed_threads(CONCURRENCY)


@pytest.fixture(scope="module")
def fn(tmp_path_factory: pytest.TempPathFactory, threads: int) -> Iterator[FunctionProcess]:
    logdir = tmp_path_factory.mktemp("threads")
    config = logdir / "f.toml"
    config.write_text(
        f'[defaults]\npopup_uuid = "{POPUP}"\ndry_run = true\nrate_limit = false\n'
        f"[routes.slow]\nbody_timeout_seconds = {SLOW_BODY_TIMEOUT}\n"
        f"[routes.quick]\nbody_timeout_seconds = {QUICK_BODY_TIMEOUT}\n",
        encoding="utf-8",
    )
    process = FunctionProcess({"THREADS": str(threads), "FORMCALL_CONFIG": str(config)}, logdir / "fn.log").start()
    yield process
    process.stop()


def stall(port: int, route: str, count: int) -> list[socket.socket]:
    """`count` uploads that send their headers and 5 of 100 body bytes, then nothing."""
    sockets = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=QUICK_BODY_TIMEOUT + SLACK + 10)
        sock.sendall(f"POST /{route} HTTP/1.1\r\n".encode() + _STALLED_HEAD)
        sockets.append(sock)
    time.sleep(1.0)  # the server has read their headers: each now holds a thread, waiting for its body
    return sockets


def answer_of(sock: socket.socket) -> bytes:
    answer = b""
    while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
        chunk = sock.recv(65536)
        if not chunk:
            break
        answer += chunk
    return answer


def test_deployed_threads_exceed_the_concurrency(threads: int) -> None:
    assert threads >= 2 * CONCURRENCY, threads
    assert deployed_threads(1) > 1


@pytest.mark.slow
def test_16_stalled_uploads_leave_threads_for_a_normal_request(fn: FunctionProcess, threads: int) -> None:
    """Issue 18.9: with THREADS = the concurrency (16), 16 stalled uploads took every thread and a normal
    request waited for their body deadline. Now it is answered while they all still stall."""
    stalled = stall(fn.port, "slow", CONCURRENCY)
    try:
        started = time.monotonic()
        normal = requests.post(f"{fn.url}/slow", json={"phone": "+56 9 6123 4567"}, timeout=SLOW_BODY_TIMEOUT - 5)
        elapsed = time.monotonic() - started
        assert normal.status_code == 200 and normal.json()["dry_run"] is True
        assert elapsed < SLOW_BODY_TIMEOUT - 5
        print(f"16 stalled uploads, THREADS={threads}: a normal request answered in {elapsed * 1000:.0f} ms")
    finally:
        for sock in stalled:
            sock.close()


@pytest.mark.slow
def test_64_stalled_uploads_are_cut_at_the_deadline_and_the_normal_request_answered(
    fn: FunctionProcess, threads: int
) -> None:
    """More stalled uploads than threads (one instance never gets them: Cloud Run caps it at 16 in flight):
    each is cut with 408 at the route's deadline, which frees the threads the normal request then gets."""
    stalled = stall(fn.port, "quick", 64)
    try:
        started = time.monotonic()
        normal = requests.post(f"{fn.url}/quick", json={"phone": "+56 9 6123 4567"}, timeout=QUICK_BODY_TIMEOUT + SLACK)
        elapsed = time.monotonic() - started
        assert normal.status_code == 200 and normal.json()["dry_run"] is True
        answers = [answer_of(sock) for sock in stalled]
    finally:
        for sock in stalled:
            sock.close()
    assert all(a.startswith(b"HTTP/1.1 408 ") for a in answers), [
        a[:80] for a in answers if not a.startswith(b"HTTP/1.1 408")
    ]
    assert all(json.loads(a.split(b"\r\n\r\n", 1)[1])["error"] == "request_timeout" for a in answers)
    print(f"64 stalled uploads, THREADS={threads}: 64 x 408; a normal request answered in {elapsed * 1000:.0f} ms")
