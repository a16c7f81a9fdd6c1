"""The state store, memory and a real Redis, and the exactly-once claim built on it."""

from __future__ import annotations

import time

import pytest

from formcall_webhook.stores import Store, StoreUnavailable, open_store
from formcall_webhook.stores.memory import MemoryStore
from formcall_webhook.stores.redis import RedisStore
from tests.conftest import open_backend
from tests.fakes.redis_server import RedisServer


@pytest.fixture(params=["memory", "redis", "firestore"])
def store(request: pytest.FixtureRequest) -> Store:
    if request.param == "memory":
        return MemoryStore()
    if request.param == "firestore":
        return open_backend("firestore", request)
    server: RedisServer = request.getfixturevalue("redis_server")
    redis_store = RedisStore(server.url)
    redis_store._redis.flushdb()
    return redis_store


def test_open_store_by_url(redis_server: RedisServer) -> None:
    assert isinstance(open_store("memory://"), MemoryStore)
    assert isinstance(open_store(redis_server.url), RedisStore)


def test_claim_put_release(store: Store) -> None:
    assert store.claim("k", "mine", 5) is None
    assert store.claim("k", "theirs", 5) == "mine"
    store.release("k", "theirs")  # not ours: stays
    assert store.claim("k", "x", 5) == "mine"
    store.release("k", "mine")
    assert store.claim("k", "theirs", 5) is None
    store.put("k", "final", 5)
    assert store.claim("k", "y", 5) == "final"


def test_keys_expire(store: Store) -> None:
    assert store.claim("short", "a", 0.2) is None
    time.sleep(0.35)
    assert store.claim("short", "b", 5) is None


def test_hit_counts_in_a_fixed_window(store: Store) -> None:
    counts = [store.hit("rate", 2)[0] for _ in range(4)]
    assert counts == [1, 2, 3, 4]
    _, left = store.hit("rate", 2)
    assert 1 <= left <= 2
    time.sleep(2.1)
    assert store.hit("rate", 2)[0] == 1


def test_memory_store_sweeps_expired_keys() -> None:
    memory = MemoryStore()
    for i in range(3000):
        memory.put(f"k{i}", "v", 0.001)
    time.sleep(0.01)
    for i in range(1100):
        memory.put(f"j{i}", "v", 60)
    assert len(memory) < 2200


def test_memory_store_is_bounded_oldest_first() -> None:
    """Fresh Idempotency-Keys from an abuser must not grow an instance without bound (issue 9)."""
    store = MemoryStore(max_keys=100)
    for n in range(1000):
        store.put(f"k{n}", "v", 3600)
    assert len(store) == 100
    assert store.claim("k0", "x", 5) is None  # the oldest went first
    assert store.claim("k999", "x", 5) == "v"


def test_redis_down_is_store_unavailable() -> None:
    dead = RedisServer()  # never started: nothing listens on its port
    redis_store = RedisStore(dead.url)
    started = time.monotonic()
    with pytest.raises(StoreUnavailable) as caught:
        redis_store.claim("k", "v", 5)
    assert caught.value.status == 503
    assert time.monotonic() - started < 5
    with pytest.raises(StoreUnavailable):
        redis_store.hit("k", 5)


def test_memory_ledger_is_bounded_and_never_drops_a_lead_still_due() -> None:
    from formcall_webhook import records

    store = MemoryStore(max_leads=100)
    due = []
    for n in range(300):
        record = records.new_record(lead_id=f"ld_{n:04d}", route="r", received=time.time(), payload={},
                                    masked="+56*****000", phone_hash="h", keep_days=1, claims=[])  # fmt: skip
        if n % 10 == 0:
            record["due_at"] = time.time() + 60
            due.append(record["lead_id"])
        assert store.save_lead(record, None)
    kept = {r["lead_id"] for r in store.scan_leads()}
    assert len(kept) <= 100 + len(due)
    assert set(due) <= kept
    assert "ld_0299" in kept and "ld_0001" not in kept  # the oldest finished went first
