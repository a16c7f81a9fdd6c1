"""Every lead kept (spec 8), with each store: memory, a real Redis, and Google's Firestore emulator.

The pipeline runs in-process here (App.handle) so that memory:// can be shared with the sweeper; the
same paths through a real functions-framework process are in tests/test_sweep_function.py.
"""

from __future__ import annotations

import io
import json
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from formcall_webhook import keys, records
from formcall_webhook.app import App, Request, read_stream
from formcall_webhook.runtime import Runtime
from formcall_webhook.simulator import Simulator
from formcall_webhook.stores import Backend, StoreUnavailable
from formcall_webhook.sweep import Sweeper
from tests.clock import TestClock, clock_of

POPUP = "e5c98214-d0f6-11e1-8c30-001d09ef4a24"
TOKEN = "kept-token-5e1"
SIMULATOR_TOKENS = (TOKEN,)
TIMEOUT = 0.5
SETTLE = 2 * TIMEOUT


def make_app(
    tmp_path: Path,
    simulator: Simulator,
    store_url: str,
    route_extra: str = "",
    retry: str = "",
    at: float | None = None,
) -> App:
    path = tmp_path / "f.toml"
    if "max_age" not in retry:
        retry += '\nmax_age = "1h"'
    path.write_text(
        f"[formcall]\ntimeout_seconds = {TIMEOUT}\n"
        f'[defaults.retry]\nschedule = ["1s"]\n{retry}\n'
        f"[routes.default]\npopup_uuid = '{POPUP}'\nrate_limit = false\n{route_extra}\n"
        f"[routes.other]\npopup_uuid = '{POPUP}'\nrate_limit = false\n"
    )
    environ = {
        "FORMCALL_CONFIG": str(path),
        "FORMCALL_API_URL": simulator.api_url,
        "FORMCALL_SECURITY_TOKEN": TOKEN,
        "FORMCALL_STORE_URL": store_url,
    }
    return App(runtime=Runtime(environ, clock=TestClock(simulator, at).now))


def post(app: App, phone: str, route: str = "") -> tuple[int, dict[str, Any]]:
    raw = json.dumps({"phone": phone, "nombre": "Ana"}).encode()
    stream = io.BytesIO(raw)
    req = Request(
        "POST", f"/{route}", {"content-type": "application/json"}, b"", lambda n, *_: read_stream(stream, n), len(raw)
    )
    response = app.handle(req)
    return response.status, json.loads(response.body)


def sweep(app: App) -> dict[str, int]:
    """One pass, then the Convoy #1667 check: nothing due at the pass's start is left due and untouched."""
    started = app.runtime.clock()
    counts = Sweeper(app.runtime).run()
    for record in app.store.scan_leads():
        due = record.get("due_at")
        assert due is None or due > started, f"lead {record['lead_id']} left due after a sweep"
    return counts


def lead(store: Backend, lead_id: str) -> dict[str, Any]:
    record = store.get_lead(lead_id)
    assert record is not None
    return record


def advance_to_due(app: App, lead_id: str) -> None:
    """The test's clock moved on to the lead's due time (no sleeping)."""
    due = lead(app.store, lead_id).get("due_at")
    assert due is not None, "the lead is not due at any time"
    clock_of(app).advance_to(due + 0.01)


def test_formcall_down_then_back_one_call(tmp_path: Path, simulator: Simulator, store_url: str) -> None:
    app = make_app(tmp_path, simulator, store_url)
    simulator.inject({"kind": "http500_html"})
    status, body = post(app, "+56 9 6200 0001")
    assert (status, body["success"], body["scheduled"]) == (200, True, True), body
    record = lead(app.store, body["lead_id"])
    assert (record["state"], record["last_error"], record["attempts"]) == ("scheduled", "formcall_unavailable", 1)
    assert record["next_attempt_at"] is not None
    assert simulator.placed() == []
    assert sweep(app)["due"] == 0  # not due yet
    advance_to_due(app, body["lead_id"])
    counts = sweep(app)
    assert counts == {"due": 1, "placed": 1, "pending": 0, "scheduled": 0, "failed": 0}
    placed = simulator.placed()
    assert len(placed) == 1
    record = lead(app.store, body["lead_id"])
    assert (record["state"], record["uuid"], record["attempts"]) == ("placed", placed[0]["uuid"], 2)
    assert sweep(app)["due"] == 0
    assert len(simulator.calls()) == 2  # the failed attempt and the placed one; nothing more


