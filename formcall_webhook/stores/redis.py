"""redis:// and rediss://: Memorystore in production, any Redis here.

Every operation is one command or one Lua script, so a placed lead costs two round trips: `admit`
before FormCall (opt-out, claims, counters, record, lease) and `finish` after it (spec 8).
Records are JSON strings that expire with the lead; sorted sets index them by due time and by arrival.

A store that stumbles (spec 8): redis-py sends a command once more after a connection error or a
timeout (one retry, within the request's deadline), so every script is safe to run twice: `admit`
does nothing when its record (the admission's own marker: a new lead id) is already there;
`save_lead` answers yes when the stored record is the one this very call saved (its token); `finish`
checks versions and markers. When both tries of `finish` fail, the record is read back (applied, or
the error stands). When both tries of `admit` fail, its outcome is read back before anyone is
answered: the record there, the lead is kept; absent, its key is fenced (`fenced`, with a SET NX
that only one can win), so the lost script, should it still run, finds the fence and does nothing.
A 503 never leaves a record behind.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator, Mapping
from typing import Any

from .base import (
    HEARTBEAT_SECONDS,
    PACE_HORIZON,
    Admission,
    Admitted,
    Finish,
    Heartbeat,
    Pace,
    StoreUnavailable,
    unavailable,
)

PREFIX = "formcall:"
_DUE = PREFIX + "due"
_ARRIVED = PREFIX + "leads"
_OPTOUT = PREFIX + "optout"
_HEARTBEAT = PREFIX + "heartbeat"
_FENCED = "fenced"  # a lead key's value after a lost admission was fenced off: read as no record
_FENCE_SECONDS = 86400.0
_BATCH = 500

# Shared by the scripts: write a record (already JSON) and its index entries. Lua numbers are doubles:
# times go in as strings and are compared by Redis itself.
_WRITE = """
local function write_record(r)
  local key = 'formcall:lead:' .. r.id
  redis.call('SET', key, r.json, 'PX', r.px)
  if r.due then redis.call('ZADD', 'formcall:due', r.due, r.id) else redis.call('ZREM', 'formcall:due', r.id) end
  redis.call('ZADD', 'formcall:leads', r.received, r.id)
  if r.phone then
    local set = 'formcall:phone:' .. r.phone
    redis.call('SADD', set, r.id)
    if redis.call('PTTL', set) < tonumber(r.px) then redis.call('PEXPIRE', set, r.px) end
  end
end
local function version_of(key)
  local stored = redis.call('GET', key)
  if not stored or stored == 'fenced' then return nil end
  return tonumber(cjson.decode(stored).version)
end
"""
# Spec 11's pace: the first slot from p.first with fewer than p.limit calls, its counter moved on; each
# slot's counter is kept a period past the slot's end. Returns the slot's index and whether it is later.
_PACE = """
local function take_slot(p)
  for index = p.first, p.first + p.horizon do
    local key = p.key .. ':' .. string.format('%d', index)
    local n = tonumber(redis.call('GET', key) or '0')
    if n < p.limit then
      local ttl = math.max(p.period, (index + 2) * p.period - p.now)
      redis.call('SET', key, tostring(n + 1), 'PX', math.ceil(ttl * 1000))
      return index, index > p.first
    end
  end
  return redis.error_reply('pace backlog too long')
end
"""
_ADMIT = (
    _WRITE
    + _PACE
    + """
local a = cjson.decode(ARGV[1])
-- This admission already applied (its answer was lost and the command sent again), or was fenced
-- off after its answer was lost: nothing more to do. The record's key is the admission's own marker.
if a.record then
  local there = redis.call('GET', 'formcall:lead:' .. a.record.id)
  if there == 'fenced' then return cjson.encode({fenced = true}) end
  if there then return '{}' end
end
if a.optout and redis.call('SISMEMBER', 'formcall:optout', a.optout) == 1 then
  return cjson.encode({refused = 'opted_out'})
end
local held, any = {}, false
for _, c in ipairs(a.claims) do
  local v = redis.call('GET', c[1])
  if v then held[c[1]] = v; any = true end
