"""Lead states, retry backoff, service hours with Chile's clocks and holidays, outcome and leads policies."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from formcall_webhook import errors, states
from formcall_webhook.answers import failure
from formcall_webhook.config_policies import parse_leads, parse_outcome, parse_retry
from formcall_webhook.config_reader import check_secret_reference
from formcall_webhook.errors import ConfigError
from formcall_webhook.outcomes import HubSpotOutcome, OutcomePolicy
from formcall_webhook.states import (
    DEFAULT_RETRY,
    FAILED,
    PENDING,
    PLACED,
    SCHEDULED,
    STATES,
    LeadsPolicy,
    RetryPolicy,
    can_move,
    parse_duration,
    parse_service_hours,
)

SANTIAGO = ZoneInfo("America/Santiago")
UTC = ZoneInfo("UTC")
M, H, D = 60, 3600, 86400


def at(*parts: int) -> float:
    """Epoch seconds of a wall-clock time in Santiago."""
    return datetime(*parts, tzinfo=SANTIAGO).timestamp()  # type: ignore[misc]


def local(when: float) -> datetime:
    return datetime.fromtimestamp(when, SANTIAGO)


def utc(when: float) -> str:
    return datetime.fromtimestamp(when, UTC).strftime("%Y-%m-%d %H:%M")


def policy(**table: Any) -> RetryPolicy:
    result = parse_retry("formcall.toml", "routes.default.retry", table)
    assert result is not None
    return result


OFFICE = policy(service_hours="mon-fri 09:00-19:00", holidays="CL")


# ------------------------------------------------------------------------------------------------ states


@pytest.mark.parametrize("old", STATES)
@pytest.mark.parametrize("new", STATES)
def test_transitions(old: str, new: str) -> None:
    allowed = {
        SCHEDULED: {SCHEDULED, PLACED, PENDING, FAILED},
        # failed -> placed or pending: a retry = false lead whose lost answer's call is found afterwards
        # (delivery's _settle_uncertain always wrote this move; the table now says so).
        FAILED: {SCHEDULED, PLACED, PENDING},
        PLACED: set(),
        PENDING: set(),
    }
    assert can_move(old, new) is (new in allowed[old])


def test_unknown_states_never_move() -> None:
    assert not can_move("done", SCHEDULED)
    assert not can_move(SCHEDULED, "done")


# --------------------------------------------------------------------------------------------- durations


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("5m", 300), ("1h", 3600), ("2d", 172800), (" 15m ", 900), ("0s", 0), ("366d", 366 * D)],
)
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "5", "m", "1.5h", "-5m", "5 m", "5M", "5min", "1w", "367d", "h1", 300, None])
def test_bad_durations(text: Any) -> None:
    with pytest.raises(ValueError, match=r"duration|longer than a year"):
        parse_duration(text)


# ----------------------------------------------------------------------------------------- service hours


def test_service_hours_parsed_per_day() -> None:
    hours = parse_service_hours("Mon-Fri 09:00-13:00 14:00-19:00,  sat 10:00-14:00")
    assert hours.windows(0) == hours.windows(4) == ((9 * H, 13 * H), (14 * H, 19 * H))
    assert hours.windows(5) == ((10 * H, 14 * H),)
    assert hours.windows(6) == ()
    assert hours.text == "Mon-Fri 09:00-13:00 14:00-19:00, sat 10:00-14:00"
    assert hours.open_at(0, 9 * H) and not hours.open_at(0, 13 * H) and hours.open_at(0, 19 * H - 1)


def test_day_range_wraps_and_overlaps_merge() -> None:
    hours = parse_service_hours("fri-mon 10:00-12:00, mon 11:00-24:00, sun 12:00-13:00")
    assert [bool(hours.windows(day)) for day in range(7)] == [True, False, False, False, True, True, True]
    assert hours.windows(0) == ((10 * H, 24 * H),)
    assert hours.windows(6) == ((10 * H, 13 * H),)
    assert parse_service_hours("sun-sat 00:00-24:00").week == states.ALWAYS.week


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "day ranges with hours"),
        ("mon-fri", "needs a day range and hours"),
        ("mon-fri 09:00-19:00,", "needs a day range and hours"),
        ("lunes-vie 09:00-19:00", "'lunes' is not a day"),
        ("mon-fry 09:00-19:00", "'fry' is not a day"),
        ("mon 09:00", "'09:00' is not a time range"),
        ("mon 0900-1900", "'0900' is not a time of day"),
        ("mon 900:00-19:00", "'900:00' is not a time of day"),
        ("mon 09:00-25:00", "not a time of day"),
        ("mon 09:60-10:00", "not a time of day"),
        ("mon 19:00-09:00", "the end must be after the start"),
        ("mon 09:00-09:00", "the end must be after the start"),
        ("mon 24:00-24:00", "24:00 can only end a range"),
    ],
)
def test_bad_service_hours(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=re.escape(problem)):
        parse_service_hours(text)


# ------------------------------------------------------------------------------------------ the schedule


def test_schedule_steps_then_the_last_repeats() -> None:
    now = at(2026, 6, 10, 12, 0)
    waits = [DEFAULT_RETRY.next_attempt(attempts, "formcall_unavailable", now) - now for attempts in range(1, 10)]
    assert waits == [1 * M, 5 * M, 15 * M, 1 * H, 3 * H, 6 * H, 6 * H, 6 * H, 6 * H]
    # attempts below 1 (a caller's slip) count as the first.
    assert DEFAULT_RETRY.next_attempt(0, "formcall_unavailable", now) == now + M


def test_custom_schedule_and_words() -> None:
    custom = policy(on=["origination_failed"], schedule=["30s", "2m"], max_age="1h")
    assert custom.covers("origination_failed")
    assert not custom.covers("formcall_unavailable") and not custom.covers("out_of_service_hours")
    assert [custom.next_attempt(n, "origination_failed", 1000.0) for n in (1, 2, 3)] == [1030.0, 1120.0, 1120.0]


def test_default_policy() -> None:
    assert parse_retry("f", "k", None) is DEFAULT_RETRY
    assert parse_retry("f", "k", True) is DEFAULT_RETRY
    assert parse_retry("f", "k", False) is None
    assert DEFAULT_RETRY.on == {"formcall_unavailable", "origination_failed", "out_of_service_hours"}
    assert DEFAULT_RETRY.max_age == 24 * H
    assert (DEFAULT_RETRY.timezone, DEFAULT_RETRY.service_hours, DEFAULT_RETRY.holidays) == (
        "America/Santiago",
        None,
        None,
    )
    assert policy() == DEFAULT_RETRY
    # No hours and no holidays: always in service, and out-of-hours answers follow the schedule.
    assert DEFAULT_RETRY.in_service(at(2026, 9, 18, 3, 0))
    assert DEFAULT_RETRY.next_attempt(2, "out_of_service_hours", 500.0) == 800.0


def test_max_age() -> None:
    short = policy(max_age="2h")
    assert not short.expired(1000.0, 1000.0 + 2 * H - 1)
    assert short.expired(1000.0, 1000.0 + 2 * H)
    assert DEFAULT_RETRY.expired(0.0, 24 * H) and not DEFAULT_RETRY.expired(0.0, 24 * H - 0.5)


# ---------------------------------------------------------------------------------- hours and holidays


def test_inside_hours_the_schedule_applies_as_is() -> None:
    now = at(2026, 6, 10, 10, 0)  # a Wednesday
    assert OFFICE.in_service(now)
    assert OFFICE.next_opening(now) == now
    assert OFFICE.next_attempt(2, "origination_failed", now) == now + 5 * M


def test_friday_evening_lead_is_called_monday_morning() -> None:
    friday = at(2026, 6, 12, 19, 30)
    assert not OFFICE.in_service(friday)
    assert local(OFFICE.next_attempt(1, "out_of_service_hours", friday)) == datetime(2026, 6, 15, 9, 0, tzinfo=SANTIAGO)
    # A schedule step that lands after closing also waits for Monday.
    late = at(2026, 6, 12, 18, 58)
    assert local(OFFICE.next_attempt(2, "formcall_unavailable", late)) == datetime(2026, 6, 15, 9, 0, tzinfo=SANTIAGO)
    assert OFFICE.next_attempt(1, "formcall_unavailable", late) == late + M


def test_monday_holiday_moves_the_call_to_tuesday() -> None:
    # 2026-10-12 (Monday) is Chile's Encuentro de Dos Mundos.
    friday = at(2026, 10, 9, 19, 30)
    assert local(OFFICE.next_attempt(1, "out_of_service_hours", friday)) == datetime(
        2026, 10, 13, 9, 0, tzinfo=SANTIAGO
    )
    assert not OFFICE.in_service(at(2026, 10, 12, 11, 0))


def test_fiestas_patrias_and_new_year() -> None:
    # 2027-09-17 (Fri), 18 and 19 are holidays: Thursday evening waits until Monday the 20th.
    thursday = at(2027, 9, 16, 20, 0)
    assert local(OFFICE.next_opening(thursday)) == datetime(2027, 9, 20, 9, 0, tzinfo=SANTIAGO)
    # 2027-01-01 is a Friday holiday.
    assert local(OFFICE.next_opening(at(2026, 12, 31, 19, 0))) == datetime(2027, 1, 4, 9, 0, tzinfo=SANTIAGO)


def test_holidays_without_hours_close_whole_days() -> None:
    no_holidays = policy(holidays="cl")
    assert no_holidays.holidays == "CL"
    assert no_holidays.in_service(at(2026, 9, 17, 23, 59)) and not no_holidays.in_service(at(2026, 9, 18, 0, 0))
    # A wait that lands on 18-19 September moves to the first minute of the 20th.
    step = no_holidays.next_attempt(6, "formcall_unavailable", at(2026, 9, 17, 20, 0))
    assert local(step) == datetime(2026, 9, 20, 0, 0, tzinfo=SANTIAGO)


def test_out_of_service_hours_inside_our_hours_uses_the_schedule() -> None:
    # FormCall's popup closes earlier than the hours configured here: no point in waiting for "the next opening".
    now = at(2026, 6, 10, 11, 0)
    assert OFFICE.next_attempt(3, "out_of_service_hours", now) == now + 15 * M


def test_wrapping_day_range() -> None:
    weekend = policy(service_hours="fri-mon 10:00-12:00", timezone="UTC")
    tuesday = datetime(2026, 6, 16, 11, 0, tzinfo=UTC).timestamp()
    assert not weekend.in_service(tuesday)
    assert utc(weekend.next_opening(tuesday)) == "2026-06-19 10:00"
    assert weekend.in_service(datetime(2026, 6, 21, 11, 59, tzinfo=UTC).timestamp())  # Sunday
    # Past Monday's close the next window is Friday's.
    assert utc(weekend.next_opening(datetime(2026, 6, 22, 12, 0, tzinfo=UTC).timestamp())) == "2026-06-26 10:00"


def test_second_window_of_the_day() -> None:
    split = policy(service_hours="mon-fri 09:00-13:00 14:00-19:00")
    lunch = at(2026, 6, 10, 13, 0)
    assert not split.in_service(lunch)
    assert local(split.next_opening(lunch)) == datetime(2026, 6, 10, 14, 0, tzinfo=SANTIAGO)


def test_other_timezone() -> None:
    madrid = policy(service_hours="mon-fri 09:00-18:00", timezone="Europe/Madrid")
    # 08:30 in Madrid is 03:30 in Santiago (winter in Chile, summer in Spain: six hours apart).
    assert utc(madrid.next_opening(datetime(2026, 6, 10, 6, 30, tzinfo=UTC).timestamp())) == "2026-06-10 07:00"


# ------------------------------------------------------------------------------------- Chile's clock changes


def test_april_change_keeps_nine_oclock_local() -> None:
    # Clocks go back at 24:00 on Saturday 2026-04-04 (-03 to -04). Good Friday and Holy Saturday are holidays.
    thursday = at(2026, 4, 2, 19, 30)
    opening = OFFICE.next_opening(thursday)
    assert local(opening) == datetime(2026, 4, 6, 9, 0, tzinfo=SANTIAGO)
    assert utc(opening) == "2026-04-06 13:00"
    assert utc(OFFICE.next_opening(at(2026, 4, 1, 20, 0))) == "2026-04-02 12:00"


def test_september_change_keeps_nine_oclock_local() -> None:
    # Clocks go forward at 24:00 on Saturday 2026-09-05 (-04 to -03).
    opening = OFFICE.next_opening(at(2026, 9, 4, 19, 30))
    assert utc(opening) == "2026-09-07 12:00"
    assert local(opening).hour == 9


def test_window_starting_in_the_skipped_hour_opens_when_the_clock_jumps() -> None:
    night = policy(service_hours="sun 00:00-02:00")
    # Sunday 2026-09-06 has no 00:00-00:59: the window opens at 01:00 -03, 04:00 UTC.
    assert utc(night.next_opening(at(2026, 9, 5, 12, 0))) == "2026-09-06 04:00"
    # A window that lies wholly in the skipped hour does not exist that day.
    lost = policy(service_hours="sun 00:00-01:00")
    opening = lost.next_opening(at(2026, 9, 5, 12, 0))
    assert utc(opening) == "2026-09-13 03:00"
    assert lost.in_service(opening)


def test_repeated_hour_is_in_service_both_times() -> None:
    # Saturday 2027-04-03 23:00-24:00 happens twice (02:00-03:00 UTC at -03, then 03:00-04:00 UTC at -04).
    late = policy(service_hours="sat 23:00-24:00")
    first = late.next_opening(at(2027, 4, 3, 12, 0))
    assert utc(first) == "2027-04-04 02:00"
    assert late.in_service(first + 3599) and late.in_service(first + 3600) and late.in_service(first + 7199)
    assert not late.in_service(first + 7200)


# ------------------------------------------------------------------------------------------ totality


def test_far_future_and_out_of_range_instants_end_quickly() -> None:
    started = time.monotonic()
    for when in (at(9999, 12, 31, 20, 0), 1e13, 1e300):
        assert not OFFICE.in_service(when)
        assert OFFICE.next_opening(when) == when + OFFICE.max_age
        # 1e300 + a day is 1e300 in floating point: only "it ends" is asked of it.
        assert OFFICE.next_attempt(1, "out_of_service_hours", when) > when or when == 1e300
    assert time.monotonic() - started < 2


def test_hours_never_met_give_up_after_max_age() -> None:
    # Hours that never open (the parser cannot build them, so build them directly): the search is bounded.
    never = RetryPolicy(service_hours=states.ServiceHours("none", ((),) * 7), timezone="UTC")
    started = time.monotonic()
    assert never.next_opening(1000.0) == 1000.0 + never.max_age
    assert never.next_attempt(1, "out_of_service_hours", 1000.0) > 1000.0
    assert time.monotonic() - started < 2


def test_holiday_calendar_is_cached_and_bounded() -> None:
    states._holiday_dates.cache_clear()
    OFFICE.next_opening(at(2026, 9, 17, 20, 0))
    OFFICE.next_opening(at(2026, 10, 9, 20, 0))
    info = states._holiday_dates.cache_info()
    assert info.maxsize == 64
    assert info.currsize == 1 and info.hits > 0


def test_holidays_library_imported_only_when_named() -> None:
    code = (
        "import sys\n"
        "from formcall_webhook.config_policies import parse_retry\n"
        "p = parse_retry('f', 'k', {'service_hours': 'mon-fri 09:00-19:00'})\n"
        "p.next_attempt(1, 'out_of_service_hours', 1.8e9)\n"
        "print('holidays' in sys.modules)\n"
        "parse_retry('f', 'k', {'holidays': 'CL'}).next_attempt(1, 'x', 1.8e9)\n"
        "print('holidays' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert done.stdout.split() == ["False", "True"]


POLICIES = [
    DEFAULT_RETRY,
    OFFICE,
    policy(service_hours="mon-fri 09:00-13:00 14:00-19:00, sat 10:00-14:00", holidays="CL"),
    policy(service_hours="sun 00:00-02:00, wed 23:00-24:00", schedule=["1s", "7h"]),
    policy(service_hours="fri-mon 10:00-12:00", timezone="Europe/Madrid", holidays="ES"),
    policy(holidays="CL", schedule=["90s"]),
]


@settings(max_examples=300, deadline=None)
@given(
    which=st.integers(0, len(POLICIES) - 1),
    attempts=st.integers(-1, 30),
    word=st.sampled_from(sorted(states.RETRY_WORDS)),
    now=st.floats(min_value=at(2025, 1, 1, 0, 0), max_value=at(2031, 1, 1, 0, 0)),
)
def test_next_attempt_is_later_and_in_service(which: int, attempts: int, word: str, now: float) -> None:
    chosen = POLICIES[which]
    when = chosen.next_attempt(attempts, word, now)
    assert when > now
    assert chosen.in_service(when)
    assert when - now <= 12 * D  # no stretch of closed days here is longer than this


# ------------------------------------------------------------------------------------------ retry config


@pytest.mark.parametrize(
    ("value", "key", "problem"),
    [
        ("yes", "routes.default.retry", "must be a table"),
        ({"tries": 3}, "routes.default.retry.tries", "unknown key; known keys here: holidays, max_age, on"),
        ({"on": "formcall_unavailable"}, "routes.default.retry.on", "must be a list of strings"),
        ({"on": ["rate_limited"]}, "routes.default.retry.on", "'rate_limited' cannot be retried; use any of"),
        ({"on": []}, "routes.default.retry.on", "retry = false"),
        ({"schedule": "5m"}, "routes.default.retry.schedule", "must be a list of strings"),
        ({"schedule": [300]}, "routes.default.retry.schedule", "must be a list of strings"),
        ({"schedule": []}, "routes.default.retry.schedule", "is empty"),
        ({"schedule": ["1m", "5 minutes"]}, "routes.default.retry.schedule", "'5 minutes' is not a duration"),
        ({"schedule": ["0s"]}, "routes.default.retry.schedule", "longer than zero"),
        ({"max_age": 86400}, "routes.default.retry.max_age", "must be a duration string, not int"),
        ({"max_age": "0h"}, "routes.default.retry.max_age", "longer than zero"),
        ({"max_age": "400d"}, "routes.default.retry.max_age", "longer than a year"),
        ({"service_hours": ["mon-fri 09:00-19:00"]}, "routes.default.retry.service_hours", "must be a string"),
        ({"service_hours": "weekdays 9-7"}, "routes.default.retry.service_hours", "'weekdays' is not a day"),
        ({"service_hours": "mon 19:00-09:00"}, "routes.default.retry.service_hours", "end must be after"),
        ({"timezone": "Chile/Santiago"}, "routes.default.retry.timezone", "not a time zone name"),
        ({"timezone": "../../etc/passwd"}, "routes.default.retry.timezone", "not a time zone name"),
        ({"timezone": "America"}, "routes.default.retry.timezone", "not a time zone name"),
        ({"timezone": 4}, "routes.default.retry.timezone", "must be a string, not int"),
        ({"holidays": "XX"}, "routes.default.retry.holidays", "'XX' is not a country code"),
        ({"holidays": True}, "routes.default.retry.holidays", "must be a string, not a boolean"),
    ],
)
def test_retry_config_errors_name_the_key(value: Any, key: str, problem: str) -> None:
    with pytest.raises(errors.ConfigError) as caught:
        parse_retry("formcall.toml", "routes.default.retry", value)
    assert caught.value.source == "formcall.toml"
    assert caught.value.key == key
    assert problem in caught.value.problem
    assert str(caught.value).startswith(f"formcall.toml: {key}: ")


def test_full_retry_table() -> None:
    full = policy(
        on=["out_of_service_hours"],
        schedule=["2m", "1d"],
        max_age="3d",
        service_hours="sat 10:00-14:00",
        timezone="America/Punta_Arenas",
        holidays="CL",
    )
    assert full.on == {"out_of_service_hours"}
    assert full.schedule == (120, 86400)
    assert full.max_age == 3 * D
    assert full.service_hours == parse_service_hours("sat 10:00-14:00")
    assert (full.timezone, full.holidays) == ("America/Punta_Arenas", "CL")
    assert full == policy(
        on=["out_of_service_hours"],
        schedule=["2m", "1d"],
        max_age="3d",
        service_hours="sat 10:00-14:00",
        timezone="America/Punta_Arenas",
        holidays="CL",
    )
    assert len({full, policy(service_hours="sat 10:00-14:00")}) == 2


@pytest.mark.parametrize(("schedule", "says"), [([], "is empty"), (["1m", "0s"], "must be longer than zero")])
def test_policy_refuses_a_schedule_without_a_wait_longer_than_zero(schedule: list[str], says: str) -> None:
    with pytest.raises(ConfigError, match=f"routes.default.retry.schedule: .*{says}"):
        policy(schedule=schedule)


# ----------------------------------------------------------------------------------------------- outcome


def check_secret(key: str, value: Any) -> str:
    """What the config loader passes: its own validator of secret references."""
    if not isinstance(value, str) or not value:
        raise errors.ConfigError("formcall.toml", key, "must be a secret reference")
    return check_secret_reference("formcall.toml", key, value)


def outcome(value: Any) -> OutcomePolicy | None:
    return parse_outcome("formcall.toml", "routes.hubspot.outcome", value, check_secret)


def test_outcome_absent_default_and_full() -> None:
    assert outcome(None) is None and outcome(False) is None
    assert outcome(True) == OutcomePolicy(600, 10800, None, None, None)
    full = outcome(
        {
            "after": "5m",
            "give_up": "2h",
            "url": "https://hooks.zapier.com/hooks/catch/1/abc/",
            "secret": "env:OUTCOME_SECRET",
            "hubspot": {"token": "secret:projects/p/secrets/hs/versions/latest", "property": "llamada"},
        }
    )
    assert full == OutcomePolicy(
        300,
        7200,
        "https://hooks.zapier.com/hooks/catch/1/abc/",
        "env:OUTCOME_SECRET",
        HubSpotOutcome("secret:projects/p/secrets/hs/versions/latest", "llamada", "https://api.hubapi.com"),
    )
    assert outcome({"hubspot": {"token": "env:HS", "api_url": "http://127.0.0.1:9/"}}) == OutcomePolicy(
        hubspot=HubSpotOutcome("env:HS", "formcall_call_status", "http://127.0.0.1:9/")
    )


@pytest.mark.parametrize(
    ("value", "key", "problem"),
    [
        ("https://x", "routes.hubspot.outcome", "must be a table"),
        ({"every": "5m"}, "routes.hubspot.outcome.every", "unknown key"),
        ({"after": "ten minutes"}, "routes.hubspot.outcome.after", "not a duration"),
        ({"give_up": "0s"}, "routes.hubspot.outcome.give_up", "longer than zero"),
        ({"after": "3h"}, "routes.hubspot.outcome.give_up", "must be longer than after (10800s)"),
        ({"after": "1h", "give_up": "30m"}, "routes.hubspot.outcome.give_up", "must be longer than after"),
        ({"url": "https://x.cl/hook"}, "routes.hubspot.outcome.secret", "missing"),
        ({"url": "ftp://x.cl/", "secret": "env:S"}, "routes.hubspot.outcome.url", "http(s) URL"),
        ({"url": "https://", "secret": "env:S"}, "routes.hubspot.outcome.url", "http(s) URL"),
        ({"url": "http://[::1/", "secret": "env:S"}, "routes.hubspot.outcome.url", "http(s) URL"),
        ({"url": "https://x.cl/", "secret": "whsec_abc"}, "routes.hubspot.outcome.secret", "a literal secret"),
        ({"secret": "env:S"}, "routes.hubspot.outcome.secret", "only used with outcome.url"),
        ({"hubspot": "env:HS"}, "routes.hubspot.outcome.hubspot", "must be a table"),
        ({"hubspot": {}}, "routes.hubspot.outcome.hubspot.token", "missing"),
        ({"hubspot": {"token": "pat-na1-123"}}, "routes.hubspot.outcome.hubspot.token", "a literal secret"),
        ({"hubspot": {"token": 5}}, "routes.hubspot.outcome.hubspot.token", "secret reference"),
        ({"hubspot": {"token": "env:H", "prop": "x"}}, "routes.hubspot.outcome.hubspot.prop", "unknown key"),
        ({"hubspot": {"token": "env:H", "property": "Call Status"}}, "routes.hubspot.outcome.hubspot.property", ""),
        ({"hubspot": {"token": "env:H", "api_url": "api.hubapi.com"}}, "routes.hubspot.outcome.hubspot.api_url", ""),
    ],
)
def test_outcome_errors_name_the_key(value: Any, key: str, problem: str) -> None:
    with pytest.raises(errors.ConfigError) as caught:
        outcome(value)
    assert (caught.value.source, caught.value.key) == ("formcall.toml", key)
    assert problem in caught.value.problem


# ------------------------------------------------------------------------------------------------- leads


def test_leads_policy() -> None:
    assert parse_leads("formcall.toml", None, check_secret) == LeadsPolicy(30, "until_done", None)
    assert parse_leads("formcall.toml", {}, check_secret) == LeadsPolicy()
    assert parse_leads(
        "formcall.toml", {"keep_days": 90, "keep_fields": "keep", "hash_key": "env:LEADS_HASH_KEY"}, check_secret
    ) == LeadsPolicy(90, "keep", "env:LEADS_HASH_KEY")


@pytest.mark.parametrize(
    ("value", "key", "problem"),
    [
        (30, "leads", "must be a table"),
        ({"keep": 30}, "leads.keep", "unknown key; known keys here: hash_key, keep_days, keep_fields"),
        ({"keep_days": 0}, "leads.keep_days", "above 0"),
        ({"keep_days": "30"}, "leads.keep_days", "whole number"),
        ({"keep_days": True}, "leads.keep_days", "whole number"),
        ({"keep_days": 1.5}, "leads.keep_days", "whole number"),
        ({"keep_fields": "forever"}, "leads.keep_fields", '"until_done" or "keep"'),
        ({"keep_fields": 1}, "leads.keep_fields", "must be a string"),
        ({"hash_key": "hunter2"}, "leads.hash_key", "a literal secret"),
    ],
)
def test_leads_errors_name_the_key(value: Any, key: str, problem: str) -> None:
    with pytest.raises(errors.ConfigError) as caught:
        parse_leads("formcall.toml", value, check_secret)
    assert (caught.value.source, caught.value.key) == ("formcall.toml", key)
    assert problem in caught.value.problem


# ------------------------------------------------------------------------------------------------ answers


@pytest.mark.parametrize(
    ("error_class", "status", "word", "retry_after"),
    [
        (errors.StoreUnavailableError, 503, "store_unavailable", "30"),
        (errors.RequestTimeout, 408, "request_timeout", None),
    ],
)
def test_new_answers(error_class: type[errors.WebhookError], status: int, word: str, retry_after: str | None) -> None:
    response = failure(error_class("A sentence."))
    assert response.status == status
    assert json.loads(response.body) == {"success": False, "error": word, "message": "A sentence."}
    assert response.headers.get("Retry-After") == retry_after


@settings(max_examples=200, deadline=None)
@given(
    which=st.integers(0, len(POLICIES) - 1),
    after=st.floats(min_value=at(2025, 1, 1, 0, 0), max_value=at(2031, 1, 1, 0, 0)),
)
def test_next_opening_is_the_first_instant_in_service(which: int, after: float) -> None:
    chosen = POLICIES[which]
    opening = chosen.next_opening(after)
    assert opening >= after and chosen.in_service(opening)
    if opening > after:
        # Nothing between `after` and the opening is in service: sample the gap, and the second before.
        assert not any(chosen.in_service(after + (opening - after) * k / 97) for k in range(97))
        assert opening - 1 <= after or not chosen.in_service(opening - 1)
