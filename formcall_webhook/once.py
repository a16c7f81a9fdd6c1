"""Exactly one call per lead: dedupe keys and idempotency keys held in the store (spec section 4).

A key holds one of three things: `pending:<id>` while a submission is calling FormCall, the first
answer once it did, or `uncertain:<time>:<id>` when FormCall got the request but its answer was lost
(a timeout, a reset). An uncertain key is settled by the next delivery, from FormCall's own list of
calls, before anything is placed again.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from dataclasses import dataclass

from .errors import FormCallUnavailable
from .stores import Store

_PENDING = "pending:"
_UNCERTAIN = "uncertain:"
_POLL_SECONDS = 0.05
# How long a replayed Idempotency-Key / webhook-id is recognised: senders retry for a day or more.
IDEMPOTENCY_SECONDS = 86400


def key(route: str, kind: str, value: str) -> str:
    """Store key; hashed so no phone number or sender id sits in the store in clear."""
    digest = hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:40]
    return f"formcall:{route}:{kind}:{digest}"


def new_marker() -> str:
    return _PENDING + secrets.token_hex(8)


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
    """Keys this request holds (with its marker) while it places the call."""

    keys: list[tuple[str, int]]
    marker: str


@dataclass(frozen=True)
class Uncertain:
    """An earlier attempt whose outcome is unknown; `claim` holds the keys claimed before it was met."""

    value: str
    since: float
    claim: Claim


def acquire(
    store: Store, keys: list[tuple[str, int]], pending_ttl: float, wait: float, marker: str | None = None
) -> Claim | FirstAnswer | Uncertain:
    """Claim every key, or return the first answer of the submission that holds one.

    A key held by a submission still in flight is waited for, so twenty identical posts at once
    place one call and nineteen answers carry its uuid.
    """
    marker = marker or new_marker()
    claimed: list[tuple[str, int]] = []
    deadline = time.monotonic() + wait
    for store_key, window in keys:
        while True:
            existing = store.claim(store_key, marker, pending_ttl)
            if existing is None or existing == marker:
                claimed.append((store_key, window))
                break
            if existing.startswith(_UNCERTAIN):
                return Uncertain(existing, _since(existing), Claim(claimed, marker))
            if not existing.startswith(_PENDING):
                first = FirstAnswer.loads(existing)
                # Replays of what we claimed so far must get this same answer too.
                complete(store, Claim(claimed, marker), first)
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


def _since(value: str) -> float:
    try:
        return float(value.split(":")[1])
    except (IndexError, ValueError):
        return 0.0


def complete(store: Store, claim: Claim, answer: FirstAnswer) -> None:
    for store_key, window in claim.keys:
        store.put(store_key, answer.dumps(), window)


def release(store: Store, claim: Claim) -> None:
    """No call was placed: let the sender's retry try again."""
    for store_key, _ in claim.keys:
        store.release(store_key, claim.marker)


def mark_uncertain(store: Store, claim: Claim, since: float) -> None:
    """FormCall may have placed the call: hold the keys until a later delivery settles it."""
    value = f"{_UNCERTAIN}{since:.3f}:{claim.marker.removeprefix(_PENDING)}"
    for store_key, window in claim.keys:
        store.replace(store_key, claim.marker, value, window)


def settle(store: Store, keys: list[tuple[str, int]], uncertain: Uncertain, answer: FirstAnswer | None,
           marker: str, pending_ttl: float) -> None:  # fmt: skip
    """The uncertain attempt is settled: it placed `answer`, or (None) nothing, so `marker` takes over."""
    for store_key, window in keys:
        if answer is not None:
            store.replace(store_key, uncertain.value, answer.dumps(), window)
        else:
            store.replace(store_key, uncertain.value, marker, pending_ttl)
    if answer is not None:
        complete(store, uncertain.claim, answer)
