"""The configuration: environment only, or a TOML file; loaded and checked once (spec section 2)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import urlsplit

import phonenumbers

from .config_reader import (
    Reader,
    attempt,
    check_secret_reference,
    collecting,
    compile_or_fail,
    note,
)
from .consent import ConsentRule, parse_consent
from .errors import ConfigError, ConfigErrors
from .phones import DEFAULT_NUMBER_TYPES, FORBIDDEN_NUMBER_TYPES, NUMBER_TYPE_NAMES
from .secret_store import DEFAULT_TTL_SECONDS
from .senders import AUTH_TYPES as AUTH_TYPES
from .senders import DEFAULT_TOKEN_HEADER, GRAPH_URL, GRAPH_VERSION
from .senders import REGISTRY as AUTH_SCHEMES
from .senders import Auth as Auth
from .states import DEFAULT_RETRY, LeadsPolicy, RetryPolicy
from .stores import SCHEMES as STORE_SCHEMES
from .templates import Template

if TYPE_CHECKING:  # conversions.py and outcomes.py are loaded only by a config with these tables
    from .conversions import ConversionsPolicy
    from .outcomes import OutcomePolicy, RecallPolicy

DEFAULT_API_URL = "https://clickandtalk.medularis.com/calls/manage/api"
DEFAULT_TIMEOUT_SECONDS = 8.0
DEFAULT_MAX_BODY_BYTES = 65536
DEFAULT_ADICIONAL_MAX_LENGTH = 200
DEFAULT_REGION = "CL"
DEFAULT_BODY_TIMEOUT_SECONDS = 10.0
MAX_BODY_TIMEOUT_SECONDS = 600.0
DEFAULT_TRUSTED_PROXY_HOPS = 1
MAX_TRUSTED_PROXY_HOPS = 5
APP_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG_NAME = "formcall.toml"
ENV_SOURCE = "environment"
# The store's hash key when the config names none (spec 10; infra/deploy.sh sets it as a secret).
HASH_KEY_ENV = "FORMCALL_HASH_KEY"

CAPTCHA_PROVIDERS = {
    "turnstile": "https://challenges.cloudflare.com/turnstile/v0/siteverify",
    "recaptcha": "https://www.google.com/recaptcha/api/siteverify",
    "hcaptcha": "https://api.hcaptcha.com/siteverify",
}
DEFAULT_HCAPTCHA_MAX_SCORE = 0.7
CAPTCHA_FIELDS = {
    "turnstile": "cf-turnstile-response",
    "recaptcha": "g-recaptcha-response",
    "hcaptcha": "h-captcha-response",
}
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(second|minute|hour|day)\s*$")
_RATE_SECONDS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
# At most 64 characters: longer request paths are cut in logs and answers, so could never match.
_ROUTE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
# What a browser sends as Origin: scheme://host[:port], no path, no trailing slash.
_ORIGIN = re.compile(r"^https?://[^/?#\s]+$")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}


# The config's records are NamedTuples: immutable and typed, as style.md's frozen dataclasses are, but built
# with one eval at import where a frozen dataclass compiles five or six methods. Every cold start paid that
# for each class it imported: about 18 ms of the package's 27 ms (bench/README.md, cold start).
class Captcha(NamedTuple):
    """A route's `captcha` table."""

    provider: str
    secret: str
    field: str
    # reCAPTCHA v3: the lowest (most human) score accepted.
    min_score: float
    verify_url: str
    # hCaptcha Enterprise: the highest RISK score accepted (its score grows with risk).
    max_score: float = DEFAULT_HCAPTCHA_MAX_SCORE
    # When set, the answer's action and hostname must match (reCAPTCHA v3, Turnstile).
    action: str | None = None
    hostnames: frozenset[str] = frozenset()
    sitekey: str | None = None


class Rate(NamedTuple):
    """`limit` per `seconds`."""

    limit: int
    seconds: int


# A public route (auth none, no captcha) is an open, paid call endpoint: these apply unless it sets its own.
PUBLIC_RATE_PER_IP = Rate(30, 3600)
PUBLIC_RATE_PER_PHONE = Rate(3, 86400)


