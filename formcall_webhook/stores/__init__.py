"""The store family (spec 8): memory://, sqlite://, firestore:// and redis://, each in its own module.

A backend module is imported only when the URL names it, so cold start with memory:// never pays for
the Firestore or Redis client libraries.
"""

from __future__ import annotations

from .base import (
    Admission,
    Admitted,
    Backend,
    Counter,
    Finish,
    Heartbeat,
    Ledger,
    Pace,
    Store,
    StoreUnavailable,
)

# scheme -> what the URL looks like, for config errors and `check`.
SCHEMES = {
    "memory://": "memory://",
    "sqlite://": "sqlite://PATH",
    "firestore://": "firestore:// or firestore://PROJECT/DATABASE",
    "redis://": "redis://HOST:PORT/DB",
    "rediss://": "rediss://HOST:PORT/DB",
}

__all__ = [
    "SCHEMES",
    "Admission",
    "Admitted",
    "Backend",
    "Counter",
    "Finish",
    "Heartbeat",
    "Ledger",
    "Pace",
    "Store",
    "StoreUnavailable",
    "open_store",
]


def open_store(url: str, request_timeout: float = 8.0) -> Backend:
    """The backend for FORMCALL_STORE_URL. A hung store costs a few of its timeouts before the 503:
    each is an eighth of FormCall's, at most a second (Redis) or two (Firestore)."""
    if url.startswith(("redis://", "rediss://")):
        from .redis import RedisStore

        return RedisStore(url, timeout=min(1.0, request_timeout / 8))
    if url.startswith("firestore://"):
        from .firestore import FirestoreStore

        return FirestoreStore(url, timeout=min(2.0, max(0.5, request_timeout / 4)))
    if url.startswith("sqlite://"):
        from .sqlite import SqliteStore

        return SqliteStore(url, timeout=request_timeout)
    from .memory import MemoryStore

    return MemoryStore()
