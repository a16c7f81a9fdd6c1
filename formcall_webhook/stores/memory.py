"""memory://: one process's store, for local runs and tests. No round trips; bounded, and never forgetful.

Bounded without forgetting (issue 18, item 4): a claim or a counter is never dropped inside its window,
and a lead still due is never dropped. When the store is full, expired keys go first, then the oldest
finished records (nothing left due); when that is not enough, the new key or lead is refused with
StoreUnavailable (the request is answered 503 and logged), so an abuser can fill the store but never
make it forget a customer's dedupe claim or per-phone count.

No request slows down with the number of kept leads: expiry and the due time are kept in heaps
(`heapq`, O(log n) a write), finished records in write order, so no operation of the request path or
the sweeper's `due_leads` scans every record. `scan_leads` and `leads_by_phone` (the `leads` command)
do scan.

A record is written as given (callers never change a record in place once written: records.changed
makes a new one) and read as a deep copy, so no reader can change what is stored.
"""

from __future__ import annotations

import copy
import heapq
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from typing import Any

from .base import INDEXED, PACE_HORIZON, Admission, Admitted, Finish, Heartbeat, Pace, StoreUnavailable

# Claims and counters kept at most. Full: expired keys go, and a new key is refused (503); a live one
# is never dropped (it may be a dedupe claim or a per-phone count inside its window).
MAX_KEYS = 100_000
# Lead records kept at most, scheduled ones included. Full: the oldest finished record goes first; when
# every record is still due, a new lead is refused (503).
MAX_LEADS = 20_000
# A heap holding this many times more entries than live items is rebuilt (stale entries dropped).
_COMPACT = 4


def _full(what: str) -> StoreUnavailable:
    return StoreUnavailable(
        "The function's store is full; nothing was kept. Try again later.",
        reason=f"store full: memory:// holds its maximum of {what}",
    )


