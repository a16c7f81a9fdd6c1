"""memory:// and sqlite:// sweep themselves (spec 8): no Scheduler calls a local run's sweeper.

A module of its own, light to import: main.py starts the self-sweep on a process's first request, and
the sweeper's modules (sweep, followup, outcomes, holidays and zone data, the outcome clients) load on
its thread after its first wait, so they never share the interpreter with a cold start's first requests.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from .errors import Misconfigured
from .runtime import Runtime

if TYPE_CHECKING:
    from .sweep import Sweeper


class SelfSweep:
    """Sweeps every `seconds` on a thread of this process. main.py starts one per process (after a fork,
    the parent's thread is not there); nothing else does, so no test meets one it did not ask for."""

    def __init__(self, runtime: Runtime, seconds: float) -> None:
        self.runtime = runtime
        self.seconds = seconds
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="formcall-self-sweep", daemon=True)

    def start(self) -> SelfSweep:
        self.thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        sweeper: Sweeper | None = None
        while not self._stop.wait(self.seconds):
            try:
                if sweeper is None:
                    from .sweep import Sweeper  # after the first wait: never during the first requests

                    sweeper = Sweeper(self.runtime)
                sweeper.run(budget_seconds=max(1.0, self.seconds * 0.8))
            except Exception as err:  # never let the thread die: say so and go on
                self.runtime.logger.write(
                    "ERROR", "sweep failed", {"outcome": "sweep", "source": "sweep", "reason": type(err).__name__}, {}
                )


def self_sweep(runtime: Runtime) -> SelfSweep | None:
    """The self-sweep of a memory:// or sqlite:// process, started; None for a shared store or a broken config."""
    try:
        config = runtime.config()
    except Misconfigured:
        return None
    if not config.store_url.startswith(("memory://", "sqlite://")):
        return None
    return SelfSweep(runtime, config.sweep_seconds).start()
