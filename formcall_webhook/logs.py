"""One Cloud Logging JSON line per request on stdout (spec section 6)."""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import threading
from collections.abc import Mapping
from typing import Any, TextIO

_LEVELS = {"DEBUG": 10, "INFO": 20, "NOTICE": 25, "WARNING": 30, "ERROR": 40, "CRITICAL": 50}
_TRACE = re.compile(r"^([0-9a-fA-F]{32})")
_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-")
_lock = threading.Lock()


def level_from_env(environ: Mapping[str, str] | None = None) -> int:
    env = os.environ if environ is None else environ
    return _LEVELS.get(env.get("FORMCALL_LOG_LEVEL", "INFO").strip().upper(), 20)


def severity_for(status: int) -> str:
    if status >= 500:
        return "ERROR"
    if status >= 400:
        return "WARNING"
    return "INFO"


def trace_field(headers: Mapping[str, str], project: str | None) -> str | None:
    """logging.googleapis.com/trace from X-Cloud-Trace-Context (or W3C traceparent)."""
    match = _TRACE.match(headers.get("x-cloud-trace-context", "")) or _TRACEPARENT.match(headers.get("traceparent", ""))
    if not match:
        return None
    trace_id = match.group(1).lower()
    return f"projects/{project}/traces/{trace_id}" if project else trace_id


def project_id(environ: Mapping[str, str] | None = None) -> str | None:
    env = os.environ if environ is None else environ
    return env.get("GOOGLE_CLOUD_PROJECT") or env.get("GCP_PROJECT") or env.get("GCLOUD_PROJECT") or None


class RequestLogger:
    """Writes the request line; the caller passes only fields that are safe to log."""

    def __init__(self, level: int, project: str | None, stream: TextIO | None = None) -> None:
        self.level = level
        self.project = project
        self.stream = stream

    def write(self, severity: str, message: str, fields: Mapping[str, Any], headers: Mapping[str, str]) -> None:
        if _LEVELS.get(severity, 20) < self.level:
            return
        entry: dict[str, Any] = {"severity": severity, "message": message}
        trace = trace_field(headers, self.project)
        if trace:
            entry["logging.googleapis.com/trace"] = trace
        entry.update((k, v) for k, v in fields.items() if v is not None)
        # ASCII: a U+2028 or a stray surrogate in a route name must not split or break the line.
        line = json.dumps(entry, separators=(",", ":"), default=str)
        stream = self.stream or sys.stdout
        with _lock:
            stream.write(line + "\n")
            stream.flush()


class JsonLogHandler(logging.Handler):
    """Library and warning messages in the same one-line JSON shape, so Cloud Logging parses them."""

    def emit(self, record: logging.LogRecord) -> None:
        severity = record.levelname if record.levelname in _LEVELS else "DEFAULT"
        entry = {"severity": severity, "message": record.getMessage(), "logger": record.name}
        with _lock:
            sys.stdout.write(json.dumps(entry, default=str) + "\n")
            sys.stdout.flush()


def setup_library_logging(level: int) -> None:
    logger = logging.getLogger("formcall_webhook")
    if not any(isinstance(h, JsonLogHandler) for h in logger.handlers):
        logger.addHandler(JsonLogHandler())
    logger.setLevel(level)
    logger.propagate = False
