"""Google's own Firestore emulator (`gcloud emulators firestore start`) on a free loopback port.

gcloud starts a shell script that starts Java: all three share the process group we create, and `stop`
signals the whole group, since the Java server outlives a stop of gcloud alone.
"""

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
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.fakes.loopback import shut

PROJECT = "demo-formcall"  # a demo- project needs no credentials
_ENV = "FIRESTORE_EMULATOR_HOST"
_START_SECONDS = 90  # Java on two busy cores


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _missing(what: str) -> None:
    # CI has gcloud, Java 17 and the emulator component on its image; a developer machine may not.
    if os.environ.get("CI"):
        pytest.fail(f"the Firestore emulator cannot run here: {what}")
    pytest.skip(f"the Firestore emulator cannot run here: {what}")


class FirestoreEmulator:
    def __init__(self) -> None:
        self.port = _free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.dir = tempfile.mkdtemp(prefix="firestore-emulator-")
        self.log = Path(self.dir) / "emulator.log"
        self._saved_env: str | None = None

    @property
    def store_url(self) -> str:
        return f"firestore://{PROJECT}/(default)"

    def start(self) -> FirestoreEmulator:
        gcloud, java = shutil.which("gcloud"), shutil.which("java")
        if gcloud is None or java is None:
            _missing("gcloud and Java 17 are needed (and `gcloud components install cloud-firestore-emulator`)")
        assert gcloud is not None
        config = Path(self.dir) / "gcloud"
        config.mkdir()
        env = {
            **os.environ,
            "CLOUDSDK_CONFIG": str(config),  # no developer account or project leaks in
            "CLOUDSDK_CORE_DISABLE_PROMPTS": "1",
            "CLOUDSDK_CORE_DISABLE_USAGE_REPORTING": "1",
            "CLOUDSDK_COMPONENT_MANAGER_DISABLE_UPDATE_CHECK": "1",
        }
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [gcloud, "emulators", "firestore", "start", f"--host-port={self.host}"],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        deadline = time.monotonic() + _START_SECONDS
        while time.monotonic() < deadline:
            code = self.process.poll()
            if code is not None:
                tail = self._log_tail()
                self.stop()
                _missing(f"gcloud exited with {code}: {tail}")
            if self._answers():
                self._saved_env = os.environ.get(_ENV)
                os.environ[_ENV] = self.host
                return self
            time.sleep(0.2)
        tail = self._log_tail()
        self.stop()
        raise RuntimeError(f"the Firestore emulator did not answer within {_START_SECONDS}s: {tail}")

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://{self.host}/", timeout=1) as answer:
                return bool(answer.status == 200)
        except (OSError, urllib.error.URLError):
            return False

    def _log_tail(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-800:]
        except OSError:
            return ""

    def clear(self) -> None:
        """Every document of the default database gone (the emulator's own reset endpoint)."""
        request = urllib.request.Request(
            f"http://{self.host}/emulator/v1/projects/{PROJECT}/databases/(default)/documents", method="DELETE"
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert answer.status == 200

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None:
            pgid = process.pid  # start_new_session: the group is led by gcloud's pid
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pgid, signal.SIGKILL)
                process.wait(timeout=10)
            # gcloud is reaped; Java may still be shutting down in the same group.
            deadline = time.monotonic() + 10
            while _group_alive(pgid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if _group_alive(pgid):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pgid, signal.SIGKILL)
        if os.environ.get(_ENV) == self.host:
            if self._saved_env is None:
                del os.environ[_ENV]
            else:
                os.environ[_ENV] = self._saved_env
        shutil.rmtree(self.dir, ignore_errors=True)


def _group_alive(pgid: int) -> bool:
    """Whether a process of the group still runs (zombies waiting for a reaper do not count)."""
    proc = Path("/proc")
    if not proc.is_dir():
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        return True
    for stat in proc.glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if len(fields) > 2 and fields[2] == str(pgid) and fields[0] != "Z":
            return True
    return False


# -- a proxy in front of the emulator that loses requests and answers (issue 16) --

_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_HEADERS, _DATA = 1, 0


