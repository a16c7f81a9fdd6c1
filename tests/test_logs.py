"""formcall_webhook.logs: severities, trace correlation, the metadata server and Error Reporting fields."""

from __future__ import annotations

import io
import json
import logging
import re
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from formcall_webhook import errors, logs
from formcall_webhook.simulator import Simulator
from tests.harness import FunctionProcess

ROOT = Path(__file__).resolve().parent.parent
POPUP = "e5c98214-d0f6-11e1-8c30-001d09ef4a24"
TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
TRACEPARENT = f"00-{TRACE_ID}-b7ad6b7169203331-01"


# --- a metadata server on loopback ---------------------------------------------------------------


class MetadataServer:
    """Answers /computeMetadata/v1/project/project-id like GCE's, and counts who asked."""

    def __init__(self, project: str = "meta-project-7", delay: float = 0.0, flavor: str = "Google") -> None:
        self.project = project
        self.delay = delay
        self.flavor = flavor
        self.requests: list[tuple[str, str | None]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.requests.append((self.path, self.headers.get("Metadata-Flavor")))
                time.sleep(outer.delay)
                if self.headers.get("Metadata-Flavor") != "Google":
                    self.send_response(403)
                    self.end_headers()
                    return
                body = outer.project.encode()
                self.send_response(200)
                self.send_header("Metadata-Flavor", outer.flavor)
                self.send_header("Content-Type", "application/text")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> MetadataServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def metadata() -> Iterator[MetadataServer]:
    with MetadataServer() as server:
        yield server


# --- severity ------------------------------------------------------------------------------------


def test_log_outcomes_cover_every_error_word_the_code_answers_with() -> None:
    """Every `error` word an exception can carry is a known outcome, so dashboards and alerts see it."""
    words = {
        cls.error
        for cls in vars(errors).values()
        if isinstance(cls, type) and issubclass(cls, Exception) and isinstance(getattr(cls, "error", None), str)
    }
    assert words, "no error words found in formcall_webhook.errors"
    assert words <= logs.OUTCOMES, sorted(words - logs.OUTCOMES)


@pytest.mark.parametrize("outcome", sorted(logs.ERROR_OUTCOMES))
def test_failures_that_need_someone_are_errors_even_when_answered_with_a_redirect(outcome: str) -> None:
    assert logs.severity_for(outcome, 303) == "ERROR"
    assert logs.severity_for(outcome, 200) == "ERROR"


@pytest.mark.parametrize("outcome", sorted(logs.WARNING_OUTCOMES))
def test_other_refusals_and_scheduled_leads_are_warnings(outcome: str) -> None:
    assert logs.severity_for(outcome, 303) == "WARNING"
    assert logs.severity_for(outcome, 503) == "ERROR", "any 5xx is an ERROR"


@pytest.mark.parametrize(
    "outcome", ["placed", "pending", "duplicate", "honeypot", "dry_run", "preflight", "sweep", "call_outcome"]
)
def test_successes_are_info(outcome: str) -> None:
    assert logs.severity_for(outcome, 200) == "INFO"


def test_the_words_are_partitioned_as_the_contract_says() -> None:
    assert {
        "lead_failed",
        "misconfigured",
        "formcall_misconfigured",
        "store_unavailable",
        "formcall_unavailable",
        "origination_failed",
        "outcome_failed",
        "conversion_failed",
    } == logs.ERROR_OUTCOMES
    assert "scheduled" in logs.WARNING_OUTCOMES
    assert not logs.ERROR_OUTCOMES & logs.WARNING_OUTCOMES
    assert logs.ERROR_OUTCOMES | logs.WARNING_OUTCOMES <= logs.OUTCOMES
    assert {"due", "placed", "pending", "scheduled", "failed", "formcall_ms", "wait_seconds"} <= logs.LOG_FIELDS


def test_a_word_the_table_does_not_know_follows_the_status() -> None:
    assert logs.severity_for("something_new", 502) == "ERROR"
    assert logs.severity_for("something_new", 422) == "WARNING"
    assert logs.severity_for("something_new", 200) == "INFO"
    assert logs.severity_for("something_new", 404) == "WARNING"


# --- trace ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"traceparent": TRACEPARENT}, f"projects/acme-prod/traces/{TRACE_ID}"),
        ({"x-cloud-trace-context": f"{TRACE_ID.upper()}/123;o=1"}, f"projects/acme-prod/traces/{TRACE_ID}"),
        ({"traceparent": "00-" + "0" * 32 + "-b7ad6b7169203331-01"}, None),
        ({"traceparent": "garbage"}, None),
        ({}, None),
    ],
    ids=["traceparent", "cloud-trace-context", "all-zero", "garbage", "none"],
)
def test_trace_field(headers: dict[str, str], expected: str | None) -> None:
    assert logs.trace_field(headers, "acme-prod") == expected


