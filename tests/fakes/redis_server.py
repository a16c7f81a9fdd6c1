"""A real redis-server on a free loopback port, for as long as a test needs it; and a proxy in front of
it that loses requests or answers."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

import pytest

from tests.fakes.loopback import shut


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RedisServer:
    def __init__(self) -> None:
        self.port = _free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.dir = tempfile.mkdtemp(prefix="redis-")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        binary = shutil.which("redis-server")
        if binary is None:
            # CI installs it (.ci/run); a developer machine without it skips, CI never does.
            if os.environ.get("CI"):
                pytest.fail("redis-server is not installed; .ci/run should have installed it")
            pytest.skip("redis-server is not installed (apt-get install redis-server)")
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", self.dir, "--protected-mode", "yes"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its own process group, ended whole by stop()
        )  # fmt: skip
        deadline = time.monotonic() + 30  # a loaded machine may be slow to start anything
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=30)
        shutil.rmtree(self.dir, ignore_errors=True)


class LossyProxy:
    """A loopback TCP proxy in front of redis-server. Armed, it counts the chunks it carries from the
    moment of arming (counted from 1; a redis-py command or reply is one chunk) and harms some:

    - `lose_answer(n, ...)`: the n-th reply from the server (the command was carried out) is dropped
      and the connection reset, so the client never learns the outcome;
    - `lose_request(n, ...)`: the n-th command from the client never reaches the server; the
      connection is reset instead."""

    def __init__(self, port: int) -> None:
        self.port_to = port
        self.server = socket.socket()
        self.server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(32)
        self.port = self.server.getsockname()[1]
        self.harmed = 0
        self._how = ""
        self._nths: set[int] = set()
        self._seen = 0
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._sockets: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def lose_answer(self, *nths: int) -> None:
        self._arm("answer", nths)

    def lose_request(self, *nths: int) -> None:
        self._arm("request", nths)

    def _arm(self, how: str, nths: tuple[int, ...]) -> None:
        with self._lock:
            self._how, self._nths, self._seen, self.harmed = how, set(nths), 0, 0

    def _accept(self) -> None:
        self.server.settimeout(0.1)
        while not self._stopped.is_set():
            try:
                client, _ = self.server.accept()
            except OSError:
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.port_to), timeout=30)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            client.settimeout(None)
            with self._lock:
                self._sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, "request"), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, "answer"), daemon=True).start()

    def _victim(self, direction: str) -> bool:
        with self._lock:
            if not self._nths or direction != self._how:
                return False
            self._seen += 1
            if self._seen not in self._nths:
                return False
            self._nths.discard(self._seen)
            self.harmed += 1
            return True

    def _pump(self, source: socket.socket, sink: socket.socket, direction: str) -> None:
        try:
            while chunk := source.recv(65536):
                if self._victim(direction):
                    return  # lost: the connection is reset below
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            shut(source, sink)

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(timeout=30)
        self.server.close()
        with self._lock:
            sockets, self._sockets = self._sockets, []
        shut(*sockets)
