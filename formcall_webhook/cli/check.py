"""`check [FILE]` validates a config before deploy; `try` shows how a sample maps. Neither opens a store."""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import phonenumbers

from .. import config as config_module
from ..answers import failure
from ..errors import ConfigError, ConfigErrors, UnknownRoute, WebhookError
from ..submission import MASKED_TOKEN, map_submission, parse_submission

_CONTENT_TYPES = {
    ".json": "application/json",
    ".form": "application/x-www-form-urlencoded",
    ".urlencoded": "application/x-www-form-urlencoded",
    ".txt": "text/plain",
}


def _load(path_arg: str | None) -> config_module.Config | None:
    """The config as the function would load it, or None after printing every problem with it."""
    path = Path(path_arg) if path_arg else config_module.config_path(os.environ)
    try:
        return config_module.load(os.environ, path)
    except ConfigError as err:
        problems = err.errors if isinstance(err, ConfigErrors) else [err]
        for problem in problems:
            print(f"error: {problem.source}: {problem.key}: {problem.problem}", file=sys.stderr)
        if len(problems) > 1:
            print(f"{len(problems)} errors: each names the file, the key and the fix", file=sys.stderr)
        return None


def check(path_arg: str | None) -> int:
    cfg = _load(path_arg)
    if cfg is None:
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
    if cfg.source != config_module.ENV_SOURCE and "default" not in cfg.routes:
        found.append(
            f"routes: {cfg.source} has no [routes.default], so POST / answers 404 unknown_route, while the "
            "README's curl and examples/landing post to /; add [routes.default], or point them at "
            + " or ".join(f"/{name}" for name in list(cfg.routes)[:3])
        )
    found += _unset_env_secrets(cfg)
    if _in_clear(cfg.api_url):
        found.append(
            f"formcall.api_url: {cfg.api_url} is http://: the FormCall token would travel in clear; use https://"
        )
    if cfg.leads.hash_key is None and not cfg.store_url.startswith("memory://"):
        found.append(
            "leads.hash_key is not set: the store's phone hashes (the opt-out list, each lead's phone index) are "
            "keyed with a public key, so whoever reads the store can recover the numbers; set leads.hash_key = "
            '"secret:..." once, and keep it: a new key forgets every opt-out'
        )
    for name, route in cfg.routes.items():
        found += _route_warnings(f"routes.{name}", route)
    return found


def _secret_refs(cfg: config_module.Config) -> list[tuple[str, str | None]]:
    """(key, reference) for every secret the config names."""
    refs: list[tuple[str, str | None]] = [("formcall.security_token", cfg.security_token)]
    refs.append(("leads.hash_key", cfg.leads.hash_key))
    for name, route in cfg.routes.items():
        key = f"routes.{name}"
        refs += [(f"{key}.auth.secret", route.auth.secret), (f"{key}.auth.password", route.auth.password)]
        refs += [(f"{key}.auth.{k}", getattr(route.auth, k)) for k in ("verify_token", "page_token")]
        if route.captcha is not None:
            refs.append((f"{key}.captcha.secret", route.captcha.secret))
        reporting = route.outcome_reporting
        if reporting is not None:
            refs.append((f"{key}.outcome.secret", reporting.secret))
            if reporting.url is not None and reporting.url.startswith(("env:", "file:", "secret:")):
                refs.append((f"{key}.outcome.url", reporting.url))
            if reporting.hubspot is not None:
                refs.append((f"{key}.outcome.hubspot.token", reporting.hubspot.token))
    return refs


def _unset_env_secrets(cfg: config_module.Config) -> list[str]:
    """env: references whose variable is not set here: the function would answer 500 until it is."""
    found: dict[str, list[str]] = {}
    for key, ref in _secret_refs(cfg):
        if ref and ref.startswith("env:") and not os.environ.get(ref[4:]):
            found.setdefault(ref[4:], []).append(key)
    return [
        f"{keys[0]}: {name} is not set here; the deployed function needs it "
        f"(deploy.sh --secret {name}=SECRET:VERSION, or set it before running check)"
        + (f"; also used by {', '.join(keys[1:])}" if keys[1:] else "")
        for name, keys in found.items()
    ]


