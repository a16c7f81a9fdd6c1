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
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

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
