"""The figures behind `leads stats` and `leads report` (spec 9), from records built directly. Pure."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from formcall_webhook import figures
from tests.report_sample import record

# 2026-12-02 02:30 UTC: still the 1st in Santiago (UTC-3 in summer), the 1st at 21:30 in Bogotá (UTC-5).
LATE = datetime(2026, 12, 2, 2, 30, tzinfo=UTC).timestamp()
CONNECTED = {"call_status": "Conectada", "connected": True, "successful": True, "duration_customer": 40}
NO_ANSWER = {"call_status": "No contesta", "connected": False, "successful": False, "duration_customer": 0}


def test_days_and_hours_are_each_routes_own() -> None:
    zones = {"cl": ZoneInfo("America/Santiago"), "co": ZoneInfo("America/Bogota")}
    leads = figures.leads_of([record(LATE, route="cl"), record(LATE, route="co"), record(LATE, route="gone")], zones)
    by_hour = {(row["hour"], row["leads"]) for row in figures.rows(leads, "hour")}
    # A route the config no longer has is read in Santiago's time, the default.
    assert by_hour == {("23", 2), ("21", 1)}
    assert [(row["day"], row["leads"]) for row in figures.rows(leads, "day")] == [("2026-12-01", 3)]
    utc = figures.leads_of([record(LATE)], default_zone=ZoneInfo("UTC"))
    assert figures.rows(utc, "day")[0]["day"] == "2026-12-02"


def test_no_outcome_tracked_is_a_dash_not_zero() -> None:
    leads = figures.leads_of([
        record(LATE, route="tracked", outcome=NO_ANSWER),
        record(LATE, route="tracked", outcome=CONNECTED),
        record(LATE, route="tracked", state="failed", wait=None),
        record(LATE, route="untracked"),
        record(LATE, route="untracked", outcome={"due": True}),  # asked for, not known yet
    ])  # fmt: skip
    tracked, untracked = figures.rows(leads, "route")
    assert tracked["route"] == "tracked"
    assert (tracked["connected"], tracked["successful"], tracked["connect_rate"]) == (1, 1, 0.5)
    assert (tracked["leads"], tracked["placed"], tracked["failed"], tracked["calls_per_lead"]) == (3, 2, 1, 0.67)
    assert (untracked["connected"], untracked["successful"], untracked["connect_rate"]) == (None, None, None)
    assert [figures.cell(untracked, c) for c in ("connected", "successful", "connect_rate")] == ["–"] * 3
    assert [figures.cell(tracked, c) for c in ("connected", "connect_rate", "calls_per_lead")] == ["1", "50%", "0.67"]


def test_waits_median_and_p90_from_the_first_call() -> None:
    call_at = datetime.fromtimestamp(LATE + 30, ZoneInfo("America/Santiago")).isoformat()
    rows = [record(LATE, wait=5, outcome={**CONNECTED, "call_at": call_at})]  # FormCall's call time wins
    rows += [record(LATE + i, wait=w) for i, w in enumerate((60, 90, 600, 7200), start=1)]
    rows.append(record(LATE + 9, state="scheduled", wait=None))  # no call yet: no wait
    (row,) = figures.rows(figures.leads_of(rows), "day")
    assert (row["median_seconds"], row["p90_seconds"]) == (90.0, 7200.0)
    assert figures.cell(row, "p90_seconds") == "2h00m"
    assert figures.percentile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 0.9) == 9


def test_groups_most_leads_first_and_none_after_a_tie() -> None:
    rows = [record(LATE + i, utm_campaign=c, utm_source=s) for i, (c, s) in enumerate(
        [("verano", "google"), ("verano", "meta"), ("bf", "meta"), ("", ""), ("", ""), ("", "")])]  # fmt: skip
    leads = figures.leads_of(rows)
    found = [(r["utm_campaign"], r["leads"]) for r in figures.rows(leads, "utm_campaign")]
    assert found == [("", 3), ("verano", 2), ("bf", 1)]
    # A tie: the named one first, the one without a campaign after it.
    assert [r["utm_source"] for r in figures.rows(leads[:-1], "utm_source")] == ["meta", "", "google"]
    assert [r["popup"] for r in figures.rows(leads, "popup")] == [record(0)["popup_uuid"]]
    with pytest.raises(ValueError, match="--by"):
        figures.rows(leads, "week")


def test_days_without_leads_are_rows_too() -> None:
    leads = figures.leads_of([record(LATE), record(LATE + 2 * 86400)])
    assert [(r["day"], r["leads"]) for r in figures.days(leads)] == [
        ("2026-12-01", 1), ("2026-12-02", 0), ("2026-12-03", 1)]  # fmt: skip
    assert figures.days([]) == []


def test_a_record_without_a_time_is_left_out_and_received_at_is_read_when_alone() -> None:
    bare = record(LATE)
    del bare["received_ts"]
    broken = {**record(LATE), "received_ts": None, "received_at": "yesterday"}
    assert [lead.received.timestamp() for lead in figures.leads_of([bare, broken])] == [LATE]