end
if any then return cjson.encode({held = held}) end
for _, c in ipairs(a.counters) do
  local n = redis.call('INCR', c[1])
  if n == 1 then redis.call('EXPIRE', c[1], c[2]) end
  local ttl = redis.call('TTL', c[1])
  if ttl < 0 then redis.call('EXPIRE', c[1], c[2]); ttl = c[2] end
  if n > c[3] then return cjson.encode({refused = 'rate_limited', retry_after = ttl, counter = c[1]}) end
end
local slot, later = nil, false
if a.pace then slot, later = take_slot(a.pace) end
for _, c in ipairs(a.claims) do redis.call('SET', c[1], a.marker, 'PX', c[2]) end
if a.lease then redis.call('SET', a.lease[1], a.marker, 'PX', a.lease[2]) end
if later and a.deferred then write_record(a.deferred) elseif a.record then write_record(a.record) end
if slot then return cjson.encode({slot = slot, later = later}) end
return '{}'
"""
)
_FINISH = (
    _WRITE
    + """
local f = cjson.decode(ARGV[1])
local key = 'formcall:lead:' .. f.id
local saved = 0
if f.record then
  if version_of(key) == tonumber(f.expected) then write_record(f.record); saved = 1 end
else
  redis.call('DEL', key); redis.call('ZREM', 'formcall:due', f.id); redis.call('ZREM', 'formcall:leads', f.id)
  saved = 1
end
for _, c in ipairs(f.claims) do
  if redis.call('GET', c[1]) == f.marker then
    if f.answer then redis.call('SET', c[1], f.answer, 'PX', c[2]) else redis.call('DEL', c[1]) end
  end
end
if f.lease and redis.call('GET', f.lease) == f.marker then redis.call('DEL', f.lease) end
return saved
"""
)
_SAVE = (
    _WRITE
    + """
local s = cjson.decode(ARGV[1])
local there = redis.call('GET', 'formcall:lead:' .. s.record.id)
local mark = 'formcall:saved:' .. s.record.id
-- This very save (its token), sent again after its answer was lost: it did apply.
if there == s.record.json and redis.call('GET', mark) == s.token then return 1 end
if there == 'fenced' then return 0 end
local current = version_of('formcall:lead:' .. s.record.id)
if s.expected then
  if current ~= tonumber(s.expected) then return 0 end
elseif current then
  return 0
end
write_record(s.record)
redis.call('SET', mark, s.token, 'PX', 60000)
return 1
"""
)
_TAKE_SLOT = (
    _PACE
    + """
