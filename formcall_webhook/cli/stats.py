"""`leads stats`: leads per day and route, what became of them, and how long they waited (spec 9). Pure."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping
from datetime import datetime, tzinfo
from typing import Any

from .. import records

# The columns, in order: counts, then the wait from submission to the call, in seconds.
COUNTS = ("leads", "placed", "pending", "scheduled", "failed", "connected", "successful")
STATES = (records.PLACED, records.PENDING, records.SCHEDULED, records.FAILED)


def wait_seconds(record: Mapping[str, Any]) -> float | None:
    """Submission to call: FormCall's own call time when the outcome has it, else when it was placed."""
    received = record.get("received_ts")
    if not isinstance(received, (int, float)):
        return None
    outcome = record.get("outcome") or {}
    call_at = outcome.get("call_at") if isinstance(outcome, dict) else None
    if isinstance(call_at, str):
        try:
            called = datetime.fromisoformat(call_at)
        except ValueError:
            called = None
        if called is not None and called.tzinfo is not None:
            # FormCall's clock and ours differ a little: a call is never before its submission.
            return max(0.0, called.timestamp() - received)
    placed_at = record.get("placed_at")
    if isinstance(placed_at, (int, float)) and not isinstance(placed_at, bool):
        return max(0.0, placed_at - received)
    return None


def percentile(values: list[float], fraction: float) -> float:
    """Nearest rank: a value that occurred, never one interpolated between two leads."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def rows(leads: Iterable[Mapping[str, Any]], zone: tzinfo) -> list[dict[str, Any]]:
    """One row per (day of received_at in `zone`, route), oldest day first."""
    groups: dict[tuple[str, str], dict[str, Any]] = {}
    waits: dict[tuple[str, str], list[float]] = {}
    for record in leads:
        received = record.get("received_ts")
        if not isinstance(received, (int, float)):
            continue
        key = (datetime.fromtimestamp(received, zone).date().isoformat(), str(record.get("route", "")))
        row = groups.setdefault(key, {"day": key[0], "route": key[1], **dict.fromkeys(COUNTS, 0)})
        row["leads"] += 1
        if record.get("state") in STATES:
            row[record["state"]] += 1
        outcome = record.get("outcome")
        if isinstance(outcome, dict):
            row["connected"] += outcome.get("connected") is True
            row["successful"] += outcome.get("successful") is True
        wait = wait_seconds(record)
        if wait is not None:
            waits.setdefault(key, []).append(wait)
    for key, row in groups.items():
        found = waits.get(key)
        row["median_seconds"] = round(statistics.median(found), 1) if found else None
        row["p90_seconds"] = round(percentile(found, 0.9), 1) if found else None
    return [groups[key] for key in sorted(groups)]


def human(seconds: float | None) -> str:
    """42s, 3m12s, 2h05m: a wait as an operator reads it."""
    if seconds is None:
        return "-"
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
