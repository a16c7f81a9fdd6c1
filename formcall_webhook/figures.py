"""The operator's figures (spec 9): lead records grouped by day, hour, route, popup or campaign. Pure.

`leads stats` prints these rows as a table, CSV or JSON, and `leads report` draws them: every format
shows the same numbers. A record is read as the stores return it (a dict); only these fields matter:
`received_ts` (else `received_at`), `route`, `state`, `popup_uuid`, `utm_source`, `utm_campaign`,
`placed_at`, `uuid`, `attempts` and the `outcome` table (`connected`, `successful`, `call_at`).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

DEFAULT_TIMEZONE = "America/Santiago"  # a route's retry.timezone when it sets none (spec 8)
GROUPINGS = ("day", "route", "popup", "hour", "utm_source", "utm_campaign")
STATES = ("placed", "pending", "scheduled", "failed")
NO_OUTCOME = "–"  # where no outcome is tracked: unknown, which 0 would misread as "nobody answered"
# A row's fields in order, as CSV columns and JSON keys (after the group's own key).
COLUMNS = (
    "leads", "placed", "pending", "scheduled", "failed", "calls_per_lead", "connected", "successful",
    "connect_rate", "median_seconds", "p90_seconds", "connects_by_call",
)  # fmt: skip


@dataclass(frozen=True)
class Lead:
    """What the figures read of one record."""

    received: datetime  # in its route's time zone
    route: str
    state: str
    popup: str
    utm_source: str
    utm_campaign: str
    calls: int
    tracked: bool  # an outcome was recorded: connected/successful are known
    connected: bool
    successful: bool
    wait: float | None  # seconds from submission to the first call
    # Spec 11: which of the lead's calls connected (1 for the first); None when none did.
    connected_call: int | None = None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _instant(value: Any) -> datetime | None:
    """An ISO 8601 time with its offset ("2026-12-01T14:15:27Z", "2026-12-01T11:15:27-03:00")."""
    if not isinstance(value, str):
        return None
    try:
        found = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return found if found.tzinfo is not None else None


def received_ts(record: Mapping[str, Any]) -> float | None:
    ts = _number(record.get("received_ts"))
    if ts is not None:
        return ts
    found = _instant(record.get("received_at"))
    return found.timestamp() if found is not None else None


def wait_seconds(record: Mapping[str, Any]) -> float | None:
    """Submission to first call: FormCall's own call time when the outcome has it, else when it was placed."""
    received = received_ts(record)
    if received is None:
        return None
    outcome = record.get("outcome")
    called = _instant(outcome.get("call_at")) if isinstance(outcome, Mapping) else None
    if called is None:
        called = _instant(record.get("call_at"))
    if called is not None:
        # FormCall's clock and ours differ a little: a call is never before its submission.
        return max(0.0, called.timestamp() - received)
    placed = _number(record.get("placed_at"))
    return max(0.0, placed - received) if placed is not None else None


def calls_of(record: Mapping[str, Any]) -> int:
    """Calls placed for the lead: its list of calls when it keeps one, else the outcome's call_number,
    else one once it has a uuid."""
    calls = record.get("calls")
    if isinstance(calls, list):
        return len(calls)
    outcome = record.get("outcome")
    number = outcome.get("call_number") if isinstance(outcome, Mapping) else None
    if isinstance(number, int) and not isinstance(number, bool) and number > 0:
        return number
    return 1 if record.get("uuid") else 0


def connected_call(record: Mapping[str, Any]) -> int | None:
    """The number of the lead's call that connected (spec 11's recalls): from its calls when it keeps
    them, else 1 when its one outcome connected."""
    calls = record.get("calls")
    if isinstance(calls, list) and calls:
        for number, call in enumerate(calls, 1):
            if isinstance(call, Mapping) and call.get("connected") is True:
                return number
        return None
    return 1 if _outcome(record)[1] else None


def _outcome(record: Mapping[str, Any]) -> tuple[bool, bool, bool]:
    """(tracked, connected, successful): tracked once an outcome says whether the call connected."""
    outcome = record.get("outcome")
    source: Mapping[str, Any] = outcome if isinstance(outcome, Mapping) else record
    connected = source.get("connected")
    if not isinstance(connected, bool):
        return False, False, False
    return True, connected, source.get("successful") is True


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def zone_named(name: str | None) -> tzinfo:
    try:
        return ZoneInfo(name or DEFAULT_TIMEZONE)
    except (ValueError, KeyError):  # ZoneInfoNotFoundError is a KeyError
        return ZoneInfo(DEFAULT_TIMEZONE)


def lead_of(record: Mapping[str, Any], zones: Mapping[str, tzinfo], default_zone: tzinfo) -> Lead | None:
    """The figures' view of a record, its time in its route's zone; None for a record without a time."""
    ts = received_ts(record)
    if ts is None:
        return None
    route = _text(record.get("route"))
    tracked, connected, successful = _outcome(record)
    return Lead(
        received=datetime.fromtimestamp(ts, zones.get(route, default_zone)),
        route=route,
        state=_text(record.get("state")),
        popup=_text(record.get("popup_uuid")),
        utm_source=_text(record.get("utm_source")),
        utm_campaign=_text(record.get("utm_campaign")),
        calls=calls_of(record),
        connected_call=connected_call(record),
        tracked=tracked,
        connected=connected,
        successful=successful,
        wait=wait_seconds(record),
    )