local index = take_slot(cjson.decode(ARGV[1]))
return index
"""
)
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
_REPLACE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
"""
_HIT = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
local ttl = redis.call('TTL', KEYS[1])
if ttl < 0 then redis.call('EXPIRE', KEYS[1], ARGV[1]); ttl = tonumber(ARGV[1]) end
return {count, ttl}
"""


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


def _pace_spec(pace: Pace) -> dict[str, Any]:
    return {"key": pace.key, "period": pace.period, "limit": pace.limit, "now": pace.now, "first": pace.first,
            "horizon": PACE_HORIZON}  # fmt: skip


def _record_spec(record: Mapping[str, Any]) -> dict[str, Any]:
    """What the scripts need of a record: its JSON, expiry and index fields (times as strings)."""
    spec: dict[str, Any] = {
        "id": record["lead_id"],
        "json": json.dumps(record, separators=(",", ":")),
        "px": _ms(max(1.0, record["expires_at"] - time.time())),
        "received": repr(float(record["received_ts"])),
    }
    if record.get("due_at") is not None:
        spec["due"] = repr(float(record["due_at"]))
    if record.get("phone_hash"):
        spec["phone"] = record["phone_hash"]
    return spec


class RedisStore:
    """One atomic command or script per operation; a short timeout, so a dead store answers 503 fast."""

    def __init__(self, url: str, timeout: float = 1.0) -> None:
        # Imported here: only deployments that use Redis pay for it.
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        self.round_trips = 0
        self._errors: tuple[type[BaseException], ...] = (redis.RedisError, OSError)
        self._redis: Any = redis.Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            decode_responses=True,
            # No CLIENT SETINFO on connect: one round trip less, before every fresh connection.
            driver_info=None,
            health_check_interval=30,
            # One quick retry covers a pooled connection the server closed; more would only delay the 503.
            retry=Retry(NoBackoff(), 1),
        )
        self._admit = self._redis.register_script(_ADMIT)
        self._finish = self._redis.register_script(_FINISH)
        self._save = self._redis.register_script(_SAVE)
        self._release = self._redis.register_script(_RELEASE)
        self._replace = self._redis.register_script(_REPLACE)
        self._hit = self._redis.register_script(_HIT)
        self._take = self._redis.register_script(_TAKE_SLOT)

    def _call(self, operation: Any, *args: Any, **kwargs: Any) -> Any:
        self.round_trips += 1
        try:
            return operation(*args, **kwargs)
        except self._errors as err:
            raise unavailable(err) from err

    # -- claims and counters --

    def claim(self, key: str, value: str, ttl: float) -> str | None:
        if self._call(self._redis.set, key, value, nx=True, px=_ms(ttl)):
            return None
        existing: str | None = self._call(self._redis.get, key)
        # Expired between SET and GET: try once more rather than report a phantom holder.
        if existing is None and self._call(self._redis.set, key, value, nx=True, px=_ms(ttl)):
            return None
        return existing if existing is not None else value

    def put(self, key: str, value: str, ttl: float) -> None:
        self._call(self._redis.set, key, value, px=_ms(ttl))

    def release(self, key: str, value: str) -> None:
        self._call(self._release, keys=[key], args=[value])

    def replace(self, key: str, expected: str, value: str, ttl: float) -> bool:
        return bool(self._call(self._replace, keys=[key], args=[expected, value, _ms(ttl)]))

    def hit(self, key: str, window: int) -> tuple[int, int]:
        count, ttl = self._call(self._hit, keys=[key], args=[window])
        return int(count), max(1, int(ttl))

    def delete(self, key: str) -> None:
        self._call(self._redis.delete, key)

    # -- the ledger --

    def admit(self, admission: Admission) -> Admitted:
        spec: dict[str, Any] = {
            "claims": [[k, _ms(ttl)] for k, ttl in admission.claims],
            "marker": admission.marker,
            "counters": [[c.key, c.window, c.limit] for c in admission.counters],
        }
        if admission.optout:
            spec["optout"] = admission.optout
        if admission.lease:
            spec["lease"] = [admission.lease[0], _ms(admission.lease[1])]
        if admission.record is not None:
            spec["record"] = _record_spec(admission.record)
        if admission.pace is not None:
            spec["pace"] = _pace_spec(admission.pace)
            if admission.deferred is not None:
                spec["deferred"] = _record_spec(admission.deferred)
        try:
            answer = json.loads(self._call(self._admit, keys=[], args=[json.dumps(spec)]))
        except StoreUnavailable:
            if admission.record is None or not self._kept(admission.record["lead_id"]):
                raise
            answer = {}  # it applied; its answer was lost
            if admission.pace is not None:
                # Which slot it took is lost with the answer: the lead waits for the next one.
                answer = {"slot": admission.pace.first + 1, "later": True}
        if answer.get("fenced"):
            raise unavailable(TimeoutError("the admission was fenced off after a lost answer"))
        held = answer.get("held")
        return Admitted(
            refused=answer.get("refused"),
            retry_after=max(1, int(answer.get("retry_after") or 1)) if answer.get("refused") else 0,
            counter=answer.get("counter") or "",
            held=held if isinstance(held, dict) else {},
            slot=float(answer["slot"]) * admission.pace.period if admission.pace and "slot" in answer else None,
            later=answer.get("later") is True,
        )

    def take_slot(self, pace: Pace) -> float:
        index = self._call(self._take, keys=[], args=[json.dumps(_pace_spec(pace))])
        return pace.start(int(index))

    def _kept(self, lead_id: str) -> bool:
        """After an admission whose answers were lost: whether it applied. Absent, the record's key is
        fenced so that the lost script, should it still run, does nothing (it checks first)."""
        key = PREFIX + "lead:" + lead_id
        fenced = self._call(self._redis.set, key, _FENCED, nx=True, px=_ms(_FENCE_SECONDS))
        if fenced:
            return False
        return self._call(self._redis.get, key) not in (None, _FENCED)

    def finish(self, finish: Finish) -> None:
        spec: dict[str, Any] = {
            "id": finish.lead_id,
            "expected": finish.expected_version,
            "claims": [[k, _ms(ttl)] for k, ttl in finish.claims],
            "marker": finish.marker,
        }
        if finish.record is not None:
            spec["record"] = _record_spec(finish.record)
        if finish.answer is not None:
            spec["answer"] = finish.answer
        if finish.lease:
            spec["lease"] = finish.lease
        try:
            self._call(self._finish, keys=[], args=[json.dumps(spec)])
        except StoreUnavailable:
            # Both tries lost: read back what it would have made (the record, or its absence) before
            # the caller answers anyone. There, it applied; else the error stands.
            raw = self._call(self._redis.get, PREFIX + "lead:" + finish.lead_id)
            made = raw is None if finish.record is None else raw == spec["record"]["json"]
            if not made:
                raise

    def get_lead(self, lead_id: str) -> dict[str, Any] | None:
        raw = self._call(self._redis.get, PREFIX + "lead:" + lead_id)
        return _decode(raw)

    def save_lead(self, record: Mapping[str, Any], expected_version: int | None) -> bool:
        spec: dict[str, Any] = {"record": _record_spec(record), "token": secrets.token_hex(8)}
        if expected_version is not None:
            spec["expected"] = expected_version
        return bool(self._call(self._save, keys=[], args=[json.dumps(spec)]))

    def _records(self, index: str, ids: list[str]) -> list[dict[str, Any]]:
        """The records of `ids`, in order; ids whose record expired are dropped from `index`."""
        found: list[dict[str, Any]] = []
        for start in range(0, len(ids), _BATCH):
            chunk = ids[start : start + _BATCH]
            raws = self._call(self._redis.mget, [PREFIX + "lead:" + i for i in chunk])
            gone = []
            for lead_id, raw in zip(chunk, raws, strict=True):
                record = _decode(raw)
                if record is None:
                    gone.append(lead_id)
                else:
                    found.append(record)
            if gone and index:
                self._call(self._redis.zrem, index, *gone)
        return found

    def due_leads(self, now: float, limit: int) -> list[dict[str, Any]]:
        ids = self._call(self._redis.zrangebyscore, _DUE, "-inf", repr(float(now)), start=0, num=limit)
        return [r for r in self._records(_DUE, list(ids)) if r.get("due_at") is not None and r["due_at"] <= now]

    def scan_leads(
        self, *, since: float | None = None, state: str | None = None, route: str | None = None
    ) -> Iterator[dict[str, Any]]:
        low = repr(float(since)) if since is not None else "-inf"
        ids = list(self._call(self._redis.zrangebyscore, _ARRIVED, low, "+inf"))
        for record in self._records(_ARRIVED, ids):
            if (state is None or record.get("state") == state) and (route is None or record.get("route") == route):
                yield record

    def leads_by_phone(self, phone_hash: str) -> list[dict[str, Any]]:
        ids = sorted(self._call(self._redis.smembers, PREFIX + "phone:" + phone_hash))
        records = self._records("", ids)
        return sorted(records, key=lambda r: r["received_ts"])

    def delete_lead(self, lead_id: str) -> None:
        pipe = self._redis.pipeline(transaction=True)
        pipe.delete(PREFIX + "lead:" + lead_id)
        pipe.zrem(_DUE, lead_id)
        pipe.zrem(_ARRIVED, lead_id)
        self._call(pipe.execute)

    def set_optout(self, phone_hash: str, on: bool) -> None:
        self._call(self._redis.sadd if on else self._redis.srem, _OPTOUT, phone_hash)

    def is_opted_out(self, phone_hash: str) -> bool:
        return bool(self._call(self._redis.sismember, _OPTOUT, phone_hash))

    # -- the sweeper's heartbeat --

    def write_heartbeat(self, heartbeat: Heartbeat) -> None:
        self._call(self._redis.set, _HEARTBEAT, heartbeat.dumps(), ex=HEARTBEAT_SECONDS)

    def read_heartbeat(self) -> Heartbeat | None:
        return Heartbeat.loads(self._call(self._redis.get, _HEARTBEAT))


def _decode(raw: str | None) -> dict[str, Any] | None:
    if raw is None:
        return None
    try:
        record = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(record, dict):
        return None
    # Checked here too: a key's own expiry is rounded, and a record must not outlive keep_days.
    expires = record.get("expires_at")
    if isinstance(expires, (int, float)) and expires <= time.time():
        return None
    return record
