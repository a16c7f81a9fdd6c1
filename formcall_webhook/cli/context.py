"""What the store commands share, opened on first use: `check` and `try` never build a Runtime or a store."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import phonenumbers

from .. import phones
from ..config import DEFAULT_API_URL, DEFAULT_REGION
from ..errors import Misconfigured, StoreUnavailableError, WebhookError

if TYPE_CHECKING:
    from ..config import Config
    from ..delivery import Deliverer
    from ..runtime import Runtime
    from ..stores import Backend
    from ..sweep import Sweeper

# Exit codes (spec 8's commands): 0 done, 1 not found, refused or the store down, 2 a usage error.
OK, FAILED, USAGE = 0, 1, 2
# `make run`'s store (`.env.example`): a command run where it exists, with FORMCALL_STORE_URL unset, uses it.
MAKE_RUN_STORE = Path(".formcall") / "leads.db"
MAKE_RUN_ENV = Path(".env.example")
# A route's popup where none is configured: the commands read and retry leads, whose records carry their
# own popup, so none of them needs the route's; a config without one must not stop them (spec 8).
NO_POPUP = "00000000-0000-0000-0000-000000000000"


def make_run_settings(environ: Mapping[str, str], cwd: Path | None = None) -> dict[str, str]:
    """`make run`'s settings for a command run beside its store: when FORMCALL_STORE_URL is unset and
    `.formcall/leads.db` exists in the current directory, `.env.example`'s value of every variable not set
    (what `make run` reads: its store, the simulator's URL and token), the store always. Else none."""
    where = Path.cwd() if cwd is None else cwd
    if environ.get("FORMCALL_STORE_URL", "").strip() or not (where / MAKE_RUN_STORE).is_file():
        return {}
    found: dict[str, str] = {}
    try:
        lines = (where / MAKE_RUN_ENV).read_text(encoding="utf-8").splitlines()
    except OSError:
        lines = []
    for line in lines:
        key, sep, value = line.partition("=")
        key = key.strip()
        if sep and key and not key.startswith("#") and key not in environ:
            found[key] = value.strip()
    found["FORMCALL_STORE_URL"] = f"sqlite://{MAKE_RUN_STORE}"
    return found


def add_config_option(parser: Any) -> None:
    """--config for the commands that open the store (dest store_config: main builds the Context with it)."""
    parser.add_argument(
        "--config", dest="store_config", help="the TOML file (default: FORMCALL_CONFIG or formcall.toml)"
    )


def add_production_option(parser: Any) -> None:
    """--production for the commands that call FormCall (spec 8: never production by default from a shell)."""
    parser.add_argument(
        "--production",
        action="store_true",
        help="allow calling production FormCall when neither FORMCALL_API_URL nor [formcall] api_url names it",
    )


class CliError(Exception):
    """Ends a command with one line on stderr and its exit code; never a traceback."""

    def __init__(self, message: str, code: int = FAILED) -> None:
        super().__init__(message)
        self.code = code


class Context:
    """The Runtime (config, secrets, store, deliverer) of one command, built on first use."""

    def __init__(self, environ: Mapping[str, str] | None = None, config_file: str | None = None) -> None:
        environ = dict(os.environ if environ is None else environ)
        if config_file:
            environ["FORMCALL_CONFIG"] = config_file
        self.make_run = make_run_settings(environ)
        environ.update(self.make_run)
        if not environ.get("FORMCALL_POPUP_UUID", "").strip():
            environ["FORMCALL_POPUP_UUID"] = NO_POPUP
        self.environ = environ
        self._runtime: Runtime | None = None

    @property
    def loaded(self) -> bool:
        return self._runtime is not None

    @property
    def runtime(self) -> Runtime:
        if self._runtime is None:
            from ..runtime import Runtime

            runtime = Runtime(self.environ)
            # stdout is the command's own output (tables, JSON): the sweeper's log lines go to stderr.
            runtime.logger.stream = sys.stderr
            try:
                runtime.config()
            except Misconfigured as err:
                bad = runtime.config_error
                raise CliError(f"{bad.source}: {bad.key}: {bad.problem}" if bad else err.message) from err
            if self.make_run:
                print(
                    f"note: FORMCALL_STORE_URL is unset: using make run's store {self.make_run['FORMCALL_STORE_URL']} "
                    f"and {MAKE_RUN_ENV}'s settings",
                    file=sys.stderr,
                )
            elif runtime.config().store_url.startswith("memory://"):
                print(
                    "warning: the store is memory:// (FORMCALL_STORE_URL unset?): its leads live inside the "
                    "function's own process, so this command sees none; set FORMCALL_STORE_URL to the deployed "
                    "store's URL",
                    file=sys.stderr,
                )
            self._runtime = runtime
        return self._runtime

    @property
    def config(self) -> Config:
        return self.runtime.config()

    @property
    def store(self) -> Backend:
        return self.runtime.store

    @property
    def deliverer(self) -> Deliverer:
        return self.runtime.deliverer

    def may_call_formcall(self, production: bool) -> None:
        """Refuse, before anything is changed, a command that would call FormCall without a token, or
        production FormCall from a shell when neither the settings nor `--production` say so."""
        from ..config import config_path

        config = self.config
        explicit = bool(self.environ.get("FORMCALL_API_URL", "").strip())
        if not explicit:
            path = config_path(self.environ)
            if path is not None:
                import tomllib

                try:
                    with open(path, "rb") as handle:
                        explicit = "api_url" in (tomllib.load(handle).get("formcall") or {})
                except (OSError, tomllib.TOMLDecodeError):
                    explicit = False
        if config.api_url == DEFAULT_API_URL and not explicit and not production:
            raise CliError(
                f"refused: this would call production FormCall ({DEFAULT_API_URL}), which nothing here names. "
                "Set FORMCALL_API_URL or [formcall] api_url to the FormCall you mean (make run's simulator: "
                "http://127.0.0.1:8081/calls/manage/api), or pass --production to call production FormCall"
            )
        try:
            self.deliverer.attempts.token()
        except WebhookError as err:
            raise CliError(
                "refused: no FormCall token, so no call can be placed and the lead is left as it is. Set "
                "FORMCALL_SECURITY_TOKEN (make run's simulator takes dev-token), FORMCALL_SECURITY_TOKEN_SECRET "
                f"or [formcall] security_token ({err.reason or err.message})"
            ) from err

    def sweeper(self) -> Sweeper:
        """The sweeper `sweep` and `leads retry` use; the one place to hand it outcome work (spec 9)."""
        from ..sweep import Sweeper

        return Sweeper(self.runtime)

    def store_label(self) -> str:
        """The store's URL without the password a redis:// URL may carry."""
        url = self.config.store_url
        scheme, sep, rest = url.partition("://")
        return f"{scheme}://{rest.rsplit('@', 1)[-1]}" if sep else url

    def default_region(self) -> str:
        routes = self.config.routes
        route = routes.get("default") or next(iter(routes.values()), None)
        return route.region if route is not None else DEFAULT_REGION

    def e164(self, typed: str, region: str | None = None) -> str:
        """A number however it is written ("+56 9 6123 4567", "09 6123 4567") in E.164; any valid
        number of any country, since a person's request is not bound to a route's allowed regions."""
        region = (region or self.default_region()).upper()
        if region not in phonenumbers.SUPPORTED_REGIONS:
            raise CliError(f"--region {region!r} is not a region code such as CL", USAGE)
        try:
            number, _ = phones.parse(typed, region)
        except WebhookError as err:
            raise CliError(f"{err.message} (read with region {region})", USAGE) from err
        return f"+{number.country_code}{phonenumbers.national_significant_number(number)}"

    def check_hash_key(self) -> None:
        """The store's hash-key fingerprint matches this command's key (written on first use): else a
        CliError, before anything is read or changed."""
        try:
            self.runtime.attempter.hash_key()
        except Misconfigured as err:
            raise CliError(f"{err.reason or err.message}; refusing to read or change the store's leads") from err

    def phone_hash(self, e164: str) -> str:
        return self.runtime.attempter.phone_hash(e164)


def store_error(err: WebhookError, ctx: Context | None = None) -> str:
    """One line for a store that is down or a secret that cannot be read."""
    message = err.message
    if isinstance(err, StoreUnavailableError) and ctx is not None and ctx.loaded:
        message = f"the store {ctx.store_label()} cannot be reached; nothing was changed."
    return f"{message} ({err.reason})" if err.reason else message
