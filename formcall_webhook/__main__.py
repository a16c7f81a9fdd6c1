"""Command line: `python -m formcall_webhook check [FILE]` validates a config before deploy."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from . import config as config_module
from .errors import ConfigError


def check(path_arg: str | None) -> int:
    path = Path(path_arg) if path_arg else config_module.config_path(os.environ)
    try:
        cfg = config_module.load(os.environ, path)
    except ConfigError as err:
        print(f"error: {err.source}: {err.key}: {err.problem}", file=sys.stderr)
        return 1
    print(f"ok: {cfg.source}")
    for name, route in cfg.routes.items():
        url = "/" if name == "default" else f"/{name}"
        flags = [f"auth={route.auth.type}"]
        if route.dry_run:
            flags.append("dry_run")
        if route.allow_get:
            flags.append("GET")
        print(f"  route {name:<16} {url:<18} {' '.join(flags)}")
    for warning in _warnings(cfg):
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def _warnings(cfg: config_module.Config) -> list[str]:
    found = []
    if cfg.security_token is None and not all(r.dry_run for r in cfg.routes.values()):
        found.append(
            "no FormCall token configured: set FORMCALL_SECURITY_TOKEN, FORMCALL_SECURITY_TOKEN_SECRET "
            "or formcall.security_token"
        )
    elif cfg.security_token and cfg.security_token.startswith("env:"):
        name = cfg.security_token[4:]
        if not os.environ.get(name):
            found.append(f"{name} is not set here; the deployed function needs it")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m formcall_webhook", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    check_parser = commands.add_parser("check", help="validate a config file and list its routes")
    check_parser.add_argument("file", nargs="?", help="the TOML file (default: FORMCALL_CONFIG or formcall.toml)")
    args = parser.parse_args(argv)
    if args.command == "check":
        return check(args.file)
    return 2  # pragma: no cover - argparse refuses unknown commands first


if __name__ == "__main__":
    sys.exit(main())
