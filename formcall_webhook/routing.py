"""Weighted routing (spec 11): nginx's smooth weighted round robin, one per route per instance. Pure.

Each pick adds every popup's weight to its current value, takes the popup with the highest, and takes
the total off it: over any run of consecutive picks each popup's share stays within one pick of its
weight's share (2:1:1 goes a, b, a, c, a, b, a, c, ...), never a coin toss's runs.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence


class SmoothRoundRobin:
    def __init__(self, popups: Sequence[tuple[str, int]]) -> None:
        if not popups:
            raise ValueError("no popups to route to")
        self.popups = tuple(popups)
        self.total = sum(weight for _, weight in popups)
        self._current = [0] * len(popups)
        self._lock = threading.Lock()

    def pick(self) -> str:
        with self._lock:
            best = 0
            for i, (_, weight) in enumerate(self.popups):
                self._current[i] += weight
                if self._current[i] > self._current[best]:
                    best = i
            self._current[best] -= self.total
            return self.popups[best][0]


class Router:
    """The routes' round robins of this instance, made on first use (a new config makes new ones)."""

    def __init__(self) -> None:
        self._robins: dict[tuple[str, tuple[tuple[str, int], ...]], SmoothRoundRobin] = {}
        self._lock = threading.Lock()

    def pick(self, route: str, popups: Sequence[tuple[str, int]]) -> str:
        key = (route, tuple(popups))
        robin = self._robins.get(key)
        if robin is None:
            with self._lock:
                robin = self._robins.setdefault(key, SmoothRoundRobin(popups))
        return robin.pick()


def pool_key(popups: Sequence[tuple[str, int]]) -> str:
    """What a weighted route's default dedupe key names instead of one popup: the popups, sorted."""
    return ",".join(sorted(uuid.lower() for uuid, _ in popups))
