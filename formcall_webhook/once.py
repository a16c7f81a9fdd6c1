"""Exactly one call per lead: dedupe keys and idempotency keys held in the store (spec section 4)."""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from dataclasses import dataclass

from .errors import FormCallUnavailable
from .store import Store

_PENDING = "pending:"
_POLL_SECONDS = 0.05
# How long a replayed Idempotency-Key / webhook-id is recognised: senders retry for a day or more.
IDEMPOTENCY_SECONDS = 86400


def key(route: str, kind: str, value: str) -> str:
    """Store key; hashed so no phone number or sender id sits in the store in clear."""
    digest = hashlib.sha256(value.encode("utf-8")).hexdigest()[:40]
    return f"formcall:{route}:{kind}:{digest}"


@dataclass(frozen=True)
class FirstAnswer:
    """What the first submission got; every duplicate is answered with it."""

    uuid: str | None
    pending: bool = False

    def dumps(self) -> str:
        return json.dumps({"uuid": self.uuid, "pending": self.pending})

    @staticmethod
    def loads(text: str) -> FirstAnswer:
        try:
            data = json.loads(text)
        except ValueError:
            return FirstAnswer(None)
        uuid = data.get("uuid") if isinstance(data, dict) else None
        pending = bool(data.get("pending")) if isinstance(data, dict) else False
        return FirstAnswer(uuid if isinstance(uuid, str) else None, pending)


@dataclass
class Claim:
    """Keys this request holds while it places the call."""

    keys: list[tuple[str, int]]
    marker: str


def acquire(store: Store, keys: list[tuple[str, int]], pending_ttl: float, wait: float) -> Claim | FirstAnswer:
    """Claim every key, or return the first answer of the submission that holds one.

    A key held by a submission still in flight is waited for, so twenty identical posts at once
    place one call and nineteen answers carry its uuid.
    """
    marker = _PENDING + secrets.token_hex(8)
    claimed: list[tuple[str, int]] = []
    deadline = time.monotonic() + wait
    for store_key, window in keys:
        while True:
            existing = store.claim(store_key, marker, pending_ttl)
            if existing is None:
                claimed.append((store_key, window))
                break
            if not existing.startswith(_PENDING):
                first = FirstAnswer.loads(existing)
                # Replays of what we claimed so far must get this same answer too.
                for claimed_key, claimed_window in claimed:
                    store.put(claimed_key, first.dumps(), claimed_window)
                return first
            if time.monotonic() >= deadline:
                release(store, Claim(claimed, marker))
                raise FormCallUnavailable(
                    "The same submission is still being processed; try again shortly.",
                    retry_after=5,
                    reason="identical submission still in flight",
                )
            time.sleep(_POLL_SECONDS)
    return Claim(claimed, marker)


def complete(store: Store, claim: Claim, answer: FirstAnswer) -> None:
    for store_key, window in claim.keys:
        store.put(store_key, answer.dumps(), window)


def release(store: Store, claim: Claim) -> None:
    """No call was placed: let the sender's retry try again."""
    for store_key, _ in claim.keys:
        store.release(store_key, claim.marker)
