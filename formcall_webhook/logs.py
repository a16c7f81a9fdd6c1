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

# The contract between the code and the dashboards, metrics and alerts in infra/: every field a log
# line may carry. tests/test_infra.py holds every metric filter and dashboard query to these.
LOG_FIELDS: frozenset[str] = frozenset(
    {
        "severity",
        "message",
        "logging.googleapis.com/trace",
        "route",
        "outcome",
        "status",
        "lead_id",
        "uuid",
        "phone",
        "popup_uuid",
        "formcall_error_code",
        "formcall_ms",
        "wait_seconds",
        "attempts",
        "source",
        "reason",
        "adicional_keys",
        "duration_ms",
        "method",
        "call_status",
        "connected",
        "successful",
        # The outcome work's lines (spec 9): where each report stands, a status never seen before.
        "webhook",
        "webhook_failed",
        "hubspot",
        "hubspot_failed",
        "unknown_status",
        # The sweep's summary line.
        "due",
        "placed",
        "pending",
        "scheduled",
        "failed",
    }
)

# The error words of the spec's answer table (section 4).
ERROR_WORDS: frozenset[str] = frozenset(
    {
        "bad_request",
        "request_timeout",
        "unauthorized",
        "captcha_failed",
        "unknown_route",
        "method_not_allowed",
        "out_of_service_hours",
        "payload_too_large",
        "unsupported_media_type",
        "phone_missing",
        "invalid_phone",
        "region_not_allowed",
        "number_type_not_allowed",
        "consent_missing",
        "opted_out",
        "formcall_rejected",
        "rate_limited",
        "misconfigured",
        "origination_failed",
        "formcall_misconfigured",
        "formcall_unavailable",
        "store_unavailable",
    }
)
REQUEST_OUTCOMES: frozenset[str] = ERROR_WORDS | {
    "placed",
    "pending",
    "scheduled",
    "duplicate",
    "honeypot",
    "dry_run",
    "preflight",
    "handshake",  # Meta subscribing the URL (spec 5)
    "no_leads",  # a Meta delivery that names no lead
    "graph_unavailable",  # a 503: Meta's Graph API did not give a lead on a route with retry = false
    "idempotency_key_reused",  # WARNING: a sender's key seen before for another number (spec 4)
}
SWEEP_OUTCOMES: frozenset[str] = frozenset(
    {
        "placed",
        "pending",
        "scheduled",
        "lead_failed",
        "call_outcome",
        "outcome_delivered",
        "outcome_failed",
        "conversion_failed",
        "sweep",
        # Spec 11's recalls: placed, waiting (hours, pace, FormCall), stopped, or its answer lost.
        "recalled",
        "recall_scheduled",
        "recall_stopped",
        "recall_uncertain",
    }
)
OUTCOMES: frozenset[str] = REQUEST_OUTCOMES | SWEEP_OUTCOMES

# Someone must act: the alerts key on these (severity follows the outcome, not the HTTP status).
ERROR_OUTCOMES: frozenset[str] = frozenset(
    {
        "lead_failed",
        "misconfigured",
        "formcall_misconfigured",
        "store_unavailable",
        "formcall_unavailable",
        "origination_failed",
        "outcome_failed",
        "conversion_failed",
    }
)
WARNING_OUTCOMES: frozenset[str] = (ERROR_WORDS - ERROR_OUTCOMES) | {"scheduled", "idempotency_key_reused"}

# What Error Reporting needs to pick up a line that has no stack trace: this @type, a message,
# serviceContext and context.reportLocation.
REPORTED_ERROR_EVENT = "type.googleapis.com/google.devtools.clouderrorreporting.v1beta1.ReportedErrorEvent"

_METADATA_HOST = "metadata.google.internal"
_METADATA_PATH = "/computeMetadata/v1/project/project-id"
_METADATA_TIMEOUT = 0.5


def level_from_env(environ: Mapping[str, str] | None = None) -> int:
    env = os.environ if environ is None else environ
    return _LEVELS.get(env.get("FORMCALL_LOG_LEVEL", "INFO").strip().upper(), 20)


def severity_for(word: str, code: int) -> str:
    """The line's severity from its outcome word; any 5xx is an ERROR whatever the word.

    A failure answered to a browser as a 303 is still logged as the failure it is.
    """
    if word in ERROR_OUTCOMES or code >= 500:
        return "ERROR"
    if word in WARNING_OUTCOMES:
        return "WARNING"
    if word not in OUTCOMES and code >= 400:
        return "WARNING"
    return "INFO"


def trace_field(headers: Mapping[str, str], project: str | None) -> str | None:
    """logging.googleapis.com/trace from traceparent (W3C) or X-Cloud-Trace-Context.

    None without a project: Cloud Logging links only projects/P/traces/T, and a bare id is noise.
    """
    if not project:
        return None
    match = _TRACEPARENT.match(headers.get("traceparent", "")) or _TRACE.match(headers.get("x-cloud-trace-context", ""))
    if not match or set(match.group(1)) == {"0"}:
        return None
    return f"projects/{project}/traces/{match.group(1).lower()}"


def project_id(environ: Mapping[str, str] | None = None) -> str | None:
    """The project from the environment only (cheap, safe at import)."""
    env = os.environ if environ is None else environ
    return env.get("GOOGLE_CLOUD_PROJECT") or env.get("GCP_PROJECT") or env.get("GCLOUD_PROJECT") or None