class MemoryStore:
    round_trips = 0  # nothing leaves the process

    def __init__(self, max_keys: int = MAX_KEYS, max_leads: int = MAX_LEADS) -> None:
        self.max_keys = max_keys
        self.max_leads = max_leads
        # key -> (value, expires on the monotonic clock).
        self._data: dict[str, tuple[str, float]] = {}
        # (expires, key): a key's entry is stale when the key now expires at another time or is gone.
        self._expiry: list[tuple[float, str]] = []
        # lead_id -> (the record, the fields the store reads: INDEXED in base.py).
        self._leads: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
        # Records with nothing left due, oldest written first: the first to go when the store is full.
        self._finished: OrderedDict[str, None] = OrderedDict()
        # (due_at, lead_id) and (expires_at, lead_id), both checked against the record when popped.
        self._due: list[tuple[float, str]] = []
        self._lead_expiry: list[tuple[float, str]] = []
        self._optout: set[str] = set()
        self._heartbeat: Heartbeat | None = None
        self._lock = threading.RLock()

    # -- claims and counters --

    def _live(self, key: str, now: float) -> tuple[str, float] | None:
        entry = self._data.get(key)
        if entry is not None and entry[1] <= now:
            del self._data[key]
            return None
        return entry

    def _drop_expired_keys(self, now: float) -> None:
        """Expired keys off the top of the expiry heap: O(log n) each, every key popped at most once."""
        heap = self._expiry
        while heap and heap[0][0] <= now:
            expires, key = heapq.heappop(heap)
            entry = self._data.get(key)
            if entry is not None and entry[1] == expires:
                del self._data[key]

    def _set(self, key: str, value: str, expires: float, now: float) -> None:
        old = self._data.get(key)
        if old is None:
            self._drop_expired_keys(now)
            if len(self._data) >= self.max_keys:
                raise _full(f"{self.max_keys} keys")
        self._data[key] = (value, expires)
        if old is None or old[1] != expires:
            heapq.heappush(self._expiry, (expires, key))
            if len(self._expiry) > _COMPACT * max(len(self._data), 1024):
                self._expiry = [(e, k) for k, (_, e) in self._data.items()]
                heapq.heapify(self._expiry)

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
            # Room for everything the admission writes is made (or refused) before anything is written,
            # so a refusal leaves no claim without its record.
            fresh = {c.key for c in admission.counters} | {k for k, _ in admission.claims}
            if admission.lease is not None:
                fresh.add(admission.lease[0])
            fresh = {k for k in fresh if self._live(k, now) is None}
            if fresh:
                self._drop_expired_keys(now)
                if len(self._data) + len(fresh) > self.max_keys:
                    raise _full(f"{self.max_keys} keys")
            if admission.record is not None:
                self._make_room(admission.record["lead_id"])
            for counter in admission.counters:
                count, left = self.hit(counter.key, counter.window)
                if count > counter.limit:
                    return Admitted(refused="rate_limited", retry_after=left, counter=counter.key)
            slot, later = None, False
            if admission.pace is not None:
                slot, later = self._take_slot(admission.pace, now)
            for key, ttl in admission.claims:
                self._set(key, admission.marker, now + ttl, now)
            if admission.lease is not None:
                self._set(admission.lease[0], admission.marker, now + admission.lease[1], now)
            record = admission.deferred if later and admission.deferred is not None else admission.record
            if record is not None:
                self._write(record)
            return Admitted(slot=slot, later=later)

    def take_slot(self, pace: Pace) -> float:
        with self._lock:
            return self._take_slot(pace, time.monotonic())[0]

    def _take_slot(self, pace: Pace, now: float) -> tuple[float, bool]:
        first = pace.first
        for index in range(first, first + PACE_HORIZON):
            entry = self._live(pace.slot_key(index), now)
            count = int(entry[0]) if entry is not None else 0
            if count < pace.limit:
                self._set(pace.slot_key(index), str(count + 1), now + pace.ttl(index), now)
                return pace.start(index), index > first
        raise _full(f"a pace backlog of {PACE_HORIZON} periods")

    def finish(self, finish: Finish) -> None:
        now = time.monotonic()
        with self._lock:
            if finish.record is None:
                self._forget(finish.lead_id)
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

    def _make_room(self, lead_id: str) -> None:
        """Room for one more record: expired ones go, then the oldest finished; else refused (503)."""
        if lead_id in self._leads or len(self._leads) < self.max_leads:
            return
        self._drop_expired_leads(time.time())
        while len(self._leads) >= self.max_leads and self._finished:
            oldest, _ = self._finished.popitem(last=False)
            del self._leads[oldest]
        if len(self._leads) >= self.max_leads:
            raise _full(f"{self.max_leads} leads, every one still due")

    def _drop_expired_leads(self, now: float) -> None:
        heap = self._lead_expiry
        while heap and heap[0][0] <= now:
            expires, lead_id = heapq.heappop(heap)
            entry = self._leads.get(lead_id)
            if entry is not None and entry[1].get("expires_at") == expires:
                self._forget(lead_id)

    def _forget(self, lead_id: str) -> None:
        self._leads.pop(lead_id, None)
        self._finished.pop(lead_id, None)  # the heaps' entries go stale and are dropped when popped

    def _write(self, record: Mapping[str, Any]) -> None:
        lead_id = record["lead_id"]
        self._make_room(lead_id)
        index = {k: record.get(k) for k in INDEXED}
        old = self._leads.get(lead_id)
        self._leads[lead_id] = (dict(record), index)
        due, expires = index.get("due_at"), index.get("expires_at")
        if due is None:
            self._finished[lead_id] = None
            self._finished.move_to_end(lead_id)
        else:
            self._finished.pop(lead_id, None)
            if old is None or old[1].get("due_at") != due:
                heapq.heappush(self._due, (float(due), lead_id))
        if expires is not None and (old is None or old[1].get("expires_at") != expires):
            heapq.heappush(self._lead_expiry, (float(expires), lead_id))
        if len(self._due) > _COMPACT * max(len(self._leads), 1024):
            self._due = [(float(i["due_at"]), k) for k, (_, i) in self._leads.items() if i.get("due_at") is not None]
            heapq.heapify(self._due)
        if len(self._lead_expiry) > _COMPACT * max(len(self._leads), 1024):
            self._lead_expiry = [
                (float(i["expires_at"]), k) for k, (_, i) in self._leads.items() if i.get("expires_at") is not None
            ]
            heapq.heapify(self._lead_expiry)

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
        """The due heap's top entries: O(k log n) for k due leads, whatever the number of records."""
        with self._lock:
            self._drop_expired_leads(time.time())
            found: list[tuple[float, str]] = []
            seen: set[str] = set()
            heap = self._due
            while heap and heap[0][0] <= now and len(found) < limit:
                due, lead_id = heapq.heappop(heap)
                entry = self._leads.get(lead_id)
                if entry is None or entry[1].get("due_at") != due or lead_id in seen:
                    continue  # stale: the lead was saved with another due time, or is gone
                seen.add(lead_id)
                found.append((due, lead_id))
            for item in found:  # still due until saved: back on the heap
                heapq.heappush(heap, item)
            return [r for _, k in found if (r := self._read(k)) is not None]

    def _live_index(self) -> list[tuple[str, dict[str, Any]]]:
        """Every record that has not expired (the `leads` command's scans)."""
        self._drop_expired_leads(time.time())
        return [(k, i) for k, (_, i) in self._leads.items() if not _expired(i)]

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
            self._forget(lead_id)

    def set_optout(self, phone_hash: str, on: bool) -> None:
        with self._lock:
            if on:
                self._optout.add(phone_hash)
            else:
                self._optout.discard(phone_hash)

    def is_opted_out(self, phone_hash: str) -> bool:
        with self._lock:
            return phone_hash in self._optout

    # -- the sweeper's heartbeat --

    def write_heartbeat(self, heartbeat: Heartbeat) -> None:
        with self._lock:
            self._heartbeat = heartbeat

    def read_heartbeat(self) -> Heartbeat | None:
        with self._lock:
            return self._heartbeat


def _expired(record: Mapping[str, Any]) -> bool:
    expires = record.get("expires_at")
    return expires is not None and expires <= time.time()