def leads_of(
    records: Iterable[Mapping[str, Any]], zones: Mapping[str, tzinfo] | None = None, default_zone: tzinfo | None = None
) -> list[Lead]:
    zone = default_zone or ZoneInfo(DEFAULT_TIMEZONE)
    found = (lead_of(record, zones or {}, zone) for record in records)
    return sorted((lead for lead in found if lead is not None), key=lambda lead: lead.received)


def key_of(lead: Lead, by: str) -> str:
    if by == "day":
        return lead.received.date().isoformat()
    if by == "hour":
        return f"{lead.received.hour:02d}"
    return {"route": lead.route, "popup": lead.popup, "utm_source": lead.utm_source,
            "utm_campaign": lead.utm_campaign}[by]  # fmt: skip


def percentile(values: list[float], fraction: float) -> float:
    """Nearest rank: a wait that occurred, never one interpolated between two leads."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def summary(leads: list[Lead]) -> dict[str, Any]:
    """One row's figures; connected, successful and connect_rate are None where no outcome is tracked."""
    row: dict[str, Any] = {"leads": len(leads)}
    for state in STATES:
        row[state] = sum(lead.state == state for lead in leads)
    row["calls"] = sum(lead.calls for lead in leads)
    row["calls_per_lead"] = round(row["calls"] / len(leads), 2) if leads else None
    tracked = [lead for lead in leads if lead.tracked]
    row["tracked"] = len(tracked)
    row["connected"] = sum(lead.connected for lead in tracked) if tracked else None
    row["successful"] = sum(lead.successful for lead in tracked) if tracked else None
    row["connect_rate"] = round(row["connected"] / len(tracked), 3) if tracked else None
    by_call: dict[str, int] = {}
    for number in sorted(lead.connected_call for lead in tracked if lead.connected_call is not None):
        by_call[str(number)] = by_call.get(str(number), 0) + 1
    row["connects_by_call"] = by_call if tracked else None
    waits = [lead.wait for lead in leads if lead.wait is not None]
    row["median_seconds"] = round(statistics.median(waits), 1) if waits else None
    row["p90_seconds"] = round(percentile(waits, 0.9), 1) if waits else None
    return row


def rows(leads: Iterable[Lead], by: str = "day") -> list[dict[str, Any]]:
    """One row per group, `by`'s own key first ("" where a lead has none: no campaign, say), in the
    group's natural order: days and hours in time order, the others by most leads."""
    if by not in GROUPINGS:
        raise ValueError(f"--by must be one of {', '.join(GROUPINGS)}")
    groups: dict[str, list[Lead]] = {}
    for lead in leads:
        groups.setdefault(key_of(lead, by), []).append(lead)
    if by in ("day", "hour"):
        order = sorted(groups)
    else:
        order = sorted(groups, key=lambda key: (-len(groups[key]), key == "", key))
    return [{by: key, **summary(groups[key])} for key in order]


def days(leads: list[Lead], first: date | None = None, last: date | None = None) -> list[dict[str, Any]]:
    """Rows by day with the days that had no lead too (a chart's x axis has no holes)."""
    by_day = {row["day"]: row for row in rows(leads, "day")}
    if not by_day and (first is None or last is None):
        return []
    start = first or date.fromisoformat(min(by_day))
    end = last or date.fromisoformat(max(by_day))
    found = []
    while start <= end:
        key = start.isoformat()
        found.append(by_day.get(key) or {"day": key, **summary([])})
        start += timedelta(days=1)
    return found


def cell(row: Mapping[str, Any], column: str) -> str:
    """A row's value as text (the table and the CSV): NO_OUTCOME where no outcome is tracked."""
    value = row.get(column)
    if column in ("connected", "successful", "connect_rate", "connects_by_call") and value is None:
        return NO_OUTCOME
    if column == "connects_by_call" and isinstance(value, Mapping):
        # Connects by call number: "1:12 2:4 3:1" (12 leads reached on the first call, 4 on the second...).
        return " ".join(f"{number}:{count}" for number, count in value.items()) or "0"
    if value is None:
        return ""
    if column == "connect_rate":
        return f"{value * 100:.0f}%"
    if column.endswith("_seconds"):
        return human(value)
    if isinstance(value, float):
        return f"{value:.2f}".rstrip("0").rstrip(".") if column != "calls_per_lead" else f"{value:.2f}"
    return str(value)


def human(seconds: float | None) -> str:
    """42s, 3m12s, 2h05m, 1d04h: a wait as an operator reads it."""
    if seconds is None:
        return ""
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    if whole < 86400:
        return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
    return f"{whole // 86400}d{whole % 86400 // 3600:02d}h"