def test_out_of_service_hours_waits_for_the_next_opening(tmp_path: Path, simulator: Simulator, store_url: str) -> None:
    zone = ZoneInfo("America/Santiago")
    now = datetime(2026, 12, 10, 3, 30, tzinfo=zone)  # the test's clock: a Thursday at 03:30
    start = 5
    hours = f"mon-sun {start:02d}:00-{start + 1:02d}:00"
    retry = f'service_hours = "{hours}"\ntimezone = "America/Santiago"'
    app = make_app(tmp_path, simulator, store_url, retry=retry, at=now.timestamp())
    simulator.set_popup(POPUP, in_service_hours=False)
    status, body = post(app, "+56 9 6200 0002")
    assert (status, body.get("scheduled")) == (200, True), body
    record = lead(app.store, body["lead_id"])
    opening = now.replace(hour=start, minute=0, second=0, microsecond=0)
    if opening <= now:
        opening += timedelta(days=1)
    assert record["last_error"] == "out_of_service_hours"
    assert abs(record["due_at"] - opening.timestamp()) < 1
    assert record["next_attempt_at"] == records.iso(record["due_at"])
    # Outside service hours no attempt is made, the first one included (spec 8), whatever the sweeper is asked.
    assert sweep(app)["due"] == 0
    assert simulator.calls() == []
    clock_of(app).advance_to(opening.timestamp())
    simulator.set_popup(POPUP, in_service_hours=True)
    assert sweep(app)["placed"] == 1
    assert len(simulator.calls()) == 1


def test_a_lost_answer_is_settled_not_rung_twice(tmp_path: Path, simulator: Simulator, store_url: str) -> None:
    app = make_app(tmp_path, simulator, store_url)
    simulator.inject({"kind": "placed_then_reset"})
    status, body = post(app, "+56 9 6200 0003")
    assert (status, body.get("scheduled")) == (200, True), body
    assert len(simulator.placed()) == 1
    # A resend meanwhile is the same lead.
    status, again = post(app, "+56 9 6200 0003")
    assert (status, again.get("duplicate"), again["lead_id"]) == (200, True, body["lead_id"])
    clock_of(app).advance(SETTLE + 0.1)
    advance_to_due(app, body["lead_id"])
    counts = sweep(app)
    assert counts["placed"] == 1
    placed = simulator.placed()
    assert len(placed) == 1
    assert lead(app.store, body["lead_id"])["uuid"] == placed[0]["uuid"]
    status, later = post(app, "+56 9 6200 0003")
    assert (later.get("duplicate"), later.get("uuid")) == (True, placed[0]["uuid"])
    assert len(simulator.calls()) == 1


