"""`sweep [--loop SECONDS]`: the pass Cloud Scheduler's formcall_sweep runs, from a shell (spec 8)."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from types import FrameType
from typing import Any

from ..errors import WebhookError
from .context import OK, USAGE, CliError, Context, add_config_option, add_production_option, store_error

MAX_LOOP_SECONDS = 86400


def register(commands: Any) -> None:
    parser = commands.add_parser("sweep", help="deliver every due lead once (or every SECONDS with --loop)")
    parser.add_argument("--loop", type=float, metavar="SECONDS", help="a pass every SECONDS until SIGINT or SIGTERM")
    add_config_option(parser)
    add_production_option(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    from ..sweep import BUDGET_SECONDS

    ctx.may_call_formcall(args.production)
    sweeper = ctx.sweeper()
    if args.loop is None:
        _print(sweeper.run())
        return OK
    if not 0 < args.loop <= MAX_LOOP_SECONDS:
        raise CliError(f"--loop takes seconds between 0 and {MAX_LOOP_SECONDS}, not {args.loop:g}", USAGE)
    stop = threading.Event()

    def _stop(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _stop)
    while not stop.is_set():
        try:
            # A pass never outlasts the loop's period by much, so a stop request is honoured soon.
            _print(sweeper.run(budget_seconds=max(1.0, min(args.loop, BUDGET_SECONDS))))
        except WebhookError as err:
            # A store that blinked: say so and try again next period; the loop is meant to outlive it.
            print(f"error: {store_error(err, ctx)}", file=sys.stderr, flush=True)
        stop.wait(args.loop)
    return OK


def _print(counts: dict[str, int]) -> None:
    print(json.dumps(counts, separators=(",", ":")), flush=True)
