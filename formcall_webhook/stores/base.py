"""What every store offers: claims and counters (hashed keys), and the lead ledger (records).

A backend implements both protocols in one class, since the request path asks for claims, counters
and the new lead record in one round trip (`admit`) and for the answer in a second one (`finish`):
spec section 8's cost per lead. Records are plain JSON-able dicts; a store reads only the fields named
in `INDEXED` and keeps the rest opaque.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from types import MappingProxyType
from typing import Any, NamedTuple, Protocol

from ..errors import StoreUnavailableError

# The fields of a record a store reads (to index, expire, or compare): the rest is opaque to it.
INDEXED = ("lead_id", "version", "state", "route", "received_ts", "due_at", "expires_at", "phone_hash")


class StoreUnavailable(StoreUnavailableError):
    """The store cannot be reached: answer 503 so the sender retries; never call unguarded."""


def unavailable(err: BaseException) -> StoreUnavailable:
    return StoreUnavailable(
        "The function's store is unreachable; nothing was kept. Try again later.",
        reason=f"store error: {type(err).__name__}",
    )


# The messages to and from a store are NamedTuples: immutable and typed like frozen dataclasses, and built
# with one eval instead of a compiled __init__, __setattr__, __delattr__, __eq__, __hash__ and __repr__
# each, which the webhook's cold start pays for every class it imports (Python 3.11).
class Counter(NamedTuple):
    """One rate-limit count: `key` counted in a fixed window of `window` seconds, at most `limit`."""

    key: str
    window: int
    limit: int


class Pace(NamedTuple):
    """Spec 11: one call on a popup paced at `limit` calls per `period` seconds, counted in slotted counters
    (`key:<slot index>`, one per period): the first slot from `now`'s with room is taken. A slot's counter
    takes at most `limit` writes and is never written again once its period is over, so no counter is a
    hot spot however long the pace runs (Firestore's one write a second per document)."""

    key: str
    period: int
    limit: int
    now: float

    @property
    def first(self) -> int:
        return int(self.now // self.period)

    def slot_key(self, index: int) -> str:
        return f"{self.key}:{index}"

    def ttl(self, index: int) -> float:
        """Kept a period past its own end: read only while it may be the first slot with room."""
        return max(float(self.period), (index + 2) * self.period - self.now)

    def start(self, index: int) -> float:
        return float(index * self.period)


# The most slots a pace looks ahead (a backlog of limit times this many calls on one popup).
PACE_HORIZON = 100_000


class Admission(NamedTuple):
    """What a lead asks the store for, in one atomic step (spec 8: one round trip before FormCall).

    In order: the opt-out list (refused when the number is on it); the claims (when one is held by
    another submission, its value comes back and nothing else is done); the counters (refused when one
    goes over its limit); then every claim is taken with `marker`, the record created and the lease
    taken.
    """

    claims: Sequence[tuple[str, float]]
    marker: str
    record: Mapping[str, Any] | None = None
    counters: Sequence[Counter] = ()
    optout: str | None = None
    lease: tuple[str, float] | None = None
    # Spec 11: the popup's pace. When the slot taken is not `pace.now`'s own, `deferred` is written instead
    # of `record` (the lead not in flight; the lease is taken all the same until the answer is written).
    pace: Pace | None = None
    deferred: Mapping[str, Any] | None = None

    def __repr__(self) -> str:  # the object's own: a tuple's repr would print the lead's record
        return object.__repr__(self)


class Admitted(NamedTuple):
    """What the admission came to: refused and why, or the claims another lead holds and the pace slot."""

    refused: str | None = None  # "rate_limited" or "opted_out"
    retry_after: int = 0
    counter: str = ""  # the key of the counter that went over
    held: Mapping[str, str] = MappingProxyType({})  # claim key -> the value another holds
    # With a pace: the start of the slot taken (epoch seconds); later than the slot of `pace.now` means
    # the lead waits for it (the deferred record was written).
    slot: float | None = None
    later: bool = False

    @property
    def ok(self) -> bool:
        return self.refused is None and not self.held


class Finish(NamedTuple):
    """The step after FormCall answered (spec 8: one write): the record, the claims and the lease.

    `record` replaces the stored one when its version is still `expected_version` (the new record
    carries version + 1); `record=None` deletes the lead (nothing kept). `answer` goes into every
    claim still holding `marker`; `answer=None` releases them.
    """

    lead_id: str
    record: Mapping[str, Any] | None
    expected_version: int
    claims: Sequence[tuple[str, float]]
    marker: str
    answer: str | None
    lease: str | None = None


class Heartbeat(NamedTuple):
    """The last sweep (spec 8, Heartbeat): when it ran (epoch seconds) and its counts."""

    at: float
    counts: Mapping[str, int] = MappingProxyType({})

    def dumps(self) -> str:
        return json.dumps({"at": self.at, "counts": dict(self.counts)}, separators=(",", ":"), sort_keys=True)

    @classmethod
    def loads(cls, raw: str | None) -> Heartbeat | None:
        """None for nothing there or anything that is not a heartbeat."""
        if not raw:
            return None
        try:
            data = json.loads(raw)
            at = float(data["at"])
            counts = {str(k): int(v) for k, v in dict(data.get("counts") or {}).items()}
        except (ValueError, TypeError, KeyError, AttributeError):
            return None
        return cls(at, counts)


# Heartbeats are kept this long after the last sweep wrote one (a store with TTLs forgets them after).
HEARTBEAT_SECONDS = 7 * 86400


class Store(Protocol):
    """Claims and counters: short-lived values under hashed keys (no personal data)."""

    def claim(self, key: str, value: str, ttl: float) -> str | None:
        """Set key to value if absent; None when set, else the value already there."""

    def put(self, key: str, value: str, ttl: float) -> None: ...

    def release(self, key: str, value: str) -> None:
        """Delete key only while it still holds value (a claim of ours, not someone else's)."""

    def replace(self, key: str, expected: str, value: str, ttl: float) -> bool:
        """Set key to value only while it holds expected; whether it did."""

    def hit(self, key: str, window: int) -> tuple[int, int]:
        """Count one event in key's fixed window; the count so far and seconds left in the window."""

    def delete(self, key: str) -> None: ...


class Ledger(Protocol):
    """Lead records (personal data), the due index the sweeper reads, and the opt-out list."""

    def admit(self, admission: Admission) -> Admitted: ...

    def take_slot(self, pace: Pace) -> float:
        """One call of a paced popup outside an admission (the sweeper's attempts and recalls): the start
        of the first slot with room from `pace.now`'s."""

    def finish(self, finish: Finish) -> None: ...

    def get_lead(self, lead_id: str) -> dict[str, Any] | None: ...

    def save_lead(self, record: Mapping[str, Any], expected_version: int | None) -> bool:
        """Write the record when the stored one still has `expected_version` (None: only if absent)."""

    def due_leads(self, now: float, limit: int) -> list[dict[str, Any]]:
        """Records whose `due_at` is at or before `now`, the most overdue first."""

    def scan_leads(
        self, *, since: float | None = None, state: str | None = None, route: str | None = None
    ) -> Iterator[dict[str, Any]]:
        """Every live record received at or after `since`, oldest first."""

    def leads_by_phone(self, phone_hash: str) -> list[dict[str, Any]]: ...

    def delete_lead(self, lead_id: str) -> None: ...

    def set_optout(self, phone_hash: str, on: bool) -> None: ...

    def is_opted_out(self, phone_hash: str) -> bool: ...

    def write_heartbeat(self, heartbeat: Heartbeat) -> None:
        """Record the last sweep's time and counts (spec 8, Heartbeat); the newest write wins."""

    def read_heartbeat(self) -> Heartbeat | None:
        """The last sweep's heartbeat; None when no sweep wrote one (or it is older than a week)."""


class Backend(Store, Ledger, Protocol):
    """A store URL opens one of these."""

    round_trips: int  # how many times it went to its server: make bench reads it
