"""A clock the test controls, for the function's lead times and the simulator's call lives alike."""

from __future__ import annotations

import time

from formcall_webhook.app import App
from formcall_webhook.simulator import Simulator


class TestClock:
    """Epoch seconds that move only when the test says (plus the real time that passes meanwhile, so
    timeouts and leases measured against it keep their meaning). With a simulator, its clock moves too:
    call lives and call_at follow the same time."""

    __test__ = False  # not a test class

    def __init__(self, simulator: Simulator | None = None, at: float | None = None) -> None:
        self.simulator = simulator
        self.offset = 0.0 if at is None else at - time.time()

    def now(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        """Move on by `seconds`; without a simulator, back too (a lead received "two seconds ago")."""
        if seconds <= 0 and self.simulator is not None:
            return
        self.offset += seconds
        if self.simulator is not None:
            self.simulator.advance_clock(seconds)

    def advance_to(self, when: float) -> None:
        self.advance(when - self.now())


def clock_of(app: App) -> TestClock:
    """The TestClock an App's Runtime was built with."""
    owner = getattr(app.runtime.clock, "__self__", None)
    assert isinstance(owner, TestClock), "build the App with Runtime(environ, clock=TestClock(...).now)"
    return owner