class Route(NamedTuple):
    """One route, as the config file or zero-config gives it."""

    name: str
    popup_uuid: Template | None
    phone: Template | None
    phone_parts: tuple[Template, Template, Template] | None
    region: str
    allowed_regions: frozenset[str]
    allowed_number_types: frozenset[str]
    # None: the built-in Nombre / Email mapping.
    adicional: tuple[tuple[str, Template], ...] | None
    adicional_max_length: int
    auth: Auth
    honeypot: str | None
    captcha: Captcha | None
    dedupe_key: Template | None
    dedupe_window_seconds: int
    rate_per_ip: Rate | None
    rate_per_phone: Rate | None
    redirect_success: str | None
    redirect_failure: str | None
    cors_origins: tuple[str, ...]
    allow_get: bool
    max_body_bytes: int
    dry_run: bool
    body_timeout_seconds: float = DEFAULT_BODY_TIMEOUT_SECONDS
    # None: retry = false (spec 8); None: no outcome work (spec 9).
    retry: RetryPolicy | None = None
    outcome_reporting: OutcomePolicy | None = None
    consent: ConsentRule | None = None
    # Spec 12: conversion events to Google Ads and Meta; None without `conversions`.
    conversions: ConversionsPolicy | None = None
    # Spec 11: weighted routing (uuid, weight) when popup_uuid is a list; the fallback popup; the pace per
    # popup; recalls of unanswered leads (None: off).
    popups: tuple[tuple[str, int], ...] = ()
    fallback_popup: str | None = None
    pace: Rate | None = None
    recall: RecallPolicy | None = None


class Config(NamedTuple):
    """The whole config, read once per process."""

    source: str
    api_url: str
    # A secret reference (env:, file:, secret:), or None when no token is configured.
    security_token: str | None
    timeout_seconds: float
    ca_bundle: str | None
    secret_ttl_seconds: float
    store_url: str
    routes: Mapping[str, Route] = MappingProxyType({})
    leads: LeadsPolicy = LeadsPolicy()
    # memory:// only: how often the function process sweeps its own leads (spec 8).
    sweep_seconds: float = 15.0
    # How many proxies append to X-Forwarded-For after the client (FORMCALL_TRUSTED_PROXY_HOPS).
    trusted_proxy_hops: int = DEFAULT_TRUSTED_PROXY_HOPS