def test_no_project_means_no_trace_field_never_a_bare_id() -> None:
    assert logs.trace_field({"traceparent": TRACEPARENT}, None) is None
    stream = io.StringIO()
    logs.RequestLogger(20, None, stream, environ={}).write("INFO", "m", {}, {"traceparent": TRACEPARENT})
    entry = json.loads(stream.getvalue())
    assert "logging.googleapis.com/trace" not in entry
    assert TRACE_ID not in stream.getvalue()


# --- the metadata server -------------------------------------------------------------------------


def test_metadata_project_is_asked_once_with_the_flavor_header(metadata: MetadataServer) -> None:
    source = logs.MetadataProject()
    env = {"K_SERVICE": "formcall-webhook", "GCE_METADATA_HOST": metadata.host}
    with ThreadPoolExecutor(8) as pool:
        found = list(pool.map(lambda _: source.get(env), range(16)))
    assert found == ["meta-project-7"] * 16
    assert metadata.requests == [("/computeMetadata/v1/project/project-id", "Google")]


def test_metadata_is_not_asked_off_cloud_run(metadata: MetadataServer) -> None:
    assert logs.MetadataProject().get({"GCE_METADATA_HOST": metadata.host}) is None
    assert metadata.requests == []


def test_the_environment_wins_over_the_metadata_server(metadata: MetadataServer) -> None:
    env = {"K_SERVICE": "x", "GCE_METADATA_HOST": metadata.host, "GOOGLE_CLOUD_PROJECT": "env-project"}
    assert logs.project_id(env) == "env-project"
    assert logs.resolve_project(env) == "env-project"
    assert metadata.requests == []


def test_a_slow_metadata_server_costs_one_short_timeout_and_is_not_asked_again() -> None:
    with MetadataServer(delay=3.0) as slow:
        source = logs.MetadataProject(timeout=0.3)
        env = {"K_SERVICE": "x", "GCE_METADATA_HOST": slow.host}
        started = time.monotonic()
        assert source.get(env) is None
        assert source.get(env) is None
        assert time.monotonic() - started < 1.5
        assert len(slow.requests) == 1


def test_an_answer_without_the_metadata_flavor_is_not_trusted() -> None:
    with MetadataServer(flavor="") as impostor:
        assert logs.MetadataProject().get({"K_SERVICE": "x", "GCE_METADATA_HOST": impostor.host}) is None


def test_an_unreachable_metadata_server_gives_no_project() -> None:
    # Port 9 (discard) on loopback: nothing listens there, the connection is refused at once.
    assert logs.MetadataProject(timeout=0.3).get({"K_SERVICE": "x", "GCE_METADATA_HOST": "127.0.0.1:9"}) is None


def test_the_request_logger_asks_only_when_a_line_has_a_trace(metadata: MetadataServer) -> None:
    stream = io.StringIO()
    env = {"K_SERVICE": "formcall-webhook", "GCE_METADATA_HOST": metadata.host}
    logger = logs.RequestLogger(20, None, stream, environ=env)
    logger.write("INFO", "no trace", {}, {})
    assert metadata.requests == []
    # The module-level lookup is once per process: give this logger a fresh one.
    source = logs.MetadataProject()
    logger.project = source.get(env)
    logger.write("INFO", "traced", {}, {"traceparent": TRACEPARENT})
    entry = json.loads(stream.getvalue().splitlines()[-1])
    assert entry["logging.googleapis.com/trace"] == f"projects/meta-project-7/traces/{TRACE_ID}"


# --- Error Reporting -----------------------------------------------------------------------------


