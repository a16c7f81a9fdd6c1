"""Lead states, retry backoff, service hours and the leads policy (spec 8, 10); pure.

config.py reads the `retry` and `[leads]` tables into the policies defined here; the outcome and recall
policies (spec 9, 11) are in outcomes.py, which the webhook's cold start never loads."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo


class LeadState(StrEnum):
    """Where a lead stands (spec 8). An attempt in flight is a scheduled lead whose `Attempt.since` is set."""

    SCHEDULED = "scheduled"
    PLACED = "placed"
    PENDING = "pending"
    FAILED = "failed"


SCHEDULED, PLACED, PENDING, FAILED = LeadState.SCHEDULED, LeadState.PLACED, LeadState.PENDING, LeadState.FAILED
STATES = tuple(LeadState)

# old state -> states it may move to. failed -> scheduled is `leads retry` only; failed -> placed or pending
# is a lost answer's call found after its lead failed (retry = false); placed and pending are final.
_MOVES = {
    SCHEDULED: frozenset({PLACED, PENDING, SCHEDULED, FAILED}),
    FAILED: frozenset({SCHEDULED, PLACED, PENDING}),
    PLACED: frozenset(),
    PENDING: frozenset(),
}


def can_move(old: str, new: str) -> bool:
    """Whether a lead in state `old` may be written in state `new`."""
    return new in _MOVES.get(old, frozenset())  # type: ignore[call-overload]


# ---------------------------------------------------------------------------------------------- durations

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"(\d{1,9})([smhd])")
# Longer waits are typos: no retry, age or outcome window here needs more than a year.
MAX_DURATION = 366 * 86400
_DURATION_HELP = 'write a whole number and a unit s, m, h or d, e.g. "90s", "5m", "24h"'


def parse_duration(text: str) -> int:
    """ "30s" "5m" "1h" "2d" -> seconds; ValueError otherwise."""
    if not isinstance(text, str):
        raise ValueError(f"must be a duration string, not {type(text).__name__}: {_DURATION_HELP}")
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not a duration: {_DURATION_HELP}")
    seconds = int(match[1]) * _UNITS[match[2]]
    if seconds > MAX_DURATION:
        raise ValueError(f"{text!r} is longer than a year (366d)")
    return seconds


# ----------------------------------------------------------------------------------------- service hours

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# Spanish too, as a Chilean operator writes them: "lun-vie 9:00-19:00, sáb 10:00-14:00".
SPANISH_DAY_NAMES = ("lun", "mar", "mié", "jue", "vie", "sáb", "dom")
_DAYS = {
    **{name: day for day, name in enumerate(DAY_NAMES)},
    **{name: day for day, name in enumerate(SPANISH_DAY_NAMES)},
    "mie": 2,
    "sab": 5,
}
DAY_SECONDS = 86400
# 09:00 or 9:00.
_CLOCK = re.compile(r"(\d{1,2}):(\d{2})")
_HOURS_EXAMPLE = '"mon-fri 09:00-19:00, sat 10:00-14:00"'

Window = tuple[int, int]  # [start, end) in seconds of the local day


class ServiceHours(NamedTuple):
    """When the call centre answers: per weekday (Monday first), sorted disjoint windows of the local day."""

    text: str
    week: tuple[tuple[Window, ...], ...]

    def windows(self, weekday: int) -> tuple[Window, ...]:
        return self.week[weekday]

    def open_at(self, weekday: int, second: float) -> bool:
        return any(start <= second < end for start, end in self.week[weekday])


# Every day, all day: the hours of a policy that names holidays but no service_hours.
ALWAYS = ServiceHours("mon-sun 00:00-24:00", (((0, DAY_SECONDS),),) * 7)


def parse_service_hours(text: str) -> ServiceHours:
    """Parse "mon-fri 09:00-19:00, sat 10:00-14:00"; ValueError naming what is wrong."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"must be day ranges with hours, e.g. {_HOURS_EXAMPLE}")
    days: list[list[Window]] = [[] for _ in DAY_NAMES]
    for part in text.split(","):
        words = part.split()
        if len(words) < 2:
            raise ValueError(f"{part.strip()!r} needs a day range and hours, e.g. {_HOURS_EXAMPLE}")
        weekdays = _day_range(words[0])
        spans = [_clock_range(word) for word in words[1:]]
        for day in weekdays:
            days[day].extend(spans)
    return ServiceHours(" ".join(text.split()), tuple(_merge(windows) for windows in days))


