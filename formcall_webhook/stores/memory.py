"""memory://: one process's store, for local runs and tests. No round trips; claims bounded in number.

A record is written as given (callers never change a record in place once written: records.changed
makes a new one) and read as a deep copy, so no reader can change what is stored. The request path
only writes, so it pays for no copy at all.
"""

from __future__ import annotations

import copy
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from typing import Any

from .base import INDEXED, Admission, Admitted, Finish

# Claims and counters kept at most; past it the oldest written goes first (an abuser sending fresh
# Idempotency-Keys must not grow an instance's memory without bound).
MAX_KEYS = 100_000
# Lead records kept at most; past it the oldest finished one (nothing left due) goes first. A lead still
# due is never dropped: memory:// is for one process and local runs, and a shared store has no cap.
MAX_LEADS = 20_000
# Expired keys dropped from the front at each write, at most.
_DROP_PER_WRITE = 2


class MemoryStore:
    round_trips = 0  # nothing leaves the process

    def __init__(self, max_keys: int = MAX_KEYS, max_leads: int = MAX_LEADS) -> None:
        self.max_keys = max_keys
        self.max_leads = max_leads
        # key -> (value, expires on the monotonic clock); oldest write first.
        self._data: OrderedDict[str, tuple[str, float]] = OrderedDict()
        # lead_id -> (the record, the fields the store reads: INDEXED in base.py).
        self._leads: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
        self._optout: set[str] = set()
        self._heartbeat: dict[str, Any] | None = None
        self._lock = threading.RLock()

    # -- claims and counters --

    def _live(self, key: str, now: float) -> tuple[str, float] | None:
        entry = self._data.get(key)
        if entry is not None and entry[1] <= now:
            del self._data[key]
            return None
        return entry

    def _set(self, key: str, value: str, expires: float, now: float) -> None:
        self._data[key] = (value, expires)
        self._data.move_to_end(key)
        # The least recently written keys are the likeliest to have expired: drop a few from the front
        # on every write. Constant work per write, where a sweep of every key cost O(keys) at once.
        for _ in range(_DROP_PER_WRITE):
            oldest = next(iter(self._data))
            if self._data[oldest][1] > now:
                break
            del self._data[oldest]
        while len(self._data) > self.max_keys:
            self._data.popitem(last=False)

    def claim(self, key: str, value: str, ttl: float) -> str | None:
        now = time.monotonic()
        with self._lock:
            entry = self._live(key, now)
            if entry is not None:
                return entry[0]
            self._set(key, value, now + ttl, now)
            return None

    def put(self, key: str, value: str, ttl: float) -> None:
        now = time.monotonic()
        with self._lock:
            self._set(key, value, now + ttl, now)

    def release(self, key: str, value: str) -> None:
        with self._lock:
            entry = self._live(key, time.monotonic())
            if entry is not None and entry[0] == value:
                del self._data[key]

    def replace(self, key: str, expected: str, value: str, ttl: float) -> bool:
        now = time.monotonic()
        with self._lock:
            entry = self._live(key, now)
            if entry is None or entry[0] != expected:
                return False
            self._set(key, value, now + ttl, now)
            return True

    def hit(self, key: str, window: int) -> tuple[int, int]:
        now = time.monotonic()
        with self._lock:
            entry = self._live(key, now)
            count = int(entry[0]) + 1 if entry is not None else 1
            expires = entry[1] if entry is not None else now + window
            self._set(key, str(count), expires, now)
            return count, max(1, math.ceil(expires - now))

    def delete(self, key: str) -> None:
        with self._lock:
            self._data.pop(key, None)

    def __len__(self) -> int:
        return len(self._data)

    # -- the ledger --

    def admit(self, admission: Admission) -> Admitted:
        now = time.monotonic()
        with self._lock:
            if admission.optout is not None and admission.optout in self._optout:
                return Admitted(refused="opted_out")
            held = {}
            for key, _ in admission.claims:
                entry = self._live(key, now)
                if entry is not None:
                    held[key] = entry[0]
            if held:
                return Admitted(held=held)
            for counter in admission.counters:
                count, left = self.hit(counter.key, counter.window)
                if count > counter.limit:
                    return Admitted(refused="rate_limited", retry_after=left, counter=counter.key)
            for key, ttl in admission.claims:
                self._set(key, admission.marker, now + ttl, now)
            if admission.lease is not None:
                self._set(admission.lease[0], admission.marker, now + admission.lease[1], now)
            if admission.record is not None:
                self._write(admission.record)
            return Admitted()

    def finish(self, finish: Finish) -> None:
        now = time.monotonic()
        with self._lock:
            if finish.record is None:
                self._leads.pop(finish.lead_id, None)
            else:
                self.save_lead(finish.record, finish.expected_version)
            for key, ttl in finish.claims:
                entry = self._live(key, now)
                if entry is None or entry[0] != finish.marker:
                    continue
                if finish.answer is None:
                    del self._data[key]
                else:
                    self._set(key, finish.answer, now + ttl, now)
            if finish.lease is not None:
                self.release(finish.lease, finish.marker)

    def _write(self, record: Mapping[str, Any]) -> None:
        index = {k: record.get(k) for k in INDEXED}
        self._leads[record["lead_id"]] = (dict(record), index)
        if len(self._leads) > self.max_leads:
            # Dicts keep insertion order: the first finished ones are the oldest written.
            done = [k for k, (_, i) in self._leads.items() if i.get("due_at") is None]
            for lead_id in done[: len(self._leads) - self.max_leads + self.max_leads // 10]:
                del self._leads[lead_id]

    def _live_index(self) -> list[tuple[str, dict[str, Any]]]:
        """Every record that has not expired (expiry checked here, not left to a sweep)."""
        now = time.time()
        gone = [k for k, (_, i) in self._leads.items() if i.get("expires_at") is not None and i["expires_at"] <= now]
        for lead_id in gone:
            del self._leads[lead_id]
        return [(k, i) for k, (_, i) in self._leads.items()]

    def _read(self, lead_id: str) -> dict[str, Any] | None:
        entry = self._leads.get(lead_id)
        if entry is None or _expired(entry[1]):
            return None
        return copy.deepcopy(entry[0])

    def get_lead(self, lead_id: str) -> dict[str, Any] | None:
        with self._lock:
            return self._read(lead_id)

    def save_lead(self, record: Mapping[str, Any], expected_version: int | None) -> bool:
        with self._lock:
            entry = self._leads.get(record["lead_id"])
            stored = entry[1] if entry is not None and not _expired(entry[1]) else None
            if (stored is None) != (expected_version is None):
                return False
            if stored is not None and stored.get("version") != expected_version:
                return False
            self._write(record)
            return True

    def due_leads(self, now: float, limit: int) -> list[dict[str, Any]]:
        with self._lock:
            due = sorted(
                (i["due_at"], k) for k, i in self._live_index() if i.get("due_at") is not None and i["due_at"] <= now
            )
            return [r for _, k in due[:limit] if (r := self._read(k)) is not None]

    def scan_leads(
        self, *, since: float | None = None, state: str | None = None, route: str | None = None
    ) -> Iterator[dict[str, Any]]:
        with self._lock:
            chosen = sorted(
                (i["received_ts"], k)
                for k, i in self._live_index()
                if (since is None or i["received_ts"] >= since)
                and (state is None or i["state"] == state)
                and (route is None or i["route"] == route)
            )
            found = [r for _, k in chosen if (r := self._read(k)) is not None]
        yield from found

    def leads_by_phone(self, phone_hash: str) -> list[dict[str, Any]]:
        with self._lock:
            chosen = sorted((i["received_ts"], k) for k, i in self._live_index() if i.get("phone_hash") == phone_hash)
            return [r for _, k in chosen if (r := self._read(k)) is not None]

    def delete_lead(self, lead_id: str) -> None:
        with self._lock:
            self._leads.pop(lead_id, None)

    def set_optout(self, phone_hash: str, on: bool) -> None:
        with self._lock:
            if on:
                self._optout.add(phone_hash)
            else:
                self._optout.discard(phone_hash)

    def is_opted_out(self, phone_hash: str) -> bool:
        with self._lock:
            return phone_hash in self._optout

    def write_heartbeat(self, beat: Mapping[str, Any]) -> None:
        with self._lock:
            self._heartbeat = dict(beat)

    def read_heartbeat(self) -> dict[str, Any] | None:
        with self._lock:
            return dict(self._heartbeat) if self._heartbeat is not None else None


def _expired(record: Mapping[str, Any]) -> bool:
    expires = record.get("expires_at")
    return expires is not None and expires <= time.time()
