"""The function as it really runs: a functions-framework process on loopback, its stdout kept.

Waits on a real process poll with a deadline a loaded 2-core machine keeps to (START_SECONDS), never a
fixed sleep. A memory:// process sweeps itself only when its test asks (FORMCALL_SWEEP_SECONDS in the
environment given): otherwise its self-sweep waits an hour, so no sweep joins a test that did not ask.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent
_BIN = Path(sys.executable).parent
# How long a process may take to listen, or to stop, on a busy machine: generous, since it is only
# ever reached when something is wrong.
START_SECONDS = 30.0
# memory:// sweeps itself every FORMCALL_SWEEP_SECONDS; a test that does not set it gets the longest
# wait the config allows, so no sweep runs while it does.
NO_SELF_SWEEP = {"FORMCALL_SWEEP_SECONDS": "3600"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def coverage_env() -> dict[str, str]:
    """Coverage measures a child process too when pytest runs under --cov."""
    return {k: v for k, v in os.environ.items() if k.startswith("COVERAGE_")}


class FunctionProcess:
    """`functions-framework --target formcall_webhook` with exactly the environment given (and the
    self-sweep off unless that environment sets FORMCALL_SWEEP_SECONDS)."""

    def __init__(self, env: dict[str, str], log_path: Path, cwd: Path = ROOT, target: str = "formcall_webhook") -> None:
        self.env = env
        self.target = target
        self.log_path = log_path
        self.cwd = cwd
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = START_SECONDS) -> FunctionProcess:
        return self.launch().wait_listening(timeout)

    def launch(self) -> FunctionProcess:
        """Start the process without waiting for it to listen (start_all overlaps several start-ups)."""
        env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": os.environ.get("HOME", tempfile.gettempdir()),
            **NO_SELF_SWEEP,
            **self.env,
        }
        env.update(coverage_env())
        env.setdefault("PYTHONUNBUFFERED", "1")
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child writes to it until stop()
        self.process = subprocess.Popen(
            [
                str(_BIN / "functions-framework"),
                "--target",
                self.target,
                "--source",
                str(ROOT / "main.py"),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
            ],
            cwd=self.cwd,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            # Its own process group: stop() ends gunicorn's worker too, not only the master.
            start_new_session=True,
        )
        log.close()
        return self

    def wait_listening(self, timeout: float = START_SECONDS) -> FunctionProcess:
        assert self.process is not None, "launch() first"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"functions-framework exited: {self.log_path.read_text(errors='replace')[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1.0):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("functions-framework did not start listening in time")

    def terminate(self) -> None:
        """Ask the whole group to end (SIGTERM) without waiting; stop() then waits (stop_all overlaps them)."""
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)

    def stop(self) -> None:
        """SIGTERM to the whole group, then SIGKILL: a worker stuck on a hung peer must not outlive the test."""
        if self.process is None:
            return
        group = self.process.pid
        for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, START_SECONDS)):
            try:
                os.killpg(group, sig)
            except ProcessLookupError:
                # The master is gone already (after terminate()): reap it, and no worker may linger.
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.process.wait(timeout=wait)
                break
            try:
                self.process.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                continue
            # The master is gone; make sure no worker of its group lingers either.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGKILL)
            break
        self.process = None

    def post(self, route: str = "", **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", 30)
        return requests.post(f"{self.url}/{route}", **kwargs)

    def log_entries(self) -> list[dict[str, Any]]:
        """The JSON lines our code wrote (gunicorn's own start-up lines are not JSON)."""
        entries = []
        for line in self.log_path.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("{"):
                try:
                    entries.append(json.loads(line))
                except ValueError:
                    continue
        return entries

    def __enter__(self) -> FunctionProcess:
        # Tests often write `with start(...) as fn:` on an already started process: start only once.
        return self if self.process is not None else self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_all(processes: Iterable[FunctionProcess], timeout: float = START_SECONDS) -> None:
    """Launch every process, then wait for each to listen: their start-ups overlap instead of adding up.
    If one fails to start, every one is stopped."""
    started = list(processes)
    try:
        for process in started:
            process.launch()
        for process in started:
            process.wait_listening(timeout)
    except BaseException:
        for process in started:
            process.stop()
        raise


def stop_all(processes: Iterable[FunctionProcess]) -> None:
    """Stop every process, their shutdowns overlapping: SIGTERM to all first, then wait for each."""
    stopping = list(processes)
    for process in stopping:
        process.terminate()
    for process in stopping:
        process.stop()


def forbidden_in_logs(log_text: str, forbidden: set[str]) -> list[str]:
    """The forbidden strings (tokens, secrets, whole numbers, adicional values) found in a log."""
    # Log lines are ASCII JSON: "Pérez" is written "P\u00e9rez", so look for both spellings.
    return sorted(v for v in forbidden if v and (v in log_text or json.dumps(v)[1:-1] in log_text))
