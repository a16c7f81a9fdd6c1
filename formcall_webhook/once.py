"""Exactly one call per lead: the values claims hold (spec 4 and 8); their keys are `keys.py`'s.

A claim holds `pending:<id>` while a submission is calling FormCall, then the first answer (the lead's
id, and its uuid once there is one) for the dedupe window, or, on a route with `retry = false`,
`uncertain:<time>:<lead_id>` when FormCall got the request but its answer was lost; the next delivery
settles that from FormCall's own list before anything is placed again.
"""

from __future__ import annotations

import json
import secrets
from typing import NamedTuple

PENDING = "pending:"
UNCERTAIN = "uncertain:"
# How long a replayed Idempotency-Key is recognised: senders retry for a day or more.
IDEMPOTENCY_SECONDS = 86400


def new_marker() -> str:
    return PENDING + secrets.token_hex(8)


def uncertain_value(since: float, lead_id: str) -> str:
    return f"{UNCERTAIN}{since:.3f}:{lead_id}"


def parse_uncertain(value: str) -> tuple[float, str]:
    """The time of the attempt whose answer was lost, and its lead's id."""
    _, since, lead_id = [*value.split(":", 2), "", ""][:3]
    try:
        return float(since), lead_id
    except ValueError:
        return 0.0, lead_id


class FirstAnswer(NamedTuple):
    """What the first submission got; every duplicate is answered with it."""

    lead_id: str | None
    uuid: str | None = None
    pending: bool = False
    scheduled: bool = False

    def dumps(self) -> str:
        data = {"lead_id": self.lead_id, "uuid": self.uuid, "pending": self.pending, "scheduled": self.scheduled}
        return json.dumps({k: v for k, v in data.items() if v})

    @staticmethod
    def loads(text: str) -> FirstAnswer:
        try:
            data = json.loads(text)
        except ValueError:
            return FirstAnswer(None)
        if not isinstance(data, dict):
            return FirstAnswer(None)
        lead_id, uuid = data.get("lead_id"), data.get("uuid")
        return FirstAnswer(
            lead_id if isinstance(lead_id, str) else None,
            uuid if isinstance(uuid, str) else None,
            data.get("pending") is True,
            data.get("scheduled") is True,
        )
