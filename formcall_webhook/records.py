"""Lead records (spec 8): how one is made, changed, shown and minimized. Pure: no I/O.

A record is a JSON-able dict. Times a person reads are ISO 8601 (`received_at`, `next_attempt_at`);
the store also reads epoch seconds (`received_ts`, `due_at`, `expires_at`).
"""

from __future__ import annotations

import os
import random
import secrets
import time
from collections.abc import Mapping
from typing import Any

SCHEDULED, PLACED, PENDING, FAILED = "scheduled", "placed", "pending", "failed"
# The fields `leads list --json` prints, in spec 8's order, then consent (10) and the outcome (9).
PUBLIC_FIELDS = (
    "lead_id", "route", "state", "received_at", "attempts", "next_attempt_at", "last_error", "uuid",
    "popup_uuid", "phone", "consent", "call_status", "connected", "successful", "duration_customer",
    "call_at",
)  # fmt: skip


# Lead ids need to be unique, not secret (they authorize nothing): a generator seeded from the OS once
# per process (again in each forked worker) costs no system call per lead. Under eight threads each
# os.urandom call is a GIL hand-off, and the request path had two of them.
_ids = random.Random(secrets.token_bytes(16))  # noqa: S311 - unique ids, not secrets
os.register_at_fork(after_in_child=lambda: _ids.seed(secrets.token_bytes(16)))


def new_lead_id() -> str:
    return f"ld_{_ids.getrandbits(80):020x}"


def iso(ts: float | None) -> str | None:
    """Epoch seconds as ISO 8601 UTC to the second, "2026-12-01T14:15:27Z"."""
    if ts is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def new_record(
    *,
    lead_id: str,
    route: str,
    received: float,
    payload: Mapping[str, Any],
    masked: str,
    phone_hash: str,
    keep_days: int,
    claims: list[tuple[str, float]],
    consent: Mapping[str, Any] | None = None,
    outcome_due: bool = False,
) -> dict[str, Any]:
    """A lead as it is kept before its first attempt: scheduled, with that attempt in flight."""
    return {
        "lead_id": lead_id,
        "version": 1,
        "route": route,
        "state": SCHEDULED,
        "received_at": iso(received),
        "received_ts": received,
        "attempts": 0,
        "next_attempt_at": None,
        "due_at": None,
        "last_error": None,
        "uuid": None,
        "popup_uuid": payload.get("popup_uuid"),
        "phone": masked,
        "phone_hash": phone_hash,
        # The FormCall payload without the token: what calling later needs.
        "payload": {k: v for k, v in payload.items() if k != "security_token"},
        "claims": [[key, ttl] for key, ttl in claims],
        "consent": dict(consent) if consent else None,
        "expires_at": received + keep_days * 86400,
        # Set while an attempt may have reached FormCall without its answer reaching us.
        "attempt_since": None,
        "outcome": {"due": True} if outcome_due else None,
        "minimized": False,
    }


def changed(record: Mapping[str, Any], **fields: Any) -> dict[str, Any]:
    """A copy with `fields` set and the version moved on (every write is conditional on it)."""
    new = dict(record)
    new.update(fields)
    new["version"] = int(record.get("version", 0)) + 1
    if "due_at" in fields:
        new["next_attempt_at"] = iso(fields["due_at"]) if new.get("state") == SCHEDULED else None
    return new


def minimized(record: Mapping[str, Any], state: str) -> dict[str, Any]:
    """The fields that leave a record once its call is done (spec 10, keep_fields = "until_done").

    Placed or pending: everything the person typed, the whole number included; the record keeps the
    masked number, states, times, uuid, consent and outcome. Failed: the name, email and other
    `adicional` values go, the number stays until keep_days so `leads retry` can still call it once.
    """
    fields: dict[str, Any] = {"contact": None, "minimized": True}
    if record.get("clicks"):
        # Click ids (spec 10, 12) never outlive the call's work: conversions, where due, are done by now.
        fields["clicks"] = None
    payload = record.get("payload")
    if state == FAILED and isinstance(payload, dict):
        fields["payload"] = {k: v for k, v in payload.items() if k != "adicional"}
    else:
        fields["payload"] = None
    return fields


def public(record: Mapping[str, Any], phone: str | None = None) -> dict[str, Any]:
    """The record as `leads` prints it: spec 8's fields; `phone` replaces the masked number."""
    outcome = record.get("outcome") or {}
    view: dict[str, Any] = {}
    for name in PUBLIC_FIELDS:
        view[name] = outcome.get(name) if name in ("call_status", "connected", "successful", "duration_customer",
                                                     "call_at") else record.get(name)  # fmt: skip
    if phone is not None:
        view["phone"] = phone
    payload = record.get("payload")
    if isinstance(payload, dict) and payload.get("adicional"):
        view["adicional"] = payload["adicional"]
    return view


def number_of(record: Mapping[str, Any]) -> str | None:
    """The whole number in E.164, while the record still holds it."""
    payload = record.get("payload")
    if not isinstance(payload, dict):
        return None
    digits = "".join(str(payload.get(k) or "") for k in ("country_code", "areacode", "phonenumber"))
    return "+" + digits if digits else None
