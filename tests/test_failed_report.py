"""Spec 9's `lead.failed`: a lead given up is reported to the outcome webhook, signed like call.outcome."""

from __future__ import annotations

import base64
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from formcall_webhook.app import App, Request, read_stream
from formcall_webhook.runtime import Runtime
from formcall_webhook.simulator import Simulator
from formcall_webhook.sweep import Sweeper
from tests.clock import TestClock, clock_of
from tests.fakes.receiver import FakeReceiver
from tests.harness import ROOT, coverage_env

POPUP = "e5c98214-d0f6-11e1-8c30-001d09ef4a24"
TOKEN = "failed-report-token-1"
SIMULATOR_TOKENS = (TOKEN,)
SECRET = "whsec_" + base64.b64encode(b"failed-report-secret-00000001").decode()


def make_app(
    tmp_path: Path,
    simulator: Simulator,
    outcome: str | None,
    environ: dict[str, str] | None = None,
    store_url: str = "memory://",
) -> App:
    path = tmp_path / "f.toml"
    path.write_text(
        "[formcall]\ntimeout_seconds = 2\n"
        '[defaults.retry]\nschedule = ["1s"]\nmax_age = "3s"\n'
        f"[routes.default]\npopup_uuid = '{POPUP}'\nrate_limit = false\n"
        + (f"outcome = {outcome}\n" if outcome else "")
    )
    env = {
        "FORMCALL_CONFIG": str(path),
        "FORMCALL_API_URL": simulator.api_url,
        "FORMCALL_SECURITY_TOKEN": TOKEN,
        "OUTCOME_SECRET": SECRET,
        "FORMCALL_STORE_URL": store_url,
        **(environ or {}),
    }
    return App(runtime=Runtime(env, clock=TestClock(simulator).now))


def webhook(url: str) -> str:
    return f'{{ after = "0s", give_up = "1h", url = "{url}", secret = "env:OUTCOME_SECRET" }}'


def post(app: App, phone: str) -> dict[str, Any]:
    raw = json.dumps({"phone": phone, "nombre": "Ana Pérez"}).encode()
    stream = io.BytesIO(raw)
    req = Request(
        "POST", "/", {"content-type": "application/json"}, b"", lambda n, *_: read_stream(stream, n), len(raw)
    )
    response = app.handle(req)
    assert response.status == 200, response.body
    answer: dict[str, Any] = json.loads(response.body)
    assert answer.get("scheduled") is True, answer
    return answer


def sweep_until_done(app: App, lead_id: str, passes: int = 20) -> dict[str, Any]:
    """Sweep, the test's clock moved to each due time, until the lead is failed and nothing is due."""
    sweeper = Sweeper(app.runtime)
    for _ in range(passes):
        record = app.store.get_lead(lead_id)
        assert record is not None
        if record["state"] == "failed" and record.get("due_at") is None:
            return record
        clock_of(app).advance_to(record["due_at"] + 0.05)
        sweeper.run()
    raise AssertionError(f"still due after {passes} passes: {app.store.get_lead(lead_id)}")


def test_a_lead_failed_past_max_age_is_reported_once(tmp_path: Path, simulator: Simulator) -> None:
    receiver = FakeReceiver(SECRET).start()
    try:
        app = make_app(tmp_path, simulator, webhook(receiver.url))
        simulator.set_fault_rate(1.0, [{"kind": "error", "code": 3}], seed=1)
        answer = post(app, "+56 9 6200 0201")
        record = sweep_until_done(app, answer["lead_id"])
        assert (record["state"], record["last_error"]) == ("failed", "origination_failed")
        assert len(receiver.attempts) == 1
        attempt = receiver.attempts[0]
        assert attempt.verified and attempt.status == 200  # the Standard Webhooks library verified it
        assert attempt.headers["webhook-id"] == "failed_" + answer["lead_id"]
        body = attempt.payload
        assert body["type"] == "lead.failed"
        assert set(body) == {"type", "timestamp", "lead_id", "route", "last_error", "attempts", "received_at"}
        assert (body["lead_id"], body["route"], body["last_error"]) == (
            answer["lead_id"], "default", "origination_failed"
        )  # fmt: skip
        assert body["attempts"] == record["attempts"] and body["attempts"] >= 2
        assert body["received_at"] == record["received_at"]
        assert "Ana" not in attempt.body.decode() and "62000201" not in attempt.body.decode()
        assert record["outcome"]["webhook"] == "delivered"
        # Minimized as any failed lead (keep_fields = until_done): no adicional, the number kept for retry.
        assert record["payload"] is not None and "adicional" not in record["payload"]
        assert simulator.placed() == []
    finally:
        receiver.stop()


