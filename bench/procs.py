"""Processes the benchmark runs: the simulator, functions-framework servers, the Secret Manager fake.

Every child gets a built-from-scratch environment (no FORMCALL_*, COVERAGE_*, THREADS or WORKERS
leaks in from the caller's shell), writes its output to a log file in the run's temporary folder,
and listens on 127.0.0.1 only.
"""

from __future__ import annotations

import http.client
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
BIN = Path(sys.executable).parent
HOST = "127.0.0.1"
POPUP = "e5c98214-d0f6-11e1-8c30-001d09ef4a24"
TOKEN = "bench-token"  # noqa: S105 - the made-up token the simulator is told to accept
SECRET_NAME = "projects/bench/secrets/formcall-token/versions/latest"  # noqa: S105 - a name, not a value


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def base_env() -> dict[str, str]:
    """What every child starts from: PATH, HOME and locale, nothing that configures the function."""
    env = {name: os.environ[name] for name in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR") if name in os.environ}
    env.setdefault("PATH", "/usr/bin:/bin")
    return env


def _wait_for_line(path: Path, pattern: re.Pattern[str], process: subprocess.Popen[bytes], timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = path.read_text(errors="replace") if path.exists() else ""
        match = pattern.search(text)
        if match:
            return match.group(1)
        if process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited early: {text[-2000:]}")
        time.sleep(0.02)
    raise RuntimeError(f"{process.args!r} did not start in {timeout} s")


def _stop(process: subprocess.Popen[bytes] | None) -> None:
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class SimulatorProcess:
    """The FormCall simulator (`--port 0 --token T --quiet`) in its own process, so its own GIL."""

    def __init__(self, log_dir: Path, backlog: int = 128) -> None:
        self.log_path = log_dir / "simulator.log"
        self.backlog = backlog
        self.process: subprocess.Popen[bytes] | None = None
        self.api_url = ""
        self.port = 0

    def start(self) -> SimulatorProcess:
        # bench/simulator_server.py is `python -m formcall_webhook.simulator` with a larger listen
        # backlog; its docstring says why.
        args = ["--backlog", str(self.backlog), "--port", "0", "--token", TOKEN, "--quiet"]
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and script
                [sys.executable, str(BENCH / "simulator_server.py"), *args],
                cwd=ROOT,
                env=base_env(),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.api_url = _wait_for_line(
            self.log_path, re.compile(r"listening on (http://\S+/calls/manage/api)"), self.process, 20
        )
        self.port = int(self.api_url.split(":")[2].split("/")[0])
        return self

    def reset(self) -> None:
        """Forget the calls received so far, so the simulator's memory stays flat across runs."""
        conn = http.client.HTTPConnection(HOST, self.port, timeout=10)
        try:
            conn.request("POST", "/_sim/reset", b"", {"Content-Type": "application/json"})
            conn.getresponse().read()
        finally:
            conn.close()

    def stop(self) -> None:
        _stop(self.process)
        self.process = None


class SecretManagerProcess:
    """tests/fakes/secret_manager.py's FakeSecretManager in its own process, holding the token."""

    def __init__(self, log_dir: Path) -> None:
        self.log_path = log_dir / "secret_manager.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.endpoint = ""

    def start(self) -> SecretManagerProcess:
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and script
                [sys.executable, str(BENCH / "secret_manager_server.py"), SECRET_NAME, TOKEN],
                cwd=ROOT,
                env=base_env(),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.endpoint = _wait_for_line(self.log_path, re.compile(r"endpoint (http://\S+)"), self.process, 20)
        return self

    def stop(self) -> None:
        _stop(self.process)
        self.process = None


class ServerProcess:
    """`functions-framework --target T --source S` with functions-framework's own defaults:
    gunicorn, 1 worker, gthread, THREADS = 4 x cpu_count, timeout 0."""

    def __init__(self, name: str, source: Path, target: str, env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.source = source
        self.target = target
        self.env = env
        self.log_path = log_dir / f"{name}.log"
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def launch(self) -> float:
        """Start the process without waiting; returns the perf_counter() just before the fork."""
        env = {**base_env(), **self.env}
        with open(self.log_path, "ab") as log:
            started = time.perf_counter()
            self.process = subprocess.Popen(  # noqa: S603 - our venv's functions-framework
                [
                    str(BIN / "functions-framework"),
                    "--target",
                    self.target,
                    "--source",
                    str(self.source),
                    "--host",
                    HOST,
                    "--port",
                    str(self.port),
                ],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return started

    def start(self, timeout: float = 30.0) -> ServerProcess:
        self.launch()
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.log_path.read_text(errors='replace')[-2000:]}")
            try:
                with socket.create_connection((HOST, self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"{self.name} did not listen in {timeout} s")

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def worker_pid(self, timeout: float = 30.0) -> int:
        """The gunicorn worker (the master's only child), which is the process that serves."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            children = child_pids(self.pid)
            if len(children) == 1:
                return children[0]
            time.sleep(0.05)
        raise RuntimeError(f"{self.name}: expected one gunicorn worker under pid {self.pid}")

    def stop(self) -> None:
        _stop(self.process)
        self.process = None


def child_pids(pid: int) -> list[int]:
    children: list[int] = []
    task_dir = Path(f"/proc/{pid}/task")
    for task in task_dir.iterdir() if task_dir.exists() else []:
        try:
            children += [int(p) for p in (task / "children").read_text().split()]
        except OSError:
            continue
    return sorted(set(children))


def listen_overflows() -> int:
    """TcpExt ListenOverflows since boot: connections dropped because an accept queue was full."""
    lines = Path("/proc/net/netstat").read_text().splitlines()
    for names, values in zip(lines[::2], lines[1::2], strict=False):
        if names.startswith("TcpExt:"):
            return int(dict(zip(names.split(), values.split(), strict=True))["ListenOverflows"])
    return 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (/proc/PID/stat utime + stime)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_status_kib(pid: int, field: str) -> int:
    """A /proc/PID/status memory field (VmRSS, VmHWM, ...) in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)