def _route_warnings(key: str, route: config_module.Route) -> list[str]:
    found = []
    unlimited = route.rate_per_ip is None and route.rate_per_phone is None
    if route.auth.type == "none" and route.captcha is None and unlimited:
        found.append(
            f"{key}: anyone can make this route place paid calls: it has no auth, no captcha and no rate limit "
            '(rate_limit = false); add a captcha or remove rate_limit = false for the defaults per_ip = "30/hour", '
            'per_phone = "3/day"'
        )
    if route.auth.type == "token" and route.auth.query_token:
        found.append(
            f"{key}.auth: the token is also accepted as ?token= in the URL, and Cloud Run's request logs keep "
            f"the query string (30 days by default); send it in the {route.auth.header} header and set "
            "query_token = false (README: personal data in request logs)"
        )
    if route.auth.type == "hubspot" and not route.auth.public_url:
        path = key.removeprefix("routes.")
        found.append(
            f"{key}.auth.public_url: not set: HubSpot signs the URL it calls, and behind Cloud Run's front end "
            "the function may see another one, so every delivery could fail its signature (401); set "
            f'public_url = "https://YOUR-FUNCTION-URL/{path}" exactly as entered in HubSpot'
        )
    if route.conversions is not None and (route.consent is None or route.consent.ads_field is None):
        found.append(
            f"{key}.conversions: no event is sent without consent to ads measurement, and this route has no "
            'consent.ads_field; add the form\'s separate ads consent box, e.g. consent = { field = "acepto", '
            'ads_field = "acepto_publicidad" } (spec 12, law 21.719)'
        )
    reporting = route.outcome_reporting
    urls = [("captcha.verify_url", route.captcha.verify_url if route.captcha else None)]
    urls += [("redirect.success", route.redirect_success), ("redirect.failure", route.redirect_failure)]
    # Call outcomes (spec 9) are posted to outcome.url and written to HubSpot's API, where a route has them.
    urls.append(("outcome.url", reporting.url if reporting else None))
    urls.append(("outcome.hubspot.api_url", reporting.hubspot.api_url if reporting and reporting.hubspot else None))
    # Leads are read from the Graph API with the page token (spec 5).
    urls.append(("auth.graph_url", route.auth.graph_url if route.auth.type == "meta" else None))
    ads = route.conversions
    urls.append(("conversions.google.api_url", ads.google.api_url if ads and ads.google else None))
    urls.append(("conversions.meta.api_url", ads.meta.api_url if ads and ads.meta else None))
    for sub, url in urls:
        if isinstance(url, str) and _in_clear(url):
            found.append(f"{key}.{sub}: {url} is http://: anyone on the way can read or change it; use https://")
    found += _number_type_warnings(key, route)
    return found


def _in_clear(url: str) -> bool:
    """An http:// URL to anything but this machine (the simulator and test fakes listen on loopback)."""
    if not url.lower().startswith("http://"):
        return False
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return True


def _number_type_warnings(key: str, route: config_module.Route) -> list[str]:
    """phonenumbers cannot tell mobiles from landlines in some regions (CL, US, ...) and reports
    FIXED_LINE_OR_MOBILE there: a listed type it never reports refuses every such lead."""
    flom = "FIXED_LINE_OR_MOBILE"
    if flom in route.allowed_number_types:
        return []
    found = []
    for region in sorted(route.allowed_regions):
        reported = _reported_types(region)
        if flom not in reported:
            continue
        never = sorted(t for t in route.allowed_number_types if t not in reported)
        if never:
            suggestion = ", ".join(f'"{t}"' for t in [*sorted(route.allowed_number_types), flom])
            found.append(
                f"{key}.allowed_number_types: phonenumbers reports {region} numbers as {flom}, never as "
                f"{' or '.join(never)}, so those leads would be refused (number_type_not_allowed); "
                f"write allowed_number_types = [{suggestion}]"
            )
    return found