def test_error_lines_carry_what_error_reporting_needs() -> None:
    stream = io.StringIO()
    env = {"K_SERVICE": "formcall-webhook", "K_REVISION": "formcall-webhook-00007-abc"}
    logger = logs.RequestLogger(20, "acme-prod", stream, environ=env)
    fields = {"route": "default", "outcome": "formcall_unavailable", "status": 503, "method": "POST"}
    logger.write("ERROR", "default: formcall_unavailable (503)", fields, {})
    entry = json.loads(stream.getvalue())
    assert entry["@type"] == logs.REPORTED_ERROR_EVENT
    assert entry["message"] == "default: formcall_unavailable (503)"
    assert entry["serviceContext"] == {"service": "formcall-webhook", "version": "formcall-webhook-00007-abc"}
    location = entry["context"]["reportLocation"]
    assert location["filePath"] == "tests/test_logs.py"
    assert location["functionName"] == "test_error_lines_carry_what_error_reporting_needs"
    assert isinstance(location["lineNumber"], int)
    assert entry["context"]["httpRequest"] == {"method": "POST", "responseStatusCode": 503}


def test_info_and_warning_lines_are_not_error_reports() -> None:
    stream = io.StringIO()
    logger = logs.RequestLogger(20, "acme-prod", stream, environ={})
    logger.write("WARNING", "w", {"outcome": "scheduled"}, {})
    logger.write("INFO", "i", {"outcome": "placed"}, {})
    for line in stream.getvalue().splitlines():
        entry = json.loads(line)
        assert "@type" not in entry
        assert "context" not in entry


def test_library_errors_are_error_reports_without_a_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    handler = logs.JsonLogHandler()
    try:
        raise ValueError("token=hunter2")
    except ValueError:
        info = sys.exc_info()
        record = logging.LogRecord("formcall_webhook.x", logging.ERROR, __file__, 42, "store down", None, info)
        handler.emit(record)
    entry = json.loads(capsys.readouterr().out)
    assert entry["@type"] == logs.REPORTED_ERROR_EVENT
    assert entry["context"]["reportLocation"]["lineNumber"] == 42
    assert entry["serviceContext"]["service"]
    assert "hunter2" not in json.dumps(entry)


# --- through the real function -------------------------------------------------------------------


def test_the_deployed_function_finds_its_project_on_the_metadata_server_once_and_lazily(
    simulator: Simulator, metadata: MetadataServer, tmp_path: Path
) -> None:
    env = {
        "FORMCALL_API_URL": simulator.api_url,
        "FORMCALL_SECURITY_TOKEN": "dev-token",
        "FORMCALL_POPUP_UUID": POPUP,
        "FORMCALL_STORE_URL": "memory://",
        "K_SERVICE": "formcall-webhook",
        "K_REVISION": "formcall-webhook-00001-xyz",
        "GCE_METADATA_HOST": metadata.host,
    }
    with FunctionProcess(env, tmp_path / "fn.log") as fn:
        time.sleep(0.3)
        assert metadata.requests == [], "asked at import or start-up"
        numbers = ["9 6123 4567", "9 6123 4568", "9 6123 4569"]
        for number in numbers[:2]:
            answer = fn.post(json={"telefono": number}, headers={"traceparent": TRACEPARENT})
            assert answer.status_code == 200, answer.text
        simulator.inject({"kind": "error", "code": 4})
        answer = fn.post(json={"telefono": numbers[2]}, headers={"X-Cloud-Trace-Context": f"{TRACE_ID}/1;o=1"})
        assert answer.status_code == 502, answer.text
        time.sleep(0.2)
        entries = [e for e in fn.log_entries() if "outcome" in e]
    assert len(metadata.requests) == 1
    assert [e["outcome"] for e in entries] == ["placed", "placed", "formcall_misconfigured"]
    for entry in entries:
        assert entry["logging.googleapis.com/trace"] == f"projects/meta-project-7/traces/{TRACE_ID}"
    placed, failed = entries[0], entries[2]
    assert placed["severity"] == "INFO"
    assert "@type" not in placed
    assert failed["severity"] == "ERROR"
    assert failed["@type"] == logs.REPORTED_ERROR_EVENT
    assert failed["serviceContext"] == {"service": "formcall-webhook", "version": "formcall-webhook-00001-xyz"}
    assert re.fullmatch(r"formcall_webhook/[a-z_]+\.py", failed["context"]["reportLocation"]["filePath"])
    assert failed["context"]["httpRequest"]["responseStatusCode"] == 502