def _day_range(word: str) -> list[int]:
    first, sep, last = word.lower().partition("-")
    for name in (first, last) if sep else (first,):
        if name not in _DAYS:
            raise ValueError(
                f"{name!r} is not a day: use {', '.join(DAY_NAMES)} (or {', '.join(SPANISH_DAY_NAMES)}), "
                "or a range such as mon-fri or lun-vie"
            )
    start = _DAYS[first]
    count = (_DAYS[last] - start) % 7 + 1 if sep else 1
    # A range may wrap past Sunday: fri-mon is Friday, Saturday, Sunday and Monday.
    return [(start + i) % 7 for i in range(count)]


def _clock_range(word: str) -> Window:
    first, sep, last = word.partition("-")
    if not sep:
        raise ValueError(f"{word!r} is not a time range such as 09:00-19:00")
    start, end = _clock(first, word), _clock(last, word)
    if start == DAY_SECONDS:
        raise ValueError(f"{word!r}: 24:00 can only end a range")
    if end <= start:
        raise ValueError(
            f"{word!r}: the end must be after the start; for hours past midnight use two ranges, "
            'e.g. "fri 22:00-24:00, sat 00:00-02:00"'
        )
    return start, end


def _clock(text: str, word: str) -> int:
    match = _CLOCK.fullmatch(text)
    if match is None:
        raise ValueError(f"{word!r}: {text!r} is not a time of day such as 09:00 or 9:00")
    hour, minute = int(match[1]), int(match[2])
    if (hour, minute) != (24, 0) and (hour > 23 or minute > 59):
        raise ValueError(f"{word!r}: {text!r} is not a time of day (00:00 to 24:00)")
    return hour * 3600 + minute * 60


def _merge(windows: Iterable[Window]) -> tuple[Window, ...]:
    merged: list[Window] = []
    for start, end in sorted(windows):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return tuple(merged)


# ----------------------------------------------------------------------------------------------- holidays


@functools.lru_cache(maxsize=64)
def _holiday_dates(country: str, year: int) -> frozenset[date]:
    # Imported here so that a config without `holidays` never loads the library.
    import holidays

    return frozenset(holidays.country_holidays(country, years=year).keys())


def _is_holiday(country: str, day: date) -> bool:
    return day in _holiday_dates(country, day.year)


def supported_countries() -> frozenset[str]:
    """The country codes the `holidays` library knows."""
    import holidays

    return frozenset(holidays.list_supported_countries())


# ------------------------------------------------------------------------------------------------- retry


@functools.lru_cache(maxsize=32)
def zone(name: str) -> ZoneInfo:
    """A time zone's rules, read at first use: a request that never asks the local time never loads them.

    ZoneInfoNotFoundError (a KeyError) or ValueError when `name` is not a zone."""
    from zoneinfo import ZoneInfo

    return ZoneInfo(name)


RETRY_WORDS = frozenset({"formcall_unavailable", "origination_failed", "out_of_service_hours"})
DEFAULT_SCHEDULE = (60, 300, 900, 3600, 10800, 21600)
DEFAULT_MAX_AGE = 86400
DEFAULT_TIMEZONE = "America/Santiago"
# How far ahead an opening is looked for; past it the hours cannot be met (never, with valid hours).
_SEARCH_DAYS = 400
# Out-of-range instants (year 10000) make datetime raise these.
_TIME_ERRORS = (OverflowError, ValueError, OSError)