class MetadataProject:
    """The project id from the metadata server, asked once per process and only on Cloud Run.

    Cloud Run (and so Cloud Functions 2nd gen) sets K_SERVICE; anywhere else there is no metadata
    server to ask, and a lookup would only cost a timeout. GCE_METADATA_HOST points it elsewhere
    (tests, emulators), as Google's own client libraries allow.
    """

    def __init__(self, timeout: float = _METADATA_TIMEOUT) -> None:
        self.timeout = timeout
        self._lock = threading.Lock()
        self._done = False
        self._value: str | None = None

    def get(self, environ: Mapping[str, str] | None = None) -> str | None:
        if self._done:
            return self._value
        with self._lock:
            if not self._done:
                self._value = self._fetch(os.environ if environ is None else environ)
                self._done = True
        return self._value

    def _fetch(self, env: Mapping[str, str]) -> str | None:
        if not env.get("K_SERVICE"):
            return None
        import urllib.request  # only on Cloud Run, once; a cold start elsewhere never loads it

        host = env.get("GCE_METADATA_HOST") or _METADATA_HOST
        request = urllib.request.Request(f"http://{host}{_METADATA_PATH}", headers={"Metadata-Flavor": "Google"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:  # noqa: S310 - http:// by design
                if answer.headers.get("Metadata-Flavor") != "Google":
                    return None
                value = answer.read(256).decode("ascii", "replace").strip()
        except (OSError, ValueError):
            return None
        return value if re.fullmatch(r"[a-z][a-z0-9.:-]{4,62}", value) else None


_metadata_project = MetadataProject()


def resolve_project(environ: Mapping[str, str] | None = None) -> str | None:
    """GOOGLE_CLOUD_PROJECT (and its older names), else the metadata server on Cloud Run."""
    return project_id(environ) or _metadata_project.get(environ)


def error_report(
    service: str | None,
    version: str | None,
    location: tuple[str, int, str],
    method: str | None = None,
    status: int | None = None,
) -> dict[str, Any]:
    """The fields that make Error Reporting take a log line without a stack trace."""
    context: dict[str, Any] = {
        "reportLocation": {"filePath": location[0], "lineNumber": location[1], "functionName": location[2]}
    }
    http = {k: v for k, v in (("method", method), ("responseStatusCode", status)) if v is not None}
    if http:
        context["httpRequest"] = http
    service_context = {"service": service or "formcall-webhook"}
    if version:
        service_context["version"] = version
    return {"@type": REPORTED_ERROR_EVENT, "serviceContext": service_context, "context": context}


def _relative(path: str) -> str:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    absolute = os.path.abspath(path)
    return os.path.relpath(absolute, root) if absolute.startswith(root + os.sep) else os.path.basename(path)


def _caller(depth: int) -> tuple[str, int, str]:
    frame = sys._getframe(depth + 1)
    return _relative(frame.f_code.co_filename), frame.f_lineno, frame.f_code.co_name


class RequestLogger:
    """Writes the request line; the caller passes only fields that are safe to log.

    With project None, the project is resolved on the first line that carries a trace header (the
    metadata server is asked then, never at import or start-up).
    """

    def __init__(
        self,
        level: int,
        project: str | None,
        stream: TextIO | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.level = level
        self.project = project
        self.stream = stream
        self.environ = os.environ if environ is None else environ

    def _project(self, headers: Mapping[str, str]) -> str | None:
        if self.project is None and (headers.get("traceparent") or headers.get("x-cloud-trace-context")):
            self.project = resolve_project(self.environ)
        return self.project

    def write(self, severity: str, message: str, fields: Mapping[str, Any], headers: Mapping[str, str]) -> None:
        if _LEVELS.get(severity, 20) < self.level:
            return
        entry: dict[str, Any] = {"severity": severity, "message": message}
        trace = trace_field(headers, self._project(headers))
        if trace:
            entry["logging.googleapis.com/trace"] = trace
        entry.update((k, v) for k, v in fields.items() if v is not None)
        if _LEVELS.get(severity, 20) >= _LEVELS["ERROR"]:
            status = fields.get("status")
            entry.update(
                error_report(
                    self.environ.get("K_SERVICE"),
                    self.environ.get("K_REVISION"),
                    _caller(1),
                    method=fields.get("method"),
                    status=status if isinstance(status, int) else None,
                )
            )
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
        entry: dict[str, Any] = {"severity": severity, "message": record.getMessage(), "logger": record.name}
        if record.levelno >= logging.ERROR:
            # Internal errors reach Error Reporting too; located by the logging call, never by a
            # traceback (an exception's text may quote a value that must not be logged).
            location = (_relative(record.pathname), record.lineno, record.funcName)
            entry.update(error_report(os.environ.get("K_SERVICE"), os.environ.get("K_REVISION"), location))
        with _lock:
            sys.stdout.write(json.dumps(entry, default=str) + "\n")
            sys.stdout.flush()


def setup_library_logging(level: int) -> None:
    logger = logging.getLogger("formcall_webhook")
    if not any(isinstance(h, JsonLogHandler) for h in logger.handlers):
        logger.addHandler(JsonLogHandler())
    logger.setLevel(level)
    logger.propagate = False