def test_a_receiver_500_then_200_is_retried_with_the_backoff(
    tmp_path: Path, simulator: Simulator, store_url: str
) -> None:
    """On every store: the failed lead stays due for its report (each store's due index takes it)."""
    receiver = FakeReceiver(SECRET, [500]).start()
    try:
        app = make_app(tmp_path, simulator, webhook(receiver.url), store_url=store_url)
        simulator.set_fault_rate(1.0, [{"kind": "error", "code": 3}], seed=1)
        answer = post(app, "+56 9 6200 0202")
        sweeper = Sweeper(app.runtime)
        for _ in range(10):
            record = app.store.get_lead(answer["lead_id"])
            assert record is not None
            if record["state"] == "failed":
                break
            clock_of(app).advance_to(record["due_at"] + 0.05)
            sweeper.run()
        assert record["state"] == "failed"
        assert [a.status for a in receiver.attempts] == [500]
        # Still failed, and due again after the route's backoff (schedule = ["1s"]), not at once.
        assert record["due_at"] is not None and record["due_at"] > clock_of(app).now()
        sweeper.run()
        assert len(receiver.attempts) == 1
        record = sweep_until_done(app, answer["lead_id"])
        assert [a.status for a in receiver.attempts] == [500, 200]
        assert len({a.headers["webhook-id"] for a in receiver.attempts}) == 1
        assert len({json.loads(a.body)["timestamp"] for a in receiver.attempts}) == 1
        assert len(receiver.accepted()) == 1
        assert (record["state"], record["outcome"]["webhook"]) == ("failed", "delivered")
    finally:
        receiver.stop()


def test_given_up_at_outcome_give_up(tmp_path: Path, simulator: Simulator) -> None:
    receiver = FakeReceiver(SECRET, [503] * 50).start()
    try:
        outcome = f'{{ after = "0s", give_up = "5s", url = "{receiver.url}", secret = "env:OUTCOME_SECRET" }}'
        app = make_app(tmp_path, simulator, outcome)
        simulator.set_fault_rate(1.0, [{"kind": "error", "code": 3}], seed=1)
        answer = post(app, "+56 9 6200 0203")
        record = sweep_until_done(app, answer["lead_id"], passes=30)
        assert record["outcome"]["webhook"] == "gave_up"
        assert 2 <= len(receiver.attempts) <= 8
        assert receiver.accepted() == []
    finally:
        receiver.stop()


def test_no_outcome_url_sends_nothing(tmp_path: Path, simulator: Simulator) -> None:
    receiver = FakeReceiver(SECRET).start()
    try:
        app = make_app(tmp_path, simulator, None)
        simulator.set_fault_rate(1.0, [{"kind": "error", "code": 3}], seed=1)
        answer = post(app, "+56 9 6200 0204")
        record = sweep_until_done(app, answer["lead_id"])
        assert record["state"] == "failed" and record.get("outcome") is None
        assert receiver.attempts == []
    finally:
        receiver.stop()


def test_an_outcome_url_held_as_a_secret_is_resolved_at_send_time(tmp_path: Path, simulator: Simulator) -> None:
    receiver = FakeReceiver(SECRET).start()
    try:
        outcome = '{ after = "0s", give_up = "1h", url = "env:ZAPIER_HOOK", secret = "env:OUTCOME_SECRET" }'
        app = make_app(tmp_path, simulator, outcome, {"ZAPIER_HOOK": receiver.url})
        assert app.runtime.config().routes["default"].outcome_reporting.url == "env:ZAPIER_HOOK"  # type: ignore[union-attr]
        simulator.set_fault_rate(1.0, [{"kind": "error", "code": 3}], seed=1)
        answer = post(app, "+56 9 6200 0205")
        record = sweep_until_done(app, answer["lead_id"])
        assert [a.payload["type"] for a in receiver.accepted()] == ["lead.failed"]
        assert record["outcome"]["webhook"] == "delivered"
        assert receiver.url not in json.dumps(record)
    finally:
        receiver.stop()


