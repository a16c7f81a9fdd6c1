"""sqlite://PATH: one file on one machine, shared by every process that opens it (`make run` and the
`leads` command in a second shell). The standard library's sqlite3, no server.

`sqlite://.formcall/leads.db` is relative to the current directory, `sqlite:///var/lib/formcall.db`
absolute. Every operation that writes is one `BEGIN IMMEDIATE` transaction: SQLite's own file lock
lets one writer at a time in, across threads and processes, so two sweepers never both take a lease
and two submissions never both take a claim. WAL mode lets readers read meanwhile. Times are wall-clock
epoch seconds, since several processes compare them. Not for Cloud Functions: an instance's disk is its
own and goes with it (use firestore:// there).
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

from .base import (
    HEARTBEAT_SECONDS,
    INDEXED,
    PACE_HORIZON,
    Admission,
    Admitted,
    Finish,
    Heartbeat,
    Pace,
    StoreUnavailable,
    unavailable,
)

T = TypeVar("T")
SCHEME = "sqlite://"
_HEARTBEAT = "formcall:heartbeat"
BUSY_TIMEOUT_MS = 10_000  # how long a writer waits for another's transaction (they last milliseconds)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL, expires REAL NOT NULL);
CREATE TABLE IF NOT EXISTS leads (
  lead_id TEXT PRIMARY KEY, version INTEGER, state TEXT, route TEXT, received_ts REAL, due_at REAL,
  expires_at REAL, phone_hash TEXT, record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS leads_due ON leads (due_at) WHERE due_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS leads_received ON leads (received_ts);
CREATE INDEX IF NOT EXISTS leads_phone ON leads (phone_hash);
CREATE TABLE IF NOT EXISTS optout (phone_hash TEXT PRIMARY KEY);
"""