class RetryPolicy(NamedTuple):
    """When a kept lead is attempted again (spec 8). Times are epoch seconds."""

    on: frozenset[str] = RETRY_WORDS
    schedule: tuple[int, ...] = DEFAULT_SCHEDULE
    max_age: int = DEFAULT_MAX_AGE
    service_hours: ServiceHours | None = None
    timezone: str = DEFAULT_TIMEZONE
    holidays: str | None = None

    @property
    def _zone(self) -> ZoneInfo:
        return zone(self.timezone)

    def covers(self, word: str) -> bool:
        return word in self.on

    def _hours(self) -> ServiceHours | None:
        if self.service_hours is not None:
            return self.service_hours
        # Holidays without hours: any time of a day that is not a holiday.
        return ALWAYS if self.holidays else None

    def in_service(self, when: float) -> bool:
        """Whether an attempt may be made at `when`; always, when neither hours nor holidays are set."""
        hours = self._hours()
        if hours is None:
            return True
        try:
            local = datetime.fromtimestamp(when, self._zone)
            if self.holidays and _is_holiday(self.holidays, local.date()):
                return False
        except _TIME_ERRORS:
            return False
        second = local.hour * 3600 + local.minute * 60 + local.second + local.microsecond / 1e6
        return hours.open_at(local.weekday(), second)

    def next_opening(self, after: float) -> float:
        """`after` when in service, else the first later instant in service (holidays skipped).

        If none is found within 400 days (hours that never open), `after + max_age`, so the lead expires.
        """
        hours = self._hours()
        if hours is None or self.in_service(after):
            return after
        try:
            day = datetime.fromtimestamp(after, self._zone).date()
            for _ in range(_SEARCH_DAYS):
                if not (self.holidays and _is_holiday(self.holidays, day)):
                    for start, end in hours.windows(day.weekday()):
                        opening = _first_instant(day, start, end, self._zone)
                        if opening is not None and opening > after and self.in_service(opening):
                            return opening
                day += timedelta(days=1)
        except _TIME_ERRORS:
            pass
        return after + self.max_age

    def next_attempt(self, attempts: int, last_error: str, now: float) -> float:
        """When to try again after `attempts` attempts (>= 1), the last ending in `last_error`."""
        if last_error == "out_of_service_hours" and self.service_hours is not None:
            opening = self.next_opening(now)
            # Inside our hours but FormCall's own differ: fall back on the schedule.
            if opening > now:
                return opening
        step = self.schedule[min(max(attempts, 1), len(self.schedule)) - 1]
        return self.next_opening(now + step)

    def expired(self, received_at: float, now: float) -> bool:
        return now - received_at >= self.max_age


def _first_instant(day: date, start: int, end: int, zone: ZoneInfo) -> float | None:
    """The first instant whose local date is `day` and local time of day is in [start, end), if any."""
    wall = datetime.combine(day, time()) + timedelta(seconds=start)
    instant = wall.replace(tzinfo=zone).timestamp()  # fold=0: the first of a repeated hour
    if datetime.fromtimestamp(instant, zone).replace(tzinfo=None) != wall:
        # `start` was skipped by a clock change: the window opens when the clocks jump past it.
        low, high = int(wall.replace(tzinfo=zone, fold=1).timestamp()), int(instant)
        while high - low > 1:
            middle = (low + high) // 2
            if datetime.fromtimestamp(middle, zone).replace(tzinfo=None) >= wall:
                high = middle
            else:
                low = middle
        instant = high
    local = datetime.fromtimestamp(instant, zone)
    seconds = local.hour * 3600 + local.minute * 60 + local.second
    if local.date() != day or seconds >= end:
        return None
    return float(instant)


DEFAULT_RETRY = RetryPolicy()

# ------------------------------------------------------------------------------------------------- leads

KEEP_FIELDS = ("until_done", "keep")


class LeadsPolicy(NamedTuple):
    """The `[leads]` table: how long records live, what they keep, and the opt-out hash key."""

    keep_days: int = 30
    keep_fields: str = "until_done"
    hash_key: str | None = None