def test_check_accepts_an_outcome_url_reference_and_warns_when_unset(tmp_path: Path) -> None:
    path = tmp_path / "formcall.toml"
    path.write_text(
        f"[routes.default]\npopup_uuid = '{POPUP}'\n"
        'outcome = { url = "env:ZAPIER_HOOK", secret = "env:OUTCOME_SECRET" }\n'
        '[routes.crm]\npopup_uuid = "' + POPUP + '"\n'
        'outcome = { url = "secret:projects/p/secrets/crm-hook/versions/latest", secret = "env:OUTCOME_SECRET" }\n',
        encoding="utf-8",
    )
    env = {**coverage_env(), "FORMCALL_SECURITY_TOKEN": "t", "OUTCOME_SECRET": SECRET}
    env.pop("ZAPIER_HOOK", None)
    done = subprocess.run(
        [sys.executable, "-m", "formcall_webhook", "check", str(path)],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    warned = [line for line in done.stderr.splitlines() if "ZAPIER_HOOK" in line]
    assert len(warned) == 1 and warned[0].startswith("warning: routes.default.outcome.url: ZAPIER_HOOK is not set")
    quiet = subprocess.run(
        [sys.executable, "-m", "formcall_webhook", "check", str(path)],
        capture_output=True, text=True, cwd=ROOT, env={**env, "ZAPIER_HOOK": "https://hooks.example/c/1"}, timeout=60,
    )  # fmt: skip
    assert quiet.returncode == 0 and "ZAPIER_HOOK" not in quiet.stderr, quiet.stderr
    # Neither a word nor a plain string is taken as the URL.
    path.write_text(
        f"[routes.default]\npopup_uuid = '{POPUP}'\n"
        'outcome = { url = "ZAPIER_HOOK", secret = "env:OUTCOME_SECRET" }\n',
        encoding="utf-8",
    )
    refused = subprocess.run(
        [sys.executable, "-m", "formcall_webhook", "check", str(path)],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=60,
    )  # fmt: skip
    assert refused.returncode != 0 and "routes.default.outcome.url" in refused.stderr


def test_leads_retry_of_a_lead_whose_report_is_pending_stops_the_report(tmp_path: Path, simulator: Simulator) -> None:
    receiver = FakeReceiver(SECRET, [500] * 10).start()
    try:
        app = make_app(tmp_path, simulator, webhook(receiver.url))
        simulator.set_fault_rate(1.0, [{"kind": "error", "code": 3}], seed=1)
        answer = post(app, "+56 9 6200 0206")
        sweeper = Sweeper(app.runtime)
        for _ in range(10):
            record = app.store.get_lead(answer["lead_id"])
            assert record is not None
            if record["state"] == "failed":
                break
            clock_of(app).advance_to(record["due_at"] + 0.05)
            sweeper.run()
        assert record["state"] == "failed" and record["outcome"]["report"] == "lead.failed"
        simulator.set_fault_rate(0.0, [])
        attempted = sweeper.retry_now(answer["lead_id"])
        assert attempted is not None and attempted.outcome == "placed", attempted
        record = app.store.get_lead(answer["lead_id"])
        assert record is not None and record["state"] == "placed"
        assert "report" not in (record.get("outcome") or {})
        assert [a.status for a in receiver.attempts] == [500]
    finally:
        receiver.stop()


def test_an_unset_url_secret_keeps_the_lead_failed_line_and_the_report_due(
    tmp_path: Path, simulator: Simulator, capsys: pytest.CaptureFixture[str]
) -> None:
    receiver = FakeReceiver(SECRET).start()
    try:
        outcome = '{ after = "0s", give_up = "1h", url = "env:ZAPIER_HOOK", secret = "env:OUTCOME_SECRET" }'
        app = make_app(tmp_path, simulator, outcome)
        simulator.set_fault_rate(1.0, [{"kind": "error", "code": 3}], seed=1)
        answer = post(app, "+56 9 6200 0207")
        sweeper = Sweeper(app.runtime)
        for _ in range(10):
            record = app.store.get_lead(answer["lead_id"])
            assert record is not None
            if record["state"] == "failed":
                break
            clock_of(app).advance_to(record["due_at"] + 0.05)
            sweeper.run()
        assert record["state"] == "failed" and record["due_at"] is not None
        lines = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith("{")]
        failed = [e for e in lines if e.get("outcome") == "lead_failed"]
        assert len(failed) == 1 and failed[0]["severity"] == "ERROR"
        assert (failed[0]["report"], failed[0]["webhook"]) == ("lead.failed", "misconfigured")
        assert receiver.attempts == []
        # Set (a deploy with --secret ZAPIER_HOOK=...): the next pass delivers it.
        app.runtime.environ["ZAPIER_HOOK"] = receiver.url  # type: ignore[index]
        record = sweep_until_done(app, answer["lead_id"])
        assert [a.payload["type"] for a in receiver.accepted()] == ["lead.failed"]
        assert record["outcome"]["webhook"] == "delivered"
    finally:
        receiver.stop()