_INSERT = (
    "INSERT OR REPLACE INTO leads (lead_id, version, state, route, received_ts, due_at, expires_at, phone_hash, record)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
assert INDEXED == ("lead_id", "version", "state", "route", "received_ts", "due_at", "expires_at", "phone_hash")
# Expired claims, counters and records are skipped by every read, and deleted every this many writes.
_PURGE_EVERY = 200


def path_of(url: str) -> Path:
    """The database file a sqlite:// URL names; ValueError when it names none."""
    if not url.startswith(SCHEME):
        raise ValueError(f"not a sqlite:// URL: {url!r}")
    path = url[len(SCHEME) :].split("?", 1)[0]
    if not path or path.endswith("/"):
        raise ValueError("sqlite:// needs a file: sqlite://.formcall/leads.db or sqlite:///abs/path.db")
    return Path(path)


class SqliteStore:
    """Claims, counters, the ledger and the opt-out list in one SQLite file."""

    def __init__(self, url: str, timeout: float = 8.0) -> None:
        self.url = url
        self.round_trips = 0  # nothing leaves the machine
        self._timeout = timeout
        self._local = threading.local()
        self._ready = False
        self._ready_lock = threading.Lock()
        self._writes = 0

    # -- connections: one per thread and process (a forked child opens its own) --

    def _connection(self) -> sqlite3.Connection:
        pid = os.getpid()
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None or getattr(self._local, "pid", None) != pid:
            try:
                path = path_of(self.url)
            except ValueError as err:
                raise sqlite3.OperationalError(str(err)) from err
            path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                                   check_same_thread=True)  # fmt: skip
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            self._local.conn, self._local.pid = conn, pid
            if not self._ready:
                with self._ready_lock:
                    if not self._ready:
                        conn.executescript(_SCHEMA)
                        self._ready = True
        return conn

    def _run(self, work: Callable[[sqlite3.Connection, float], T], write: bool = True) -> T:
        """`work` in one transaction (BEGIN IMMEDIATE when it writes: the write lock from the start)."""
        try:
            conn = self._connection()
            conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                now = time.time()
                result = work(conn, now)
                if write:
                    self._writes += 1
                    if self._writes % _PURGE_EVERY == 0:
                        self._purge(conn, now)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return result
        except (sqlite3.Error, OSError) as err:
            raise unavailable(err) from err

    # -- claims and counters --

    @staticmethod
    def _get(conn: sqlite3.Connection, key: str, now: float) -> tuple[str, float] | None:
        row = conn.execute("SELECT value, expires FROM kv WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        if row[1] <= now:
            conn.execute("DELETE FROM kv WHERE key = ?", (key,))
            return None
        return str(row[0]), float(row[1])

    @staticmethod
    def _set(conn: sqlite3.Connection, key: str, value: str, expires: float) -> None:
        conn.execute("INSERT OR REPLACE INTO kv (key, value, expires) VALUES (?, ?, ?)", (key, value, expires))

    def claim(self, key: str, value: str, ttl: float) -> str | None:
        def work(conn: sqlite3.Connection, now: float) -> str | None:
            held = self._get(conn, key, now)
            if held is not None:
                return held[0]
            self._set(conn, key, value, now + ttl)
            return None

        return self._run(work)

    def put(self, key: str, value: str, ttl: float) -> None:
        self._run(lambda conn, now: self._set(conn, key, value, now + ttl))

    def release(self, key: str, value: str) -> None:
        self._run(lambda conn, now: conn.execute("DELETE FROM kv WHERE key = ? AND value = ?", (key, value)))

    def replace(self, key: str, expected: str, value: str, ttl: float) -> bool:
        def work(conn: sqlite3.Connection, now: float) -> bool:
            held = self._get(conn, key, now)
            if held is None or held[0] != expected:
                return False
            self._set(conn, key, value, now + ttl)
            return True

        return self._run(work)

    def _hit(self, conn: sqlite3.Connection, key: str, window: int, now: float) -> tuple[int, int]:
        held = self._get(conn, key, now)
        count = int(held[0]) + 1 if held is not None else 1
        expires = held[1] if held is not None else now + window
        self._set(conn, key, str(count), expires)
        return count, max(1, math.ceil(expires - now))

    def hit(self, key: str, window: int) -> tuple[int, int]:
        return self._run(lambda conn, now: self._hit(conn, key, window, now))

    def delete(self, key: str) -> None:
        self._run(lambda conn, now: conn.execute("DELETE FROM kv WHERE key = ?", (key,)))

    # -- the ledger --

    @staticmethod
    def _write(conn: sqlite3.Connection, record: Mapping[str, Any]) -> None:
        index = [record.get(k) for k in INDEXED]
        conn.execute(_INSERT, (*index, json.dumps(record, ensure_ascii=False, separators=(",", ":"))))

    @staticmethod
    def _version(conn: sqlite3.Connection, lead_id: str, now: float) -> tuple[bool, Any]:
        """Whether a live record is stored, and its version."""
        row = conn.execute("SELECT version, expires_at FROM leads WHERE lead_id = ?", (lead_id,)).fetchone()
        if row is None or (row[1] is not None and row[1] <= now):
            return False, None
        return True, row[0]

    def _save(self, conn: sqlite3.Connection, record: Mapping[str, Any], expected: int | None, now: float) -> bool:
        stored, version = self._version(conn, record["lead_id"], now)
        if stored != (expected is not None) or (stored and version != expected):
            return False
        self._write(conn, record)
        return True

    def admit(self, admission: Admission) -> Admitted:
        def work(conn: sqlite3.Connection, now: float) -> Admitted:
            if (
                admission.optout is not None
                and conn.execute("SELECT 1 FROM optout WHERE phone_hash = ?", (admission.optout,)).fetchone()
            ):
                return Admitted(refused="opted_out")
            held = {}
            for key, _ in admission.claims:
                found = self._get(conn, key, now)
                if found is not None:
                    held[key] = found[0]
            if held:
                return Admitted(held=held)
            for counter in admission.counters:
                count, left = self._hit(conn, counter.key, counter.window, now)
                if count > counter.limit:
                    return Admitted(refused="rate_limited", retry_after=left, counter=counter.key)
            slot, later = None, False
            if admission.pace is not None:
                slot, later = self._take_slot(conn, admission.pace, now)
            for key, ttl in admission.claims:
                self._set(conn, key, admission.marker, now + ttl)
            if admission.lease is not None:
                self._set(conn, admission.lease[0], admission.marker, now + admission.lease[1])
            record = admission.deferred if later and admission.deferred is not None else admission.record
            if record is not None:
                self._write(conn, record)
            return Admitted(slot=slot, later=later)

        return self._run(work)

    def take_slot(self, pace: Pace) -> float:
        return self._run(lambda conn, now: self._take_slot(conn, pace, now))[0]

    def _take_slot(self, conn: sqlite3.Connection, pace: Pace, now: float) -> tuple[float, bool]:
        first = pace.first
        for index in range(first, first + PACE_HORIZON):
            held = self._get(conn, pace.slot_key(index), now)
            count = int(held[0]) if held is not None else 0
            if count < pace.limit:
                self._set(conn, pace.slot_key(index), str(count + 1), now + pace.ttl(index))
                return pace.start(index), index > first
        raise StoreUnavailable("The pace's backlog is too long.", reason=f"pace backlog over {PACE_HORIZON} periods")

    def finish(self, finish: Finish) -> None:
        def work(conn: sqlite3.Connection, now: float) -> None:
            if finish.record is None:
                conn.execute("DELETE FROM leads WHERE lead_id = ?", (finish.lead_id,))
            else:
                self._save(conn, finish.record, finish.expected_version, now)
            for key, ttl in finish.claims:
                found = self._get(conn, key, now)
                if found is None or found[0] != finish.marker:
                    continue
                if finish.answer is None:
                    conn.execute("DELETE FROM kv WHERE key = ?", (key,))
                else:
                    self._set(conn, key, finish.answer, now + ttl)
            if finish.lease is not None:
                conn.execute("DELETE FROM kv WHERE key = ? AND value = ?", (finish.lease, finish.marker))

        self._run(work)

    def get_lead(self, lead_id: str) -> dict[str, Any] | None:
        found = self._select("lead_id = ?", (lead_id,))
        return found[0] if found else None

    def save_lead(self, record: Mapping[str, Any], expected_version: int | None) -> bool:
        return self._run(lambda conn, now: self._save(conn, record, expected_version, now))

    def _select(
        self, where: str, args: tuple[Any, ...], order: str = "received_ts", limit: int = -1
    ) -> list[dict[str, Any]]:
        # `where` and `order` are this module's own clauses; every value is a parameter.
        sql = f"SELECT record FROM leads WHERE ({where}) AND (expires_at IS NULL OR expires_at > ?) "  # noqa: S608
        sql += f"ORDER BY {order}, lead_id LIMIT ?"

        def work(conn: sqlite3.Connection, now: float) -> list[dict[str, Any]]:
            rows = conn.execute(sql, (*args, now, limit)).fetchall()
            return [json.loads(row[0]) for row in rows]

        return self._run(work, write=False)

    def due_leads(self, now: float, limit: int) -> list[dict[str, Any]]:
        return self._select("due_at IS NOT NULL AND due_at <= ?", (now,), order="due_at", limit=limit)

    def scan_leads(
        self, *, since: float | None = None, state: str | None = None, route: str | None = None
    ) -> Iterator[dict[str, Any]]:
        clauses, args = ["1"], []
        for clause, value in (("received_ts >= ?", since), ("state = ?", state), ("route = ?", route)):
            if value is not None:
                clauses.append(clause)
                args.append(value)
        yield from self._select(" AND ".join(clauses), tuple(args))

    def leads_by_phone(self, phone_hash: str) -> list[dict[str, Any]]:
        return self._select("phone_hash = ?", (phone_hash,))

    def delete_lead(self, lead_id: str) -> None:
        self._run(lambda conn, now: conn.execute("DELETE FROM leads WHERE lead_id = ?", (lead_id,)))

    def set_optout(self, phone_hash: str, on: bool) -> None:
        sql = "INSERT OR IGNORE INTO optout (phone_hash) VALUES (?)"
        if not on:
            sql = "DELETE FROM optout WHERE phone_hash = ?"
        self._run(lambda conn, now: conn.execute(sql, (phone_hash,)))

    def is_opted_out(self, phone_hash: str) -> bool:
        found = self._run(
            lambda conn, now: conn.execute("SELECT 1 FROM optout WHERE phone_hash = ?", (phone_hash,)).fetchone(),
            write=False,
        )
        return found is not None

    # -- the sweeper's heartbeat (a key like any other, kept HEARTBEAT_SECONDS) --

    def write_heartbeat(self, heartbeat: Heartbeat) -> None:
        self.put(_HEARTBEAT, heartbeat.dumps(), HEARTBEAT_SECONDS)

    def read_heartbeat(self) -> Heartbeat | None:
        held = self._run(lambda conn, now: self._get(conn, _HEARTBEAT, now), write=False)
        return Heartbeat.loads(held[0] if held else None)

    @staticmethod
    def _purge(conn: sqlite3.Connection, now: float) -> None:
        """Delete expired claims, counters and records (every read skips them already)."""
        conn.execute("DELETE FROM kv WHERE expires <= ?", (now,))
        conn.execute("DELETE FROM leads WHERE expires_at <= ?", (now,))