class H2Proxy:
    """A loopback TCP proxy for the emulator's gRPC (HTTP/2 without TLS) that counts the RPCs it
    carries (each opens a client stream with a HEADERS frame) and, when armed, harms some of them
    (counted from 1, from the arming on):

    - `lose_answer(n, ...)`: the n-th RPC is forwarded whole to the emulator, which applies it; the
      first frame of its answer is dropped and the connection reset, so the client never learns the
      outcome (a network failing between the commit and its answer);
    - `lose_request(n, ...)`: the n-th RPC never reaches the emulator: the connection is reset before it;
    - `break_stream(n, then)`: the n-th RPC's answer is cut after its first DATA frame (one document
      of a query); `then()` runs (it may stop the emulator) and the proxy refuses every connection after.

    Frames are parsed only to find their stream; nothing is decoded or rewritten (no HPACK state)."""

    def __init__(self, target: str) -> None:
        host, port = target.rsplit(":", 1)
        self.target = (host, int(port))
        self.server = socket.socket()
        self.server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(32)
        self.host = f"127.0.0.1:{self.server.getsockname()[1]}"
        self.rpcs = 0  # RPCs seen since the last arming
        self.harmed = 0  # RPCs harmed since the last arming
        self._how = ""
        self._nths: set[int] = set()
        self._then: Callable[[], None] | None = None
        self._victims: set[tuple[int, int]] = set()  # (connection number, stream id)
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._refusing = False
        self._sockets: list[socket.socket] = []
        self._connections = 0
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def lose_answer(self, *nths: int) -> None:
        self._arm("answer", nths, None)

    def lose_request(self, *nths: int) -> None:
        self._arm("request", nths, None)

    def break_stream(self, nth: int = 1, then: Callable[[], None] | None = None) -> None:
        """nth=0: the first answer of any RPC that comes in more than one DATA frame (a query's)."""
        self._arm("break", (nth,), then)

    def _arm(self, how: str, nths: tuple[int, ...], then: Callable[[], None] | None) -> None:
        with self._lock:
            self._how, self._nths, self._then = how, set(nths), then
            self._victims, self.rpcs, self.harmed = set(), 0, 0

    def _accept(self) -> None:
        self.server.settimeout(0.1)
        while not self._stopped.is_set():
            try:
                client, _ = self.server.accept()
            except OSError:
                continue
            if self._refusing:
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=30)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            client.settimeout(None)
            with self._lock:
                self._connections += 1
                number = self._connections
                self._sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(number, client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(number, upstream, client, False), daemon=True).start()

    def _pump(self, number: int, source: socket.socket, sink: socket.socket, from_client: bool) -> None:
        buffer = b""
        preface = from_client
        data_frames: dict[int, int] = {}  # per stream
        try:
            while True:
                chunk = source.recv(65536)
                if not chunk:
                    break
                buffer += chunk
                out = b""
                if preface:
                    if len(buffer) < len(_PREFACE):
                        continue
                    out, buffer, preface = buffer[: len(_PREFACE)], buffer[len(_PREFACE) :], False
                while len(buffer) >= 9:
                    length = int.from_bytes(buffer[:3], "big")
                    if len(buffer) < 9 + length:
                        break
                    frame, buffer = buffer[: 9 + length], buffer[9 + length :]
                    kind, stream = frame[3], int.from_bytes(frame[5:9], "big") & 0x7FFFFFFF
                    if from_client:
                        if self._seen(number, kind, stream) and self._how == "request":
                            sink.sendall(out)  # the frames before the request's; the request is lost
                            self._harm()
                            return
                        out += frame
                        continue
                    if self._how == "request" or not self._victim(number, stream):
                        out += frame
                        continue
                    if self._how == "break" and (kind != _DATA or not data_frames.get(stream)):
                        data_frames[stream] = data_frames.get(stream, 0) + (kind == _DATA)
                        out += frame
                        continue
                    # The answer is lost here: what came before it goes, then the connection dies.
                    sink.sendall(out)
                    self._harm()
                    return
                if out:
                    sink.sendall(out)
        except OSError:
            pass
        finally:
            shut(source, sink)

    def _seen(self, number: int, kind: int, stream: int) -> bool:
        """Counts a new RPC (a HEADERS frame opening a client stream); whether it is one to harm."""
        if kind != _HEADERS or stream % 2 == 0:
            return False
        with self._lock:
            if not self._nths:
                return False
            self.rpcs += 1
            if self.rpcs not in self._nths:
                return False
            self._nths.discard(self.rpcs)
            self._victims.add((number, stream))
            return True

    def _victim(self, number: int, stream: int) -> bool:
        with self._lock:
            return (number, stream) in self._victims or (self._how == "break" and 0 in self._nths)

    def _harm(self) -> None:
        with self._lock:
            self.harmed += 1
            then, self._then = self._then, None
            if self._how == "break":
                self._refusing = True
                self._nths.clear()
        if then is not None:
            then()

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(timeout=30)
        self.server.close()
        with self._lock:
            sockets, self._sockets = self._sockets, []
        shut(*sockets)
