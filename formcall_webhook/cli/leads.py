"""`leads ...`: the ledger as an operator and a person's requests see it (spec 8, 9 and 10).

Numbers are masked and `adicional` values left out unless `--show-numbers`; only `export --phone`, the
person's own copy, shows them without asking.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from collections.abc import Mapping
from typing import Any

from .. import phones, records
from ..keys import person as person_keys
from ..routing import pool_key
from ..states import LeadState, parse_duration
from . import figures
from .context import FAILED, OK, USAGE, CliError, Context, add_config_option, add_production_option
from .output import table, text

STATS_TIMEZONE = "America/Santiago"  # Chile's day, where the call centres and the law are
_CALL_FIELDS = ("uuid", "popup_uuid", "call_status", "connected", "successful", "duration_customer", "call_at")
_LIST_COLUMNS = ("lead_id", "received_at", "route", "state", "attempts", "last_error", "uuid", "phone")
# What `leads retry` may end in and still count as done: the lead is called, or safely kept.
_RETRY_OK = (records.PLACED, records.PENDING, records.SCHEDULED)
# A spreadsheet runs a cell that starts with these as a formula (CSV injection).
_FORMULA_START = ("=", "@", "\t", "\r", "+", "-")


def register(commands: Any) -> None:
    common = argparse.ArgumentParser(add_help=False)
    add_config_option(common)
    numbers = argparse.ArgumentParser(add_help=False)
    numbers.add_argument("--show-numbers", action="store_true", help="whole numbers and adicional values")
    region = argparse.ArgumentParser(add_help=False)
    region.add_argument("--region", help="how to read a number without +country (default: the default route's)")

    parser = commands.add_parser("leads", help="list, show, retry, forget, export, opt out and count leads")
    sub = parser.add_subparsers(dest="leads_command", required=True)

    p = sub.add_parser("list", parents=[common, numbers], help="leads as a table, oldest first")
    p.add_argument("--state", choices=[str(state) for state in LeadState])
    p.add_argument("--route")
    p.add_argument("--since", metavar="DURATION", help="received in the last DURATION: 30m, 12h, 1d")
    p.add_argument("--json", action="store_true", help="one JSON object per lead")
    p.set_defaults(run=list_leads)

    p = sub.add_parser("show", parents=[common, numbers], help="one lead, every field")
    p.add_argument("lead_id")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=show)

    p = sub.add_parser("retry", parents=[common], help="a failed or scheduled lead, now: at most one call")
    p.add_argument("lead_id")
    add_production_option(p)
    p.set_defaults(run=retry)

    p = sub.add_parser("forget", parents=[common, region], help="delete every record of a number (opt-out stays)")
    p.add_argument("phone")
    p.set_defaults(run=forget)

    p = sub.add_parser("export", parents=[common, numbers, region], help="every lead as CSV, or a person's copy")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--csv", action="store_true", help="every lead, as CSV")
    what.add_argument("--phone", help="every record of this number as JSON, numbers shown")
    p.set_defaults(run=export)

    for name, on in (("opt-out", True), ("opt-in", False)):
        verb = "puts the number on" if on else "takes the number off"
        p = sub.add_parser(name, parents=[common, region], help=f"{verb} the opt-out list")
        p.add_argument("phone")
        p.set_defaults(run=optout, on=on)

    figures.register(sub, common)  # stats and report


# -- views --


def view(record: Mapping[str, Any], show_numbers: bool) -> dict[str, Any]:
    """records.public(), with the whole number and adicional values only when asked for."""
    shown = records.public(record, records.number_of(record) if show_numbers else None)
    if not show_numbers:
        shown.pop("adicional", None)
    return shown


def _json_line(value: Any) -> None:
    print(json.dumps(value, ensure_ascii=False, separators=(",", ":")))


def _since(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        return time.time() - parse_duration(text)
    except ValueError as err:
        raise CliError(f"--since: {err}", USAGE) from err


# -- commands --


def list_leads(args: argparse.Namespace, ctx: Context) -> int:
    found = ctx.store.scan_leads(since=_since(args.since), state=args.state, route=args.route)
    views = (view(record, args.show_numbers) for record in found)
    if args.json:
        for shown in views:
            _json_line(shown)
        return OK
    local = (figures.localized(ctx, shown) for shown in views)  # times in each route's zone
    print(table(_LIST_COLUMNS, ([shown[c] for c in _LIST_COLUMNS] for shown in local)))
    return OK


def _lead(ctx: Context, lead_id: str) -> dict[str, Any]:
    record = ctx.store.get_lead(lead_id)
    if record is None:
        raise CliError(f"no lead {lead_id!r} in {ctx.store_label()} (unknown, forgotten, or older than keep_days)")
    return record


def show(args: argparse.Namespace, ctx: Context) -> int:
    shown = view(_lead(ctx, args.lead_id), args.show_numbers)
    if args.json:
        _json_line(shown)
        return OK
    shown = figures.localized(ctx, shown)  # times in the route's zone
    width = max(len(name) for name in shown)
    for name, value in shown.items():
        if name == "calls" and isinstance(value, list) and value:
            # Spec 11: one line per call, its number first.
            print(f"{name.ljust(width)}  {len(value)}")
            for number, call in enumerate(value, 1):
                facts = "  ".join(f"{k}={text(call.get(k))}" for k in _CALL_FIELDS if isinstance(call, dict))
                print(f"{''.ljust(width)}  {number}. {facts}")
            continue
        print(f"{name.ljust(width)}  {text(value)}")
    return OK


def retry(args: argparse.Namespace, ctx: Context) -> int:
    record = _lead(ctx, args.lead_id)
    if record["state"] not in (records.SCHEDULED, records.FAILED):
        raise CliError(f"{args.lead_id} is already {record['state']} (uuid {record.get('uuid')}): nothing to retry")
    ctx.may_call_formcall(args.production)
    report = ctx.sweeper().retry_now(args.lead_id)
    if report is None:
        raise CliError(f"no lead {args.lead_id!r}: it was deleted meanwhile")
    line = f"{args.lead_id}: {report.outcome or 'nothing done'}"
    if report.uuid:
        line += f", uuid {report.uuid}"
    if report.reason:
        line += f" ({report.reason})"
    refused = report.outcome not in _RETRY_OK or (report.reason or "").startswith("already ")
    print(line, file=sys.stderr if refused else sys.stdout)
    return FAILED if refused else OK


def forget(args: argparse.Namespace, ctx: Context) -> int:
    """A person's deletion request: their records, the claims those hold, their rate count; the
    opt-out entry stays, or a forgotten person who opposed would be called again (spec 10)."""
    e164 = ctx.e164(args.phone, args.region)
    store = ctx.store
    found = store.leads_by_phone(ctx.phone_hash(e164))
    popups = {str(r["popup_uuid"]) for r in found if r.get("popup_uuid")}
    popups |= {route.popup_uuid.source.strip() for route in ctx.config.routes.values()
               if route.popup_uuid is not None and "{" not in route.popup_uuid.source}  # fmt: skip
    # A weighted route's claims name its popups together (spec 11).
    popups |= {pool_key(route.popups) for route in ctx.config.routes.values() if route.popups}
    # The default dedupe claim, even for a lead whose record is already gone: else a new submission
    # within the window would be answered as a duplicate of a lead that no longer exists.
    keys = person_keys(e164, popups, key=ctx.runtime.attempter.hash_key())
    for record in found:
        keys |= {str(key) for key, _window in record.get("claims") or []}
        store.delete_lead(record["lead_id"])
    for key in sorted(keys):
        store.delete(key)
    opted = store.is_opted_out(ctx.phone_hash(e164))
    masked = phones.mask(e164)
    print(f"forgot {masked}: {len(found)} record(s) deleted, with their claims and rate count; "
          f"opt-out list: {'on it, kept' if opted else 'not on it'}")  # fmt: skip
    return OK


def export(args: argparse.Namespace, ctx: Context) -> int:
    if args.phone is not None:
        e164 = ctx.e164(args.phone, args.region)
        found = ctx.store.leads_by_phone(ctx.phone_hash(e164))
        # The person's copy: their number and what they typed, even from a minimized record.
        copy = [records.public(record, records.number_of(record) or e164) for record in found]
        print(json.dumps(copy, ensure_ascii=False, indent=2))
        return OK
    columns = [*records.PUBLIC_FIELDS, *(["adicional"] if args.show_numbers else [])]
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(columns)
    for record in ctx.store.scan_leads():
        shown = view(record, args.show_numbers)
        writer.writerow([_cell(shown.get(c)) for c in columns])
    return OK


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    shown = text(value)
    if shown.startswith(_FORMULA_START) and not _numberish(shown):
        return "'" + shown
    return shown


def _numberish(text: str) -> bool:
    """A masked or whole number (+56*****567), or a plain number: data, not a formula."""
    body = text[1:] if text[0] in "+-" else text
    return bool(body) and all(c.isdigit() or c in "*." for c in body)


def optout(args: argparse.Namespace, ctx: Context) -> int:
    e164 = ctx.e164(args.phone, args.region)
    ctx.store.set_optout(ctx.phone_hash(e164), args.on)
    masked = phones.mask(e164)
    if args.on:
        print(f"opted out: {masked}; every later submission of it is answered 422 opted_out")
    else:
        print(f"opted in: {masked} may be called again")
    return OK