def test_max_age_passed_fails_the_lead_and_logs_it(
    tmp_path: Path, simulator: Simulator, store_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    app = make_app(tmp_path, simulator, store_url, retry='max_age = "2s"')
    simulator.set_fault_rate(1.0, [{"kind": "error", "code": 3}], seed=1)
    _status, body = post(app, "+56 9 6200 0004")
    assert body.get("scheduled") is True, body
    for _ in range(10):
        if lead(app.store, body["lead_id"])["state"] != "scheduled":
            break
        clock_of(app).advance(1.1)
        sweep(app)
    record = lead(app.store, body["lead_id"])
    assert (record["state"], record["last_error"]) == ("failed", "origination_failed")
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    failed = [e for e in lines if e.get("outcome") == "lead_failed"]
    assert len(failed) == 1
    assert failed[0]["severity"] == "ERROR"
    assert failed[0]["lead_id"] == body["lead_id"]
    assert simulator.placed() == []


def test_a_duplicate_of_a_scheduled_lead_is_the_same_lead(tmp_path: Path, simulator: Simulator, store_url: str) -> None:
    app = make_app(tmp_path, simulator, store_url)
    simulator.inject({"kind": "error", "code": 3})
    _, first = post(app, "+56 9 6200 0005")
    assert first.get("scheduled") is True
    # Through another route too: dedupe is per number across routes.
    for route in ("", "other"):
        status, dup = post(app, "+56 (9) 6200-0005", route)
        assert (status, dup.get("duplicate"), dup["lead_id"]) == (200, True, first["lead_id"])
    advance_to_due(app, first["lead_id"])
    sweep(app)
    sweep(app)
    assert len(simulator.placed()) == 1
    assert len(list(app.store.scan_leads())) == 1


def test_two_sweepers_racing_over_200_due_leads(tmp_path: Path, simulator: Simulator, store_url: str) -> None:
    app = make_app(tmp_path, simulator, store_url)
    simulator.set_fault_rate(1.0, [{"kind": "error", "code": 3}], seed=2)
    ids = []
    for n in range(200):
        _status, body = post(app, f"+56 9 63{n:06d}")
        assert body.get("scheduled") is True, body
        ids.append(body["lead_id"])
    simulator.set_fault_rate(0.0, [])
    clock_of(app).advance(1.1)
    # A second process's sweeper has its own runtime; with memory:// only one process can see the leads.
    other = app.runtime if store_url == "memory://" else Runtime(app.environ, clock=app.runtime.clock)
    results: list[dict[str, int]] = []
    failed: list[StoreUnavailable] = []

    def sweep_once(runtime: Runtime) -> dict[str, int]:
        # A loaded machine may make the emulator miss a query's deadline twice: that pass answers 503
        # (its counts unknown), and a later one takes its leads.
        try:
            return Sweeper(runtime).run()
        except StoreUnavailable as err:
            failed.append(err)
            return {"placed": 0}

    threads = [
        threading.Thread(target=lambda r=runtime: results.append(sweep_once(r))) for runtime in (app.runtime, other)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # On a loaded machine a connection to FormCall may time out before it is made (nothing sent): that lead
    # is scheduled again, and later passes place it. Whatever the machine's speed, none is rung twice.
    later = 0
    for _ in range(20):
        if all(lead(app.store, i)["state"] == "placed" for i in ids):
            break
        clock_of(app).advance(60)
        later += sweep_once(app.runtime)["placed"]
    placed = simulator.placed()
    numbers = [c["payload"]["phonenumber"] for c in placed]
    assert len(numbers) == 200
    assert len(set(numbers)) == 200
    if not failed:
        assert sum(r["placed"] for r in results) + later == 200
    assert all(lead(app.store, i)["state"] == "placed" for i in ids)


def test_leads_retry_on_a_failed_lead_is_one_call(tmp_path: Path, simulator: Simulator, store_url: str) -> None:
    app = make_app(tmp_path, simulator, store_url)
    simulator.inject({"kind": "error", "code": 1})  # FormCall refuses the number: failed at once
    status, body = post(app, "+56 9 6200 0007")
    assert (status, body["error"]) == (422, "formcall_rejected")
    failed = [r for r in app.store.scan_leads() if r["state"] == "failed"]
    assert len(failed) == 1
    # until_done: the name went with the failure; the number stays so the lead can be retried once.
    assert "adicional" not in failed[0]["payload"] and failed[0]["payload"]["phonenumber"] == "62000007"
    report = Sweeper(app.runtime).retry_now(failed[0]["lead_id"])
    assert report is not None and report.outcome == "placed"
    again = Sweeper(app.runtime).retry_now(failed[0]["lead_id"])
    assert again is not None and again.outcome == "placed"
    assert len(simulator.placed()) == 1


@pytest.mark.parametrize("kind", ["redis", "firestore"])
def test_the_store_down_at_submission_keeps_nothing_and_calls_no_one(
    tmp_path: Path, simulator: Simulator, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.harness import free_port

    if kind == "redis":
        url = f"redis://127.0.0.1:{free_port()}/0"
    else:
        # An emulator that is not there: nothing listens on this port.
        monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", f"127.0.0.1:{free_port()}")
        url = "firestore://demo-down/(default)"
    app = make_app(tmp_path, simulator, url)
    started = time.monotonic()
    status, body = post(app, "+56 9 6200 0008")
    assert (status, body["error"]) == (503, "store_unavailable"), body
    assert time.monotonic() - started < 10
    assert simulator.calls() == []


def test_a_lost_answer_whose_finish_fails_is_kept_answered_200_and_its_resend_is_the_same_lead(
    tmp_path: Path, simulator: Simulator, redis_server: Any
) -> None:
    """FormCall's answer lost, then every write after it lost too (Redis behind a proxy that drops the
    requests): the record admitted before FormCall was asked stands, so the sender hears 200 scheduled,
    not a 503 whose resend would be a second lead. The sweeper settles it from the list and turns the
    claims still holding the admission's mark into its answer, so a resend is its duplicate."""
    import redis

    from tests.fakes.redis_server import LossyProxy

    redis.Redis.from_url(redis_server.url).flushdb()
    proxy = LossyProxy(redis_server.port)
    try:
        app = make_app(tmp_path, simulator, proxy.url)
        simulator.inject({"kind": "slow", "seconds": TIMEOUT + 0.3})
        answers: list[tuple[int, dict[str, Any]]] = []
        posting = threading.Thread(target=lambda: answers.append(post(app, "+56 9 6200 0099")))
        posting.start()
        deadline = time.monotonic() + 30
        while not simulator.calls():  # admitted; FormCall is holding the request
            assert time.monotonic() < deadline, "FormCall never asked"
            time.sleep(0.01)
        proxy.lose_request(*range(1, 40))  # every write after FormCall's answer, and each read-back
        posting.join(30)
        assert proxy.harmed >= 2
        proxy.lose_request()
        [(status, body)] = answers
        assert (status, body.get("scheduled")) == (200, True), body
        simulator.wait_for_calls(1)
        clock_of(app).advance(SETTLE + app.runtime.attempter.lease_seconds + 1)
        # The admission's lease on the lead lives in Redis, on Redis's own clock: run out, as Redis would
        # make it after lease_seconds.
        redis.Redis.from_url(redis_server.url).delete(keys.lease(body["lead_id"]))
        assert sweep(app)["placed"] == 1
        [call] = simulator.placed()
        assert lead(app.store, body["lead_id"])["uuid"] == call["uuid"]
        status, again = post(app, "+56 9 6200 0099")
        assert (status, again.get("duplicate"), again.get("uuid")) == (200, True, call["uuid"]), again
        assert len(simulator.calls()) == 1
    finally:
        proxy.stop()