def _reported_types(region: str) -> set[str]:
    """The types phonenumbers gives the region's own example numbers, one example per type."""
    names = {value: name for name, value in vars(phonenumbers.PhoneNumberType).items() if name.isupper()}
    reported = set()
    for value in names:
        example = phonenumbers.example_number_for_type(region, value)
        if example is not None:
            reported.add(names[phonenumbers.number_type(example)])
    return reported


def try_sample(route_name: str, sample: str, content_type: str | None, headers: list[str], query: str,
               method: str, config_file: str | None) -> int:  # fmt: skip
    """Print what the function would send FormCall for this sample, without any network."""
    cfg = _load(config_file)
    if cfg is None:
        return 1
    raw = sys.stdin.buffer.read() if sample == "-" else Path(sample).read_bytes()
    lowered = dict(_header(h) for h in headers)
    lowered.setdefault("content-type", content_type or _guess_content_type(sample, raw))
    result: dict[str, Any] = {"route": route_name}
    try:
        route = cfg.routes.get(route_name)
        if route is None:
            raise UnknownRoute(f"There is no route named {route_name!r}; routes: {', '.join(cfg.routes)}.")
        # Auth, captcha, dedupe and rate limits need the sender and the network: not tried here.
        body, parsed_query = parse_submission(route, method.upper(), lowered, query.encode(), raw)
        mapped = map_submission(route, body, parsed_query, lowered)
    except WebhookError as err:
        result["answer"] = {"status": err.status, **json.loads(failure(err).body)}
        if err.reason:
            result["reason"] = err.reason
        print(json.dumps(result, ensure_ascii=False, indent=2))
        return 1
    lead = mapped.lead
    result["phone"] = {
        "e164": lead.e164,
        "region": lead.region,
        "type": lead.number_type,
        "split": f"{lead.country_code} / {lead.areacode} / {lead.phonenumber}",
    }
    result["payload"] = {**mapped.payload, "security_token": MASKED_TOKEN}
    print(json.dumps(result, ensure_ascii=False, indent=2))
    return 0


def _header(text: str) -> tuple[str, str]:
    name, sep, value = text.partition(":")
    if not sep:
        raise SystemExit(f"error: --header takes 'Name: value', not {text!r}")
    return name.strip().lower(), value.strip()


def _guess_content_type(sample: str, raw: bytes) -> str:
    suffix = Path(sample).suffix.lower()
    if suffix in _CONTENT_TYPES:
        return _CONTENT_TYPES[suffix]
    if raw.startswith(b"--"):
        boundary = raw.split(b"\r\n", 1)[0][2:].decode("latin-1")
        return f"multipart/form-data; boundary={boundary}"
    return "application/json" if raw.lstrip().startswith((b"{", b"[")) else "application/x-www-form-urlencoded"


def register(commands: Any) -> None:
    check_parser = commands.add_parser("check", help="validate a config file and list its routes")
    check_parser.add_argument("file", nargs="?", help="the TOML file (default: FORMCALL_CONFIG or formcall.toml)")
    check_parser.set_defaults(run=lambda args, _ctx: check(args.file))
    try_parser = commands.add_parser(
        "try", help="show the FormCall payload a sample body maps to (no network, token masked)"
    )
    try_parser.add_argument("sample", help="a body as the sender posts it (.json, .form, multipart), or - for stdin")
    try_parser.add_argument("--route", default="default", help="the route's name (default: default)")
    try_parser.add_argument("--config", help="the TOML file (default: FORMCALL_CONFIG or formcall.toml)")
    try_parser.add_argument("--content-type", help="default: from the file's extension or its first bytes")
    try_parser.add_argument("--header", action="append", default=[], help="'Name: value', repeatable")
    try_parser.add_argument("--query", default="", help="the query string, e.g. 'utm_source=ads&vid=3751'")
    try_parser.add_argument("--method", default="POST", choices=["POST", "GET"])
    try_parser.set_defaults(run=_run_try)


def _run_try(args: argparse.Namespace, _ctx: object) -> int:
    return try_sample(args.route, args.sample, args.content_type, args.header, args.query, args.method, args.config)
