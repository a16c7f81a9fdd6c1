"""Settling a lost answer (spec 8) on the fields /calls/list documents. Pure: no I/O.

An attempt whose answer was lost may have placed a call. A row of FormCall's list is the lead's call
when it is on the lead's popup, its `call_at` falls between the attempt's start and its end plus one
minute, and no other lead holds its uuid. Several leads lost on one popup in one window share the rows
found among them, none rung twice: each takes a row no one holds, in the order of their attempts, and a
lead left without one shares a row another lost lead took; neither can then tell its uuid apart
(`uuid_certain: false`). Where a row carries a customer number, it decides.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

# After the attempt's end, how long FormCall may take to list the call it queued (spec 8: one minute).
LISTING_SLACK_SECONDS = 60.0
# Extra fields some rows carry (never documented): when one is there, it says whom the call rang.
CUSTOMER_NUMBER_FIELDS = ("call_number_customer", "customer_number", "number_customer", "customer_phone")


@dataclass(frozen=True)
class LostAttempt:
    """An attempt whose answer was lost: its lead, popup, window and the number it rang (digits)."""

    lead_id: str
    popup_uuid: str
    start: float
    end: float
    digits: str = ""

    def covers(self, call_at: float) -> bool:
        return math.floor(self.start) <= call_at <= self.end + LISTING_SLACK_SECONDS

    def overlaps(self, other: LostAttempt) -> bool:
        return self.start <= other.end + LISTING_SLACK_SECONDS and other.start <= self.end + LISTING_SLACK_SECONDS


@dataclass(frozen=True)
class Holder:
    """Another lead's uuid: held for certain, or shared by lost leads that could not tell theirs apart."""

    lead_id: str
    uuid: str
    certain: bool


@dataclass(frozen=True)
class Row:
    uuid: str
    call_at: float
    popup_uuid: str | None
    customer: str  # digits of a customer number, "" when the row names none (as documented)


@dataclass(frozen=True)
class Settled:
    """The lead's call (uuid) or None: never placed; `certain` is False when it could not be told apart.
    With `wait_until`, nothing is settled yet: another attempt in the window may still be answered."""

    uuid: str | None
    certain: bool = True
    wait_until: float | None = None


def rows_of(listing: Any) -> list[Row]:
    """The rows of one /calls/list answer that have a uuid and a documented call_at."""
    rows = []
    for item in listing if isinstance(listing, list) else []:
        if not isinstance(item, Mapping) or not isinstance(item.get("uuid"), str):
            continue
        when = call_at(item.get("call_at"))
        if when is None:
            continue
        customer = next((_digits(item[k]) for k in CUSTOMER_NUMBER_FIELDS if item.get(k)), "")
        popup = item.get("popup_uuid")
        rows.append(Row(item["uuid"].strip().lower(), when, popup.lower() if isinstance(popup, str) else None,
                        customer))  # fmt: skip
    return rows


def call_at(value: Any) -> float | None:
    """call_at as documented, "2019/04/02 10:05:03 -0300", in epoch seconds."""
    if not isinstance(value, str):
        return None
    try:
        return datetime.strptime(value.strip(), "%Y/%m/%d %H:%M:%S %z").timestamp()
    except ValueError:
        return None


def settle(
    mine: LostAttempt, rows: Iterable[Row], holders: Iterable[Holder], others_lost: Sequence[LostAttempt] = ()
) -> Settled:
    """The lead's call among `rows` (the complete list for its window); `holders` are the uuids other
    leads hold; `others_lost`, the other leads on the popup whose answers were lost too, not yet settled."""
    held = {h.uuid: h for h in holders if h.lead_id != mine.lead_id}
    popup = mine.popup_uuid.lower()
    found = sorted(
        (r for r in rows if (r.popup_uuid in (None, popup)) and mine.covers(r.call_at)),
        key=lambda r: (r.call_at, r.uuid),
    )
    if mine.digits:
        # A customer number decides: the row that names ours is ours; a row naming another is not.
        numbered = [r for r in found if r.customer and _same_number(r.customer, mine.digits)]
        if numbered:
            free = [r for r in numbered if r.uuid not in held]
            return Settled((free or numbered)[0].uuid)
        found = [r for r in found if not r.customer]
    free = [r for r in found if r.uuid not in held]
    shared = [r for r in found if r.uuid in held and not held[r.uuid].certain]
    rivals = sorted([a for a in others_lost if a.lead_id != mine.lead_id and a.popup_uuid.lower() == popup
                     and a.overlaps(mine)], key=lambda a: (a.start, a.lead_id))  # fmt: skip
    if not free and not shared:
        return Settled(None)
    if free and not shared and not rivals and len(free) == 1:
        return Settled(free[0].uuid)
    # Several leads, or several calls: take a free row in the order of the attempts, else share one.
    rank = sum(1 for a in rivals if (a.start, a.lead_id) < (mine.start, mine.lead_id))
    if rank < len(free):
        return Settled(free[rank].uuid, certain=False)
    pool = free + shared
    return Settled(pool[rank % len(pool)].uuid, certain=False)


def _same_number(listed: str, digits: str) -> bool:
    return listed.endswith(digits) or digits.endswith(listed)


def _digits(value: Any) -> str:
    return "".join(c for c in str(value) if c.isdigit())