def env_flag(environ: Mapping[str, str], name: str) -> bool:
    value = environ.get(name, "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigError(ENV_SOURCE, name, f"must be true or false, not {value!r}")


def config_path(environ: Mapping[str, str]) -> Path | None:
    """The config file in use: FORMCALL_CONFIG, else formcall.toml beside main.py when present."""
    named = environ.get("FORMCALL_CONFIG", "").strip()
    if named:
        path = Path(named)
        if not path.is_absolute() and not path.exists() and (APP_ROOT / path).exists():
            path = APP_ROOT / path
        return path
    default = APP_ROOT / DEFAULT_CONFIG_NAME
    return default if default.is_file() else None


def load(environ: Mapping[str, str] | None = None, path: Path | None = None) -> Config:
    """The checked configuration. ConfigErrors (a ConfigError: the first problem) lists every problem
    found, each naming the file, the key and what is wrong."""
    env = os.environ if environ is None else environ
    if path is None:
        path = config_path(env)
    source = ENV_SOURCE if path is None else str(path)
    data = {} if path is None else _read_toml(path)
    with collecting() as problems:
        try:
            config = _build(source, data, env)
        except ConfigError as err:
            problems.append(err)
    if problems:
        # A mistake in [defaults] is found once per route that inherits it: say it once.
        unique: dict[tuple[str, str, str], ConfigError] = {}
        for problem in problems:
            unique.setdefault((problem.source, problem.key, problem.problem), problem)
        raise ConfigErrors(list(unique.values()))
    return config


def _read_toml(path: Path) -> dict[str, Any]:
    import tomllib  # only a config file needs it; zero-config starts without

    source = str(path)
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError as err:
        raise ConfigError(source, "FORMCALL_CONFIG", "file not found") from err
    except OSError as err:
        raise ConfigError(source, "FORMCALL_CONFIG", f"cannot be read ({err.strerror})") from err
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(source, "(syntax)", f"not valid TOML: {err}") from err


ROUTE_KEYS = {
    "popup_uuid", "phone", "phone_parts", "region", "allowed_regions", "allowed_number_types",
    "adicional", "adicional_max_length", "auth", "honeypot", "captcha", "dedupe", "rate_limit",
    "redirect", "cors_origins", "allow_get", "max_body_bytes", "body_timeout_seconds", "dry_run", "retry",
    "outcome", "consent", "conversions", "fallback_popup", "pace", "recall",
}  # fmt: skip
# Table-valued keys: a route's table is merged over the one in [defaults], key by key.
_MERGED_TABLES = {"adicional", "auth", "captcha", "dedupe", "rate_limit", "redirect", "phone_parts", "retry", "outcome",
                  "consent", "conversions", "recall"}  # fmt: skip


def _build(source: str, data: Mapping[str, Any], env: Mapping[str, str]) -> Config:
    top = Reader(source, "", data, {"formcall", "defaults", "routes", "leads"})
    formcall = Reader(source, "formcall", attempt(lambda: top.table("formcall"), None) or {}, {
        "api_url", "security_token", "timeout_seconds", "ca_bundle", "secret_ttl_seconds",
    })  # fmt: skip
    api_url = attempt(lambda: _api_url(source, formcall, env), DEFAULT_API_URL)
    timeout = attempt(lambda: _timeout(formcall), DEFAULT_TIMEOUT_SECONDS)
    ttl = attempt(lambda: _secret_ttl(formcall), DEFAULT_TTL_SECONDS)
    ca_bundle = attempt(lambda: _ca_bundle(source, formcall, env), None)
    token = attempt(lambda: _token(formcall, env), None)

    region_default = env.get("FORMCALL_DEFAULT_REGION", "").strip().upper() or DEFAULT_REGION
    if region_default not in phonenumbers.SUPPORTED_REGIONS:
        note(ConfigError(ENV_SOURCE, "FORMCALL_DEFAULT_REGION", f"{region_default!r} is not a region code such as CL"))
        region_default = DEFAULT_REGION
    dry_run_all = attempt(lambda: env_flag(env, "FORMCALL_DRY_RUN"), False)
    defaults = attempt(lambda: top.table("defaults"), None) or {}
    Reader(source, "defaults", defaults, ROUTE_KEYS)
    routes_data = attempt(lambda: top.table("routes"), None)
    if routes_data is None:
        routes_data = {} if "routes" in data else {"default": {}}
    elif not routes_data:
        note(ConfigError(source, "routes", "no route is defined; add [routes.default]"))
    routes: dict[str, Route] = {}
    for name, route_data in routes_data.items():
        try:
            route = _inherit(source, name, route_data, defaults, env, region_default, dry_run_all)
        except ConfigError as err:
            note(err)
            continue
        if route is not None:
            routes[name] = route
    store_url = attempt(lambda: _store_url(env), "memory://")
    leads = attempt(lambda: _leads(source, top.data.get("leads")), LeadsPolicy())
    if leads.hash_key is None and env.get(HASH_KEY_ENV, "").strip():
        # Spec 10: zero-config deploys get their key from deploy.sh, which creates it in Secret Manager.
        leads = leads._replace(hash_key="env:" + HASH_KEY_ENV)
    sweep_seconds = attempt(lambda: _sweep_seconds(env), 15.0)
    hops = attempt(lambda: _proxy_hops(env), DEFAULT_TRUSTED_PROXY_HOPS)
    return Config(
        source, api_url, token, timeout, ca_bundle or None, ttl, store_url, routes, leads, sweep_seconds, hops
    )


def _api_url(source: str, formcall: Reader, env: Mapping[str, str]) -> str:
    api_url: str = env.get("FORMCALL_API_URL", "").strip() or formcall.get("api_url", str, DEFAULT_API_URL)
    if not api_url.startswith(("https://", "http://")):
        raise ConfigError(source, "formcall.api_url", "must be an http(s) URL")
    return api_url


def _timeout(formcall: Reader) -> float:
    timeout = float(formcall.get("timeout_seconds", (int, float), DEFAULT_TIMEOUT_SECONDS))
    if not 0 < timeout <= 60:
        raise formcall.fail("timeout_seconds", "must be more than 0 and at most 60")
    return timeout


def _secret_ttl(formcall: Reader) -> float:
    ttl = float(formcall.get("secret_ttl_seconds", (int, float), DEFAULT_TTL_SECONDS))
    if ttl < 0:
        raise formcall.fail("secret_ttl_seconds", "must not be negative")
    return ttl


def _ca_bundle(source: str, formcall: Reader, env: Mapping[str, str]) -> str | None:
    ca_bundle: str | None = env.get("FORMCALL_CA_BUNDLE", "").strip() or formcall.get("ca_bundle", str)
    if ca_bundle and not Path(ca_bundle).is_file():
        raise ConfigError(source, "FORMCALL_CA_BUNDLE" if env.get("FORMCALL_CA_BUNDLE") else "formcall.ca_bundle",
                          f"no CA bundle file at {ca_bundle}")  # fmt: skip
    return ca_bundle


def _token(formcall: Reader, env: Mapping[str, str]) -> str | None:
    if env.get("FORMCALL_SECURITY_TOKEN", "").strip():
        return "env:FORMCALL_SECURITY_TOKEN"
    if env.get("FORMCALL_SECURITY_TOKEN_SECRET", "").strip():
        name = env["FORMCALL_SECURITY_TOKEN_SECRET"].strip().removeprefix("secret:")
        return check_secret_reference(ENV_SOURCE, "FORMCALL_SECURITY_TOKEN_SECRET", "secret:" + name)
    if "security_token" in formcall.data:
        return formcall.secret("security_token", formcall.data["security_token"])
    return None


def _inherit(
    source: str,
    name: str,
    route_data: Any,
    defaults: Mapping[str, Any],
    env: Mapping[str, str],
    region_default: str,
    dry_run_all: bool,
) -> Route | None:
    """The route with [defaults] merged under it; each of its problems in a value it inherited is
    noted under `defaults.KEY`, where the user must fix it. None when the route has problems."""
    key = f"routes.{name}"
    if not isinstance(route_data, dict):
        raise ConfigError(source, key, "must be a table, e.g. [routes.default]")
    if not _ROUTE_NAME.match(name):
        raise ConfigError(source, key, "route names are letters, digits, '-', '_' and '.', at most 64")
    merged: dict[str, Any] = dict(defaults)
    for k, v in route_data.items():
        if k in _MERGED_TABLES and isinstance(v, dict) and isinstance(merged.get(k), dict):
            merged[k] = {**merged[k], **v}
        else:
            merged[k] = v
    route: Route | None = None
    with collecting() as problems:
        try:
            route = _route(source, name, merged, env, region_default, dry_run_all)
        except ConfigError as err:
            problems.append(err)
    for problem in problems:
        note(_blame_defaults(problem, name, route_data, defaults))
    return None if problems else route


def _store_url(env: Mapping[str, str]) -> str:
    store_url = env.get("FORMCALL_STORE_URL", "").strip() or "memory://"
    if not store_url.startswith(tuple(STORE_SCHEMES)):
        raise ConfigError(ENV_SOURCE, "FORMCALL_STORE_URL", f"must be {', '.join(STORE_SCHEMES.values())}")
    if store_url.startswith("firestore://"):
        from .stores.firestore import parse_url

        try:
            parse_url(store_url)
        except ValueError as err:
            raise ConfigError(ENV_SOURCE, "FORMCALL_STORE_URL", str(err)) from err
    return store_url


def _sweep_seconds(env: Mapping[str, str]) -> float:
    sweep_text = env.get("FORMCALL_SWEEP_SECONDS", "").strip() or "15"
    try:
        sweep_seconds = float(sweep_text)
    except ValueError:
        sweep_seconds = -1.0
    if not 0 < sweep_seconds <= 3600:
        raise ConfigError(
            ENV_SOURCE,
            "FORMCALL_SWEEP_SECONDS",
            f"must be seconds above 0, at most 3600, not {sweep_text!r}",
        )
    return sweep_seconds


def _blame_defaults(
    err: ConfigError, name: str, route_data: Mapping[str, Any], defaults: Mapping[str, Any]
) -> ConfigError:
    """An error in a value the route inherited names `defaults.KEY`, where the user must fix it."""
    prefix = f"routes.{name}."
    if err.source == ENV_SOURCE or not err.key.startswith(prefix):
        return err
    path = err.key[len(prefix) :].split(".")
    own: Any = route_data
    inherited: Any = defaults
    for part in path:
        if not isinstance(inherited, dict) or part not in inherited:
            return err  # not in [defaults]: the route's own (or a missing) value
        if not isinstance(own, dict) or part not in own:
            return ConfigError(err.source, "defaults." + ".".join(path), err.problem)
        # Set in both: the route's value wins unless both are tables, merged key by key.
        if not (isinstance(own[part], dict) and isinstance(inherited[part], dict)):
            return err
        own, inherited = own[part], inherited[part]
    return err


def _proxy_hops(env: Mapping[str, str]) -> int:
    text = env.get("FORMCALL_TRUSTED_PROXY_HOPS", "").strip()
    if not text:
        return DEFAULT_TRUSTED_PROXY_HOPS
    if not text.isascii() or not text.isdigit() or int(text) > MAX_TRUSTED_PROXY_HOPS:
        raise ConfigError(
            ENV_SOURCE,
            "FORMCALL_TRUSTED_PROXY_HOPS",
            f"must be a whole number from 0 to {MAX_TRUSTED_PROXY_HOPS} (1: Google's front end; "
            f"2: behind an external HTTPS load balancer), not {text!r}",
        )
    return int(text)


def _route(
    source: str, name: str, data: Mapping[str, Any], env: Mapping[str, str], region_default: str, dry_run_all: bool
) -> Route:
    """One route; each key's problem is noted and the route read on, so one run finds them all."""
    r = Reader(source, f"routes.{name}", data, ROUTE_KEYS)
    no_popups: tuple[tuple[str, int], ...] = ()
    popups = attempt(lambda: _popups(r), no_popups)
    popup = attempt(lambda: _popup(source, r, env), None) if not popups else _fixed(source, r, popups[0][0])
    phone_parts = attempt(lambda: _phone_parts(source, r), None)
    region = attempt(lambda: _region(r, region_default), region_default)
    allowed_regions = attempt(lambda: _allowed_regions(r, region), frozenset({region}))
    types = attempt(lambda: _number_types(r), DEFAULT_NUMBER_TYPES)
    adicional = attempt(lambda: _adicional(source, r), None)
    max_len = attempt(lambda: _positive(r, "adicional_max_length", DEFAULT_ADICIONAL_MAX_LENGTH), 1)
    dedupe = Reader(source, r.key("dedupe"), attempt(lambda: r.table("dedupe"), None) or {}, {"key", "window_seconds"})
    auth = attempt(lambda: _auth(source, r), Auth())
    captcha = attempt(lambda: _captcha(source, r), None)
    no_rates: tuple[Rate | None, Rate | None] = (None, None)
    per_ip, per_phone = attempt(lambda: _rates(source, r, auth=auth, captcha=captcha), no_rates)
    redirect = Reader(source, r.key("redirect"), attempt(lambda: r.table("redirect"), None) or {},
                       {"success", "failure"})  # fmt: skip
    redirect_success = attempt(lambda: _redirect(redirect, "success"), None)
    redirect_failure = attempt(lambda: _redirect(redirect, "failure"), None)
    honeypot = attempt(lambda: (r.get("honeypot", str) or "").strip() or None, None)
    outcome, conversions, recall = _follow_up(source, r)
    return Route(
        name=name,
        popup_uuid=popup,
        phone=attempt(lambda: r.template("phone"), None),
        phone_parts=phone_parts,
        region=region,
        allowed_regions=allowed_regions,
        allowed_number_types=types,
        adicional=adicional,
        adicional_max_length=max_len,
        auth=auth,
        honeypot=honeypot,
        captcha=captcha,
        dedupe_key=attempt(lambda: dedupe.template("key"), None),
        dedupe_window_seconds=attempt(lambda: _positive(dedupe, "window_seconds", 600), 600),
        rate_per_ip=per_ip,
        rate_per_phone=per_phone,
        redirect_success=redirect_success,
        redirect_failure=redirect_failure,
        cors_origins=attempt(lambda: _cors_origins(r), ()),
        allow_get=attempt(lambda: r.get("allow_get", bool, False), False),
        max_body_bytes=attempt(lambda: _positive(r, "max_body_bytes", DEFAULT_MAX_BODY_BYTES), 1),
        dry_run=dry_run_all or attempt(lambda: r.get("dry_run", bool, False), False),
        body_timeout_seconds=attempt(lambda: _body_timeout(r), DEFAULT_BODY_TIMEOUT_SECONDS),
        retry=attempt(lambda: _retry(source, r.key("retry"), r.data.get("retry")), None),
        outcome_reporting=outcome,
        consent=attempt(lambda: parse_consent(source, r.key("consent"), r.data.get("consent")), None),
        conversions=conversions,
        popups=popups,
        fallback_popup=attempt(lambda: _fallback(r), None),
        pace=attempt(lambda: _rate(r, "pace", day=False), None),
        recall=recall,
    )


def _popups(r: Reader) -> tuple[tuple[str, int], ...]:
    """Spec 11: `popup_uuid = [{ uuid = "...", weight = 2 }, ...]`; () when popup_uuid is a template."""
    value = r.data.get("popup_uuid")
    if not isinstance(value, list):
        return ()
    example = 'e.g. [{ uuid = "e5c98214-...", weight = 2 }, { uuid = "...", weight = 1 }]'
    if not value:
        raise r.fail("popup_uuid", f"is an empty list; list the popups, {example}")
    popups: list[tuple[str, int]] = []
    for item in value:
        if not isinstance(item, dict) or set(item) - {"uuid", "weight"} or "uuid" not in item:
            raise r.fail("popup_uuid", f"each item must be a table with uuid and weight, {example}")
        uuid, weight = item["uuid"], item.get("weight", 1)
        if not isinstance(uuid, str) or not is_uuid(uuid.strip()):
            raise r.fail("popup_uuid", f"{uuid!r} is not a UUID")
        if isinstance(weight, bool) or not isinstance(weight, int) or not 1 <= weight <= 1000:
            raise r.fail("popup_uuid", f"the weight of {uuid} must be a whole number from 1 to 1000, not {weight!r}")
        if any(uuid.strip().lower() == known.lower() for known, _ in popups):
            raise r.fail("popup_uuid", f"{uuid} is listed twice")
        popups.append((uuid.strip(), weight))
    return tuple(popups)


def _fixed(source: str, r: Reader, uuid: str) -> Template:
    return compile_or_fail(source, r.key("popup_uuid"), uuid)


def _fallback(r: Reader) -> str | None:
    value = r.get("fallback_popup", str)
    if value is None:
        return None
    if not is_uuid(value.strip()):
        raise r.fail("fallback_popup", f"{value!r} is not a UUID")
    return str(value.strip())


def _popup(source: str, r: Reader, env: Mapping[str, str]) -> Template:
    popup = r.template("popup_uuid")
    if popup is None and env.get("FORMCALL_POPUP_UUID", "").strip():
        popup = compile_or_fail(ENV_SOURCE, "FORMCALL_POPUP_UUID", env["FORMCALL_POPUP_UUID"].strip())
    if popup is None:
        raise ConfigError(
            source, r.key("popup_uuid"), "missing: set it here, in [defaults], or set FORMCALL_POPUP_UUID"
        )
    if "{" not in popup.source and not is_uuid(popup.source):
        raise ConfigError(source, r.key("popup_uuid"), f"{popup.source!r} is not a UUID")
    return popup


def _phone_parts(source: str, r: Reader) -> tuple[Template, Template, Template] | None:
    parts = r.table("phone_parts")
    if parts is None:
        return None
    if "phone" in r.data:
        raise r.fail("phone_parts", "set either phone or phone_parts, not both")
    pr = Reader(source, r.key("phone_parts"), parts, {"country_code", "areacode", "phonenumber"})
    templates = tuple(pr.template(k) for k in ("country_code", "areacode", "phonenumber"))
    if templates[2] is None:
        raise pr.fail("phonenumber", "missing: phone_parts needs at least phonenumber")
    empty = Template("")
    return templates[0] or empty, templates[1] or empty, templates[2]


def _region(r: Reader, region_default: str) -> str:
    region: str = r.get("region", str, region_default).strip().upper()
    if region not in phonenumbers.SUPPORTED_REGIONS:
        raise r.fail("region", f"{region!r} is not a region code such as CL")
    return region


def _allowed_regions(r: Reader, region: str) -> frozenset[str]:
    allowed_regions = frozenset(_str_list(r, "allowed_regions", [region], upper=True))
    for code in allowed_regions:
        if code not in phonenumbers.SUPPORTED_REGIONS:
            raise r.fail("allowed_regions", f"{code!r} is not a region code such as CL")
    return allowed_regions


def _number_types(r: Reader) -> frozenset[str]:
    types = frozenset(_str_list(r, "allowed_number_types", sorted(DEFAULT_NUMBER_TYPES), upper=True))
    for type_name in types:
        if type_name in FORBIDDEN_NUMBER_TYPES:
            raise r.fail("allowed_number_types", f"{type_name} numbers are never called (toll fraud)")
        if type_name not in NUMBER_TYPE_NAMES:
            raise r.fail(
                "allowed_number_types",
                f"{type_name!r} is not one of {', '.join(sorted(NUMBER_TYPE_NAMES - FORBIDDEN_NUMBER_TYPES))}",
            )
    return types


def _adicional(source: str, r: Reader) -> tuple[tuple[str, Template], ...] | None:
    adicional_table = r.table("adicional")
    if adicional_table is None:
        return None
    ar = Reader(source, r.key("adicional"), adicional_table, set(adicional_table))
    return tuple((k, _required(ar.template(k), ar, k)) for k in adicional_table)


def _redirect(redirect: Reader, key: str) -> str | None:
    url: str | None = redirect.get(key, str)
    if url is not None and not url.startswith(("https://", "http://", "/")):
        raise redirect.fail(key, "must be an http(s) URL or a path")
    return url


def _rates(source: str, route: Reader, *, auth: Auth, captcha: Captcha | None) -> tuple[Rate | None, Rate | None]:
    """per_ip and per_phone, unless the route sets its own or says false (spec 2): a route without auth gets
    per_phone 3/day (a captcha proves a person, not a consented number), and without a captcha also
    per_ip 30/hour."""
    unsigned = auth.type == "none"
    public = unsigned and captcha is None
    value = route.data.get("rate_limit")
    if value is False:
        return None, None  # opted out; `check` warns about it
    if value is not None and not isinstance(value, dict):
        raise route.fail("rate_limit", 'must be a table, e.g. { per_ip = "10/minute" }, or false')
    rate = Reader(source, route.key("rate_limit"), value or {}, {"per_ip", "per_phone"})
    per_ip, per_phone = _rate(rate, "per_ip"), _rate(rate, "per_phone")
    if public and "per_ip" not in rate.data:
        per_ip = PUBLIC_RATE_PER_IP
    if unsigned and "per_phone" not in rate.data:
        per_phone = PUBLIC_RATE_PER_PHONE
    return per_ip, per_phone


def _cors_origins(route: Reader) -> tuple[str, ...]:
    origins = _str_list(route, "cors_origins", [])
    for origin in origins:
        if origin != "*" and not _ORIGIN.match(origin):
            stripped = urlsplit(origin)
            hint = f"; write {stripped.scheme}://{stripped.netloc!s}" if stripped.scheme and stripped.netloc else ""
            raise route.fail(
                "cors_origins",
                f"{origin!r} can never match: a browser's Origin is scheme://host[:port], "
                f"with no path and no trailing slash{hint}",
            )
    return tuple(origins)


def _body_timeout(route: Reader) -> float:
    value = float(route.get("body_timeout_seconds", (int, float), DEFAULT_BODY_TIMEOUT_SECONDS))
    if not 0 < value <= MAX_BODY_TIMEOUT_SECONDS:
        raise route.fail("body_timeout_seconds", f"must be more than 0 and at most {MAX_BODY_TIMEOUT_SECONDS:g}")
    return value


def _required(value: Template | None, reader: Reader, key: str) -> Template:
    if value is None:
        raise reader.fail(key, "missing")
    return value


def _positive(reader: Reader, key: str, default: int) -> int:
    value: int = reader.get(key, int, default)
    if value <= 0:
        raise reader.fail(key, "must be a whole number above 0")
    return value


def _str_list(reader: Reader, key: str, default: list[str], *, upper: bool = False) -> list[str]:
    value = reader.get(key, list, default)
    if not all(isinstance(v, str) and v.strip() for v in value):
        raise reader.fail(key, "must be a list of non-empty strings")
    return [v.strip().upper() if upper else v.strip() for v in value]


def _rate(reader: Reader, key: str, *, day: bool = True) -> Rate | None:
    text = reader.get(key, str)
    if text is None:
        return None
    rate = _parse_rate(text)
    if rate is None or (not day and rate.seconds > 3600):
        units = "second|minute|hour|day" if day else "second|minute|hour"
        raise reader.fail(key, f'{text!r} is not COUNT/{units}, e.g. "6/minute"')
    return rate


def _parse_rate(text: str) -> Rate | None:
    match = _RATE.match(text)
    if not match or int(match.group(1)) <= 0:
        return None
    return Rate(int(match.group(1)), _RATE_SECONDS[match.group(2)])


_AUTH_KEYS = {"type", "secret", "header", "username", "password", "public_url", "query_token", "verify_token",
              "page_token", "graph_url", "graph_version"}  # fmt: skip
_REFERENCE_KEYS = ("secret", "password", "verify_token", "page_token")
_GRAPH_VERSION = re.compile(r"^v[0-9]{1,3}\.[0-9]{1,3}$")


def _auth(source: str, route: Reader) -> Auth:
    table = route.table("auth")
    if table is None:
        return Auth()
    a = Reader(source, route.key("auth"), table, _AUTH_KEYS)
    kind = a.get("type", str, "none")
    scheme = AUTH_SCHEMES.get(kind)
    if scheme is None:
        raise a.fail("type", f"{kind!r} is not one of {', '.join(AUTH_TYPES)}")
    refs = {key: a.secret(key, a.data[key]) if key in a.data else None for key in _REFERENCE_KEYS}
    username = a.get("username", str)
    values: dict[str, Any] = {**refs, "username": username}
    needed = (*scheme.required_keys, *scheme.secret_keys)
    for key in needed:
        if not values.get(key):
            what = "a secret reference" if needed == ("secret",) else " and ".join(needed)
            if len(scheme.secret_keys) > 1:
                what += " (secret references)"
            raise a.fail(key, f"missing: auth type {kind} needs {what}")
    public_url = a.get("public_url", str)
    if public_url is not None and not public_url.startswith(("https://", "http://")):
        raise a.fail("public_url", "must be the full URL of the route as entered in HubSpot")
    header = a.get("header", str, DEFAULT_TOKEN_HEADER).strip()
    if not header:
        raise a.fail("header", "must not be empty")
    graph_url = a.get("graph_url", str, GRAPH_URL).rstrip("/")
    if not graph_url.startswith(("https://", "http://")):
        raise a.fail("graph_url", f"must be a URL such as {GRAPH_URL}")
    graph_version = a.get("graph_version", str, GRAPH_VERSION)
    if not _GRAPH_VERSION.match(graph_version):
        raise a.fail("graph_version", f"must be a Graph API version such as {GRAPH_VERSION}")
    return Auth(kind, refs["secret"], header, username, refs["password"], public_url,
                a.get("query_token", bool, True), refs["verify_token"], refs["page_token"], graph_url,
                graph_version)  # fmt: skip


def _captcha(source: str, route: Reader) -> Captcha | None:
    table = route.table("captcha")
    if table is None:
        return None
    c = Reader(source, route.key("captcha"), table, {
        "provider", "secret", "field", "min_score", "max_score", "action", "hostnames", "sitekey", "verify_url",
    })  # fmt: skip
    provider = c.get("provider", str)
    if provider not in CAPTCHA_PROVIDERS:
        raise c.fail("provider", f"must be one of {', '.join(CAPTCHA_PROVIDERS)}")
    if "secret" not in c.data:
        raise c.fail("secret", "missing: the captcha provider's secret key, as a secret reference")
    scores = {}
    for key, default in (("min_score", 0.5), ("max_score", DEFAULT_HCAPTCHA_MAX_SCORE)):
        scores[key] = float(c.get(key, (int, float), default))
        if not 0 <= scores[key] <= 1:
            raise c.fail(key, "must be between 0 and 1")
    action = (c.get("action", str) or "").strip() or None
    sitekey = (c.get("sitekey", str) or "").strip() or None
    return Captcha(
        provider=provider,
        secret=c.secret("secret", c.data["secret"]),
        field=c.get("field", str, CAPTCHA_FIELDS[provider]),
        min_score=scores["min_score"],
        verify_url=c.get("verify_url", str, CAPTCHA_PROVIDERS[provider]),
        max_score=scores["max_score"],
        action=action,
        hostnames=frozenset(h.lower() for h in _str_list(c, "hostnames", [])),
        sitekey=sitekey,
    )


def is_uuid(text: str) -> bool:
    """The 8-4-4-4-12 form FormCall uses: what uuid.UUID takes (without loading it) at 36 characters,
    so no braces nor URNs."""
    if len(text) != 36:
        return False
    digits = text.replace("urn:", "").replace("uuid:", "").strip("{}").replace("-", "")
    if len(digits) != 32:
        return False
    try:
        int(digits, 16)
    except ValueError:
        return False
    return True


# The policy tables are read by config_policies.py, loaded only when a config has one.


def _retry(source: str, key: str, value: Any) -> RetryPolicy | None:
    if value is None or value is True:
        return DEFAULT_RETRY
    if value is False:
        return None
    from .config_policies import parse_retry

    return parse_retry(source, key, value)


def _follow_up(source: str, r: Reader) -> tuple[OutcomePolicy | None, ConversionsPolicy | None, RecallPolicy | None]:
    """The route's `outcome`, `conversions` and `recall` (spec 9, 12, 11); None for each one absent or false.
    A recall and a conversion wait on the call's outcome, so they turn the lookups on."""
    if all(r.data.get(k) is None or r.data.get(k) is False for k in ("outcome", "conversions", "recall")):
        return None, None, None
    from .config_policies import parse_conversions, parse_outcome, parse_recall
    from .outcomes import OutcomePolicy

    conversions = attempt(lambda: parse_conversions(source, r.key("conversions"), r.data.get("conversions")), None)
    recall = attempt(lambda: parse_recall(source, r.key("recall"), r.data.get("recall")), None)
    outcome = attempt(lambda: parse_outcome(source, r.key("outcome"), r.data.get("outcome")), None)
    if outcome is None and (recall is not None or conversions is not None):
        outcome = OutcomePolicy()
    return outcome, conversions, recall


def _leads(source: str, value: Any) -> LeadsPolicy:
    if value is None:
        return LeadsPolicy()
    from .config_policies import parse_leads

    return parse_leads(source, value)
