"""Jinja2 templates for mapping fields: sandboxed, compiled once, never raising at render time."""

from __future__ import annotations

import functools
import json
import logging
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import jinja2
from jinja2 import ChainableUndefined, TemplateError

if TYPE_CHECKING:
    from jinja2.sandbox import SandboxedEnvironment

log = logging.getLogger(__name__)

_NON_DIGITS = re.compile(r"\D+")


def _fromjson(value: Any) -> Any:
    """Parse JSON that a sender put inside a field; anything unparseable becomes empty."""
    if isinstance(value, (dict, list)):
        return value
    if not isinstance(value, (str, bytes)):
        return ChainableUndefined(name="fromjson")
    try:
        return json.loads(value)
    except (ValueError, RecursionError):
        return ChainableUndefined(name="fromjson")


def _digits(value: Any) -> str:
    if value is None or isinstance(value, ChainableUndefined):
        return ""
    return _NON_DIGITS.sub("", str(value))


def _none_as_empty(value: Any) -> Any:
    return "" if value is None else value


@functools.cache
def environment() -> SandboxedEnvironment:
    """The one sandbox every template compiles in, made by the first template with Jinja syntax (a
    config with none, zero-config's, never loads the sandbox)."""
    from jinja2.sandbox import SandboxedEnvironment

    # ChainableUndefined: `properties.phone.value` on a body without `properties` renders
    # empty instead of raising, which is what a form with an optional field needs.
    # finalize: a JSON null renders empty, not "None".
    env = SandboxedEnvironment(undefined=ChainableUndefined, autoescape=False, finalize=_none_as_empty)
    env.filters["fromjson"] = _fromjson
    env.filters["digits"] = _digits
    return env


class Template:
    """A compiled template, or a literal when the text has no Jinja syntax at all."""

    __slots__ = ("_compiled", "_literal", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        self._compiled: jinja2.Template | None = None
        self._literal: str | None = None
        if "{" in source:
            # Raises jinja2.TemplateSyntaxError, which the config loader turns into a ConfigError.
            self._compiled = environment().from_string(source)
        else:
            self._literal = source

    def render(self, context: Mapping[str, Any]) -> str:
        """The rendered text, stripped; empty when the template failed on this submission."""
        try:
            return self.render_strict(context)
        except TemplateFailed:
            return ""

    def render_strict(self, context: Mapping[str, Any]) -> str:
        """The rendered text, stripped; TemplateFailed when this submission breaks the template."""
        if self._literal is not None:
            return self._literal.strip()
        assert self._compiled is not None
        try:
            return self._compiled.render(context).strip()
        except (TemplateError, ArithmeticError, TypeError, ValueError, LookupError, AttributeError) as err:
            # A submission shaped unlike the template expects (a list where a key was meant).
            log.debug("template failed on this submission: %s", self.source[:80])
            raise TemplateFailed(type(err).__name__) from err


class TemplateFailed(Exception):
    """A template that compiles but cannot render this submission."""
