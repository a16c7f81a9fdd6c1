"""Reading the config file's tables: typed access that names the full key in every problem, and the
list of problems one load collects, so `check` reports them all in one run (spec 2).

config.py reads the file with it; config_policies.py reads the retry, outcome and [leads] tables."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar
from urllib.parse import urlsplit

from jinja2 import TemplateSyntaxError

from .errors import ConfigError
from .secret_store import is_reference, is_version_name
from .states import parse_duration
from .templates import Template

# Every problem of one load, in the order found: `check` shows them all in one run (spec 2). Outside a
# load (a parser called on its own) there is no list and the first problem is raised at once.
_PROBLEMS: ContextVar[list[ConfigError] | None] = ContextVar("config_problems", default=None)
T = TypeVar("T")


def note(err: ConfigError) -> None:
    problems = _PROBLEMS.get()
    if problems is None:
        raise err
    problems.append(err)


def attempt(read: Callable[[], T], default: T) -> T:
    """`read()`, or `default` once its problem is noted, so the load goes on to find the next one."""
    try:
        return read()
    except ConfigError as err:
        note(err)
        return default


@contextmanager
def collecting() -> Iterator[list[ConfigError]]:
    problems: list[ConfigError] = []
    token = _PROBLEMS.set(problems)
    try:
        yield problems
    finally:
        _PROBLEMS.reset(token)


_TABLE_EXAMPLE = '{ key = "value" }'


def unknown_key_problem(name: str, allowed: Collection[str]) -> str:
    """What to say of a key the table does not know: the close one, else the known ones."""
    known = sorted(allowed)
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    listed = f"unknown key; known keys here: {', '.join(known)}"
    if not close:
        return listed
    if len(known) > 6:  # a route's 22 keys: the guess alone
        return f"unknown key; did you mean `{close[0]}`?"
    return f"{listed}; did you mean `{close[0]}`?"


class Reader:
    """Typed access to one table of the file, naming the key in every error; unknown keys are noted."""

    def __init__(
        self, source: str, prefix: str, data: Any, allowed: Collection[str], *, example: str | None = None
    ) -> None:
        self.source = source
        self.prefix = prefix
        if not isinstance(data, Mapping):
            raise ConfigError(source, prefix, f"must be a table, e.g. {example or _TABLE_EXAMPLE}")
        self.data: Mapping[str, Any] = data
        for key in data:
            if key not in allowed:
                note(self.fail(key, unknown_key_problem(key, allowed)))

    def key(self, name: str) -> str:
        return f"{self.prefix}.{name}" if self.prefix else name

    def fail(self, name: str, problem: str) -> ConfigError:
        return ConfigError(self.source, self.key(name), problem)

    def get(self, name: str, kind: type | tuple[type, ...], default: Any = None) -> Any:
        if name not in self.data:
            return default
        value = self.data[name]
        # TOML booleans are ints to isinstance; refuse them where a number is wanted.
        if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
            raise self.fail(name, f"must be {kind_name(kind)}, not a boolean")
        if not isinstance(value, kind):
            raise self.fail(name, f"must be {kind_name(kind)}, not {type(value).__name__}")
        return value

    def string(self, name: str) -> str:
        value = self.data[name]
        if not isinstance(value, str):
            raise self.fail(name, f"must be a string, not {kind_of(value)}")
        return value

    def strings(self, name: str) -> list[str]:
        value = self.data[name]
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise self.fail(name, f'must be a list of strings, e.g. ["a", "b"], not {kind_of(value)}')
        return value

    def duration(self, name: str, value: Any, *, positive: bool = False) -> int:
        try:
            seconds = parse_duration(value)
        except ValueError as err:
            raise self.fail(name, str(err)) from err
        if positive and seconds == 0:
            raise self.fail(name, f"{value!r} must be longer than zero")
        return seconds

    def url(self, name: str) -> str:
        value = self.string(name)
        try:
            parts = urlsplit(value)
        except ValueError:
            parts = None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            raise self.fail(name, f"{value!r} must be an http(s) URL")
        return value

    def template(self, name: str) -> Template | None:
        text = self.data.get(name)
        if text is None:
            return None
        if not isinstance(text, str):
            raise self.fail(name, f"must be a template string, not {type(text).__name__}")
        return compile_or_fail(self.source, self.key(name), text)

    def secret(self, name: str, value: Any) -> str:
        if not isinstance(value, str) or not value:
            raise self.fail(
                name, "must be a secret reference: env:NAME, file:PATH or secret:projects/P/secrets/S/versions/V"
            )
        return check_secret_reference(self.source, self.key(name), value)

    def table(self, name: str) -> Mapping[str, Any] | None:
        value = self.data.get(name)
        if value is None:
            return None
        if not isinstance(value, dict):
            raise self.fail(name, 'must be a table, e.g. { key = "value" }')
        return value


def kind_of(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, Mapping):
        return "a table"
    return type(value).__name__


def kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {
        str: "a string",
        int: "a whole number",
        float: "a number",
        bool: "true or false",
        list: "a list",
        dict: "a table",
    }
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def compile_or_fail(source: str, key: str, text: str) -> Template:
    try:
        return Template(text)
    except TemplateSyntaxError as err:
        raise ConfigError(source, key, f"template syntax error: {err.message} (line {err.lineno})") from err


def check_secret_reference(source: str, key: str, value: str) -> str:
    if not is_reference(value):
        raise ConfigError(
            source,
            key,
            "a literal secret is not allowed here; use env:NAME, file:PATH or secret:projects/P/secrets/S/versions/V",
        )
    if value.startswith("secret:") and not is_version_name(value[len("secret:") :]):
        raise ConfigError(source, key, "a secret: reference must be projects/P/secrets/S/versions/V (V may be latest)")
    return value


def secret_ref(source: str, key: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(
            source, key, "must be a secret reference: env:NAME, file:PATH or secret:projects/P/secrets/S/versions/V"
        )
    return check_secret_reference(source, key, value)
