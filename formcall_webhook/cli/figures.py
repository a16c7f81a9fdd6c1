"""`leads stats` and `leads report`: the figures of formcall_webhook.figures as a table, CSV, JSON or one
self-contained HTML page (spec 9). Days and hours are each route's (`retry.timezone`)."""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .. import figures, report
from ..states import parse_duration
from .context import OK, USAGE, CliError, Context
from .output import table

HEADERS = {
    "leads": "leads", "placed": "placed", "pending": "pending", "scheduled": "scheduled", "failed": "failed",
    "calls_per_lead": "calls/lead", "connected": "connected", "successful": "successful",
    "connect_rate": "connect rate", "median_seconds": "median wait", "p90_seconds": "p90 wait",
    "connects_by_call": "connects/call",
}  # fmt: skip


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("stats", parents=[common], help="leads, outcomes and the wait for the call, grouped")
    _window(p)
    p.add_argument("--by", choices=figures.GROUPINGS, default="day", help="one row per ... (default: day)")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="one JSON object per row")
    fmt.add_argument("--csv", action="store_true", help="the rows as CSV")
    p.set_defaults(run=show_stats)

    p = sub.add_parser("report", parents=[common], help="the figures as one self-contained HTML page")
    p.add_argument("--html", metavar="FILE", required=True, help="where to write the page")
    _window(p)
    p.add_argument("--lang", choices=report.LANGUAGES, default="es", help="the page's language (default: es)")
    p.set_defaults(run=write_report)


def _window(p: argparse.ArgumentParser) -> None:
    p.add_argument("--since", metavar="DURATION", default="7d", help="received in the last DURATION (default: 7d)")
    p.add_argument("--timezone", help="read every day and hour in this zone (default: each route's retry.timezone)")


def _since(text: str) -> float:
    try:
        return time.time() - parse_duration(text)
    except ValueError as err:
        raise CliError(f"--since: {err}", USAGE) from err


def _zones(args: argparse.Namespace, ctx: Context) -> tuple[dict[str, tzinfo], tzinfo]:
    """Each route's zone, and the zone for a route the config no longer has."""
    if args.timezone:
        try:
            return {}, ZoneInfo(args.timezone)
        except (ZoneInfoNotFoundError, ValueError) as err:
            raise CliError(f"--timezone: {args.timezone!r} is not a time zone such as America/Santiago", USAGE) from err
    zones: dict[str, tzinfo] = {}
    for name, route in ctx.config.routes.items():
        zones[name] = figures.zone_named(route.retry.timezone if route.retry is not None else None)
    return zones, figures.zone_named(None)


def route_zone(ctx: Context, route: str | None) -> tzinfo:
    """The zone a route's times are read in: its retry.timezone, else America/Santiago."""
    found = ctx.config.routes.get(route or "")
    return figures.zone_named(found.retry.timezone if found is not None and found.retry is not None else None)


def local_time(value: Any, zone: tzinfo) -> Any:
    """An ISO 8601 UTC time ("2026-12-01T14:15:27Z") as the route's clock reads it ("2026-12-01T11:15:27-03:00")."""
    if not isinstance(value, str):
        return value
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    if moment.tzinfo is None:
        return value
    return moment.astimezone(zone).isoformat(timespec="seconds")


TIME_FIELDS = ("received_at", "next_attempt_at", "call_at")


def localized(ctx: Context, shown: dict[str, Any]) -> dict[str, Any]:
    """A lead's view with its times in its route's zone (`leads list` and `show`; --json keeps UTC)."""
    zone = route_zone(ctx, shown.get("route"))
    return {k: local_time(v, zone) if k in TIME_FIELDS else v for k, v in shown.items()}


def _zone_label(args: argparse.Namespace, ctx: Context) -> str:
    if args.timezone:
        return str(args.timezone)
    names = sorted({route.retry.timezone if route.retry else figures.DEFAULT_TIMEZONE
                    for route in ctx.config.routes.values()} or {figures.DEFAULT_TIMEZONE})  # fmt: skip
    return ", ".join(names)


def _leads(args: argparse.Namespace, ctx: Context) -> list[figures.Lead]:
    since = _since(args.since)
    zones, default = _zones(args, ctx)
    return figures.leads_of(ctx.store.scan_leads(since=since), zones, default)


def show_stats(args: argparse.Namespace, ctx: Context) -> int:
    rows = figures.rows(_leads(args, ctx), args.by)
    columns = (args.by, *figures.COLUMNS)
    if args.json:
        for row in rows:
            print(json.dumps({c: row[c] for c in columns}, ensure_ascii=False, separators=(",", ":")))
        return OK
    if args.csv:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow([_safe(row[args.by]), *(figures.cell(row, c) for c in figures.COLUMNS)])
        return OK
    print(f"leads received in the last {args.since}, by {args.by} ({_zone_label(args, ctx)}); "
          f"wait = submission to first call; {figures.NO_OUTCOME} = no outcome tracked")  # fmt: skip
    body = [[row[args.by] or "(none)", *(figures.cell(row, c) for c in figures.COLUMNS)] for row in rows]
    print(table([args.by, *(HEADERS[c] for c in figures.COLUMNS)], body))
    return OK


def _safe(value: str) -> str:
    """A campaign name a spreadsheet would run as a formula (CSV injection) is quoted."""
    return "'" + value if value.startswith(("=", "@", "\t", "\r", "+", "-")) else value


def write_report(args: argparse.Namespace, ctx: Context) -> int:
    leads = _leads(args, ctx)
    page = report.render(
        leads,
        lang=args.lang,
        window=args.since,
        zone=_zone_label(args, ctx),
        generated=datetime.now(figures.zone_named(None)),
    )
    target = Path(args.html)
    try:
        target.write_text(page, encoding="utf-8")
    except OSError as err:
        raise CliError(f"--html: cannot write {target} ({err.strerror})") from err
    print(f"wrote {target}: {len(leads)} lead(s) of the last {args.since}", file=sys.stderr)
    return OK
