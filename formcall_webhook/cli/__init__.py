"""Command line: `check` and `try` before deploying; `sweep` and `leads` against the configured store.

Each module registers its own subcommands (rq's cli does the same); a lazy Context opens the store only
for the commands that need one.
"""

from __future__ import annotations

import argparse
import os
import sys

from ..errors import WebhookError
from . import check, leads, sweep
from .context import FAILED, CliError, Context, store_error

__all__ = ["build_parser", "main"]

DESCRIPTION = (
    "check and try: a config and a sample before deploying (no store, no network). "
    "sweep and leads: due leads and the lead ledger, in the store FORMCALL_STORE_URL names."
)
INTERRUPTED = 130  # the shell's code for Ctrl-C


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m formcall_webhook", description=DESCRIPTION)
    commands = parser.add_subparsers(dest="command", required=True)
    check.register(commands)
    sweep.register(commands)
    leads.register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    context = Context(config_file=getattr(args, "store_config", None))
    try:
        if args.command == "leads":
            # Spec 10: a command whose hash key is not the store's changes nothing, and says so.
            context.check_hash_key()
        code: int = args.run(args, context)
    except CliError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.code
    except WebhookError as err:
        # The store unreachable, or a secret (the hash key, the token) that cannot be read.
        print(f"error: {store_error(err, context)}", file=sys.stderr)
        return FAILED
    except KeyboardInterrupt:
        return INTERRUPTED
    except BrokenPipeError:
        # `leads list | head`: the reader left; say nothing more (Python's own recipe).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return FAILED
    return code
