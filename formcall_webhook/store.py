"""Dedupe and rate-limit state: memory:// per instance, or redis:// shared by every instance."""

from __future__ import annotations

import math
import threading
import time
from typing import Any, Protocol

from .errors import FormCallUnavailable

# Memory store: how many keys before expired ones are swept (keeps an instance's memory flat).
_SWEEP_EVERY = 1024


class StoreUnavailable(FormCallUnavailable):
    """The shared store cannot be reached: answer 503 so the sender retries, never call unguarded."""


class Store(Protocol):
    def claim(self, key: str, value: str, ttl: float) -> str | None:
        """Set key to value if absent; None when set, else the value already there."""

    def put(self, key: str, value: str, ttl: float) -> None: ...

    def release(self, key: str, value: str) -> None:
        """Delete key only while it still holds value (a claim of ours, not someone else's)."""

    def replace(self, key: str, expected: str, value: str, ttl: float) -> bool:
        """Set key to value only while it holds expected; whether it did."""

    def hit(self, key: str, window: int) -> tuple[int, int]:
        """Count one event in key's fixed window; the count so far and seconds left in the window."""


class MemoryStore:
    def __init__(self) -> None:
        self._data: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()
        self._writes = 0

    def _live(self, key: str, now: float) -> tuple[str, float] | None:
        entry = self._data.get(key)
        if entry is not None and entry[1] <= now:
            del self._data[key]
            return None
        return entry

    def _sweep(self, now: float) -> None:
        self._writes += 1
        if self._writes % _SWEEP_EVERY == 0:
            for key in [k for k, (_, expires) in self._data.items() if expires <= now]:
                del self._data[key]

    def claim(self, key: str, value: str, ttl: float) -> str | None:
        now = time.monotonic()
        with self._lock:
            entry = self._live(key, now)
            if entry is not None:
                return entry[0]
            self._data[key] = (value, now + ttl)
            self._sweep(now)
            return None

    def put(self, key: str, value: str, ttl: float) -> None:
        now = time.monotonic()
        with self._lock:
            self._data[key] = (value, now + ttl)
            self._sweep(now)

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
            self._data[key] = (value, now + ttl)
            return True

    def hit(self, key: str, window: int) -> tuple[int, int]:
        now = time.monotonic()
        with self._lock:
            entry = self._live(key, now)
            count = int(entry[0]) + 1 if entry is not None else 1
            expires = entry[1] if entry is not None else now + window
            self._data[key] = (str(count), expires)
            self._sweep(now)
            return count, max(1, math.ceil(expires - now))

    def __len__(self) -> int:
        return len(self._data)


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


class RedisStore:
    """Memorystore in production, any Redis here. Every operation is one atomic command or script."""

    def __init__(self, url: str, timeout: float = 1.0) -> None:
        # Imported here: only deployments that share state across instances pay for it.
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        self._errors: tuple[type[BaseException], ...] = (redis.RedisError, OSError)
        # Short timeouts: a lead waiting on a dead store is better answered 503 quickly.
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
        self._release = self._redis.register_script(_RELEASE)
        self._replace = self._redis.register_script(_REPLACE)
        self._hit = self._redis.register_script(_HIT)

    def _call(self, operation: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return operation(*args, **kwargs)
        except self._errors as err:
            raise StoreUnavailable(
                "The function's shared state store is unreachable; try again later.",
                reason=f"store error: {type(err).__name__}",
            ) from err

    def claim(self, key: str, value: str, ttl: float) -> str | None:
        ms = max(1, int(ttl * 1000))
        if self._call(self._redis.set, key, value, nx=True, px=ms):
            return None
        existing: str | None = self._call(self._redis.get, key)
        # Expired between SET and GET: try once more rather than report a phantom holder.
        if existing is None and self._call(self._redis.set, key, value, nx=True, px=ms):
            return None
        return existing if existing is not None else value

    def put(self, key: str, value: str, ttl: float) -> None:
        self._call(self._redis.set, key, value, px=max(1, int(ttl * 1000)))

    def release(self, key: str, value: str) -> None:
        self._call(self._release, keys=[key], args=[value])

    def replace(self, key: str, expected: str, value: str, ttl: float) -> bool:
        return bool(self._call(self._replace, keys=[key], args=[expected, value, max(1, int(ttl * 1000))]))

    def hit(self, key: str, window: int) -> tuple[int, int]:
        count, ttl = self._call(self._hit, keys=[key], args=[window])
        return int(count), max(1, int(ttl))


def open_store(url: str, request_timeout: float = 8.0) -> Store:
    """The store for FORMCALL_STORE_URL. A hung Redis costs up to four of its timeouts (two
    connections, each with one retry) before the 503: each is an eighth of FormCall's, at most a
    second, against the millisecond Redis answers in."""
    if url.startswith(("redis://", "rediss://")):
        return RedisStore(url, timeout=min(1.0, request_timeout / 8))
    return MemoryStore()
