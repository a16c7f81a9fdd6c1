"""Serve tests/fakes/secret_manager.py's FakeSecretManager in a process of its own.

    python bench/secret_manager_server.py projects/P/secrets/S/versions/latest VALUE

prints ``endpoint http://127.0.0.1:PORT`` once listening and serves until SIGTERM.
"""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path
from types import FrameType

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.fakes.secret_manager import FakeSecretManager


def main(argv: list[str]) -> int:
    name, value = argv
    stop = threading.Event()

    def on_term(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    with FakeSecretManager() as fake:
        fake.set(name.rsplit("/versions/", 1)[0], value)
        print(f"endpoint {fake.endpoint}", flush=True)
        while not stop.wait(0.5):
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
