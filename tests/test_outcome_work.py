"""Call outcomes (spec 9): looked up by the sweeper, reported to a signed webhook and to HubSpot."""

from __future__ import annotations

import base64
import io
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from formcall_webhook import followup
from formcall_webhook.app import App, Request, read_stream
from formcall_webhook.clients import hubspot as hubspot_client
from formcall_webhook.runtime import Runtime
from formcall_webhook.simulator import Simulator
from formcall_webhook.stores import memory
from formcall_webhook.sweep import Sweeper
from tests.clock import TestClock, clock_of
from tests.fakes.hubspot import FakeHubSpot
from tests.fakes.receiver import FakeReceiver
from tests.signing import hubspot_v3

POPUP = "e5c98214-d0f6-11e1-8c30-001d09ef4a24"
TOKEN = "outcome-token-77"
SIMULATOR_TOKENS = (TOKEN,)
SECRET = "whsec_" + base64.b64encode(b"outcome-secret-for-tests-000001").decode()
HUBSPOT_TOKEN = "pat-na1-test-0001"


@pytest.fixture
def receiver() -> Iterator[FakeReceiver]:
    fake = FakeReceiver(SECRET).start()
    yield fake
    fake.stop()


@pytest.fixture
def hubspot() -> Iterator[FakeHubSpot]:
    fake = FakeHubSpot(HUBSPOT_TOKEN).start()
    yield fake
    fake.stop()


def make_app(
    tmp_path: Path, simulator: Simulator, outcome: str, *, keep: str = "until_done", schedule: str = '["1s"]'
) -> App:
    path = tmp_path / "f.toml"
    path.write_text(
        "[formcall]\ntimeout_seconds = 2\n"
        f'[leads]\nkeep_fields = "{keep}"\n'
        f"[defaults.retry]\nschedule = {schedule}\n"
        f"[routes.default]\npopup_uuid = '{POPUP}'\nrate_limit = false\noutcome = {outcome}\n"
    )
    environ = {
        "FORMCALL_CONFIG": str(path),
        "FORMCALL_API_URL": simulator.api_url,
        "FORMCALL_SECURITY_TOKEN": TOKEN,
        "OUTCOME_SECRET": SECRET,
        "HUBSPOT_TOKEN": HUBSPOT_TOKEN,
        "HUBSPOT_APP_SECRET": "hs-app-secret-outcomes",
    }
    return App(runtime=Runtime(environ, clock=TestClock(simulator).now))


def post(app: App, body: dict[str, Any]) -> dict[str, Any]:
    raw = json.dumps(body).encode()
    stream = io.BytesIO(raw)
    req = Request(
        "POST", "/", {"content-type": "application/json"}, b"", lambda n, *_: read_stream(stream, n), len(raw)
    )
    response = app.handle(req)
    assert response.status == 200, response.body
    answer: dict[str, Any] = json.loads(response.body)
    return answer


def settle(app: App, lead_id: str, passes: int = 8) -> dict[str, Any]:
    """Sweep, the test's clock moved on to each due time (the lookups' schedule), until the lead's outcome
    work is done."""
    sweeper = Sweeper(app.runtime)
    for _ in range(passes):
        record = app.store.get_lead(lead_id)
        assert record is not None
        if record.get("due_at") is None:
            return record
        clock_of(app).advance_to(record["due_at"] + 0.05)
        sweeper.run()
    record = app.store.get_lead(lead_id)
    assert record is not None
    return record


def webhook(receiver: FakeReceiver) -> str:
    return f'{{ after = "0s", give_up = "1h", url = "{receiver.url}", secret = "env:OUTCOME_SECRET" }}'


def test_connected_is_recorded_reported_and_the_record_minimized(
    tmp_path: Path, simulator: Simulator, receiver: FakeReceiver
) -> None:
    app = make_app(tmp_path, simulator, webhook(receiver))
    simulator.set_fate("56962000101", status="Conectada", duration_customer=95, duration_company=117)
    answer = post(app, {"phone": "+56 9 6200 0101", "nombre": "Ana Pérez", "email": "ana@example.cl"})
    before = app.store.get_lead(answer["lead_id"])
    assert before is not None and before["payload"]["adicional"]["Nombre"] == "Ana Pérez"
    record = settle(app, answer["lead_id"])
    outcome = record["outcome"]
    assert (outcome["call_status"], outcome["connected"], outcome["successful"]) == ("Conectada", True, True)
    assert outcome["duration_customer"] == 95
    assert outcome["call_at"].endswith("-03:00") or outcome["call_at"].endswith("-04:00")
    accepted = receiver.accepted()
    assert len(accepted) == 1
    payload = accepted[0].payload
    assert payload["type"] == "call.outcome"
    assert (payload["lead_id"], payload["uuid"], payload["call_status"]) == (
        answer["lead_id"], answer["uuid"], "Conectada"
    )  # fmt: skip
    assert accepted[0].headers["webhook-id"] == "outcome_" + answer["lead_id"]
    # Spec 10, until_done: what the person typed is gone; the outcome and the masked number stay.
    assert record["payload"] is None and record["minimized"] is True
    assert "Ana" not in json.dumps(record) and "ana@example.cl" not in json.dumps(record)
    assert record["phone"] == "+56*****101"


def test_not_answered(tmp_path: Path, simulator: Simulator, receiver: FakeReceiver) -> None:
    app = make_app(tmp_path, simulator, webhook(receiver))
    simulator.set_fate("56962000102", status="SIM-NoContesta")
    answer = post(app, {"phone": "+56 9 6200 0102"})
    outcome = settle(app, answer["lead_id"])["outcome"]
    assert (outcome["call_status"], outcome["connected"], outcome["successful"]) == ("SIM-NoContesta", False, False)
    assert receiver.accepted()[0].payload["connected"] is False


def test_a_status_that_never_settles_is_given_up(tmp_path: Path, simulator: Simulator, receiver: FakeReceiver) -> None:
    outcome = f'{{ after = "0s", give_up = "3s", url = "{receiver.url}", secret = "env:OUTCOME_SECRET" }}'
    app = make_app(tmp_path, simulator, outcome)
    simulator.set_fate("56962000103", settle_after=None, ring_after=0)  # rings forever, its seconds growing
    answer = post(app, {"phone": "+56 9 6200 0103"})
    record = settle(app, answer["lead_id"], passes=10)
    assert record["due_at"] is None
    assert record["outcome"]["gave_up_lookup"] is True
    assert record["outcome"]["call_status"] == "SIM-Sonando"
    assert len(receiver.accepted()) == 1


def test_listing_down_for_an_hour_then_back(tmp_path: Path, simulator: Simulator, receiver: FakeReceiver) -> None:
    outcome = f'{{ after = "0s", give_up = "2h", url = "{receiver.url}", secret = "env:OUTCOME_SECRET" }}'
    app = make_app(tmp_path, simulator, outcome)
    answer = post(app, {"phone": "+56 9 6200 0104"})
    simulator.set_list_down(seconds=3600)
    sweeper = Sweeper(app.runtime)
    for _ in range(2):
        clock_of(app).advance(1.05)
        sweeper.run()  # never stops the sweep
    record = app.store.get_lead(answer["lead_id"])
    assert record is not None and "call_status" not in record["outcome"] and record["due_at"] is not None
    clock_of(app).advance(3601)  # the hour passes: the listing answers again
    record = settle(app, answer["lead_id"])
    assert record["outcome"]["call_status"] == "Conectada"
    assert len(receiver.accepted()) == 1


def test_receiver_500_three_times_then_200(tmp_path: Path, simulator: Simulator) -> None:
    receiver = FakeReceiver(SECRET, [500, 500, 500]).start()
    try:
        app = make_app(tmp_path, simulator, webhook(receiver))
        answer = post(app, {"phone": "+56 9 6200 0105"})
        record = settle(app, answer["lead_id"], passes=12)
        assert [a.status for a in receiver.attempts] == [500, 500, 500, 200]
        assert len({a.headers["webhook-id"] for a in receiver.attempts}) == 1
        # The event's time (Standard Webhooks' `timestamp`) is the same on every attempt (the signature's
        # webhook-timestamp is each attempt's wall clock, which this test's clock does not move).
        assert len({json.loads(a.body)["timestamp"] for a in receiver.attempts}) == 1
        assert len(receiver.accepted()) == 1
        assert record["outcome"]["webhook"] == "delivered"
    finally:
        receiver.stop()


def test_receiver_410_is_final(tmp_path: Path, simulator: Simulator, capsys: pytest.CaptureFixture[str]) -> None:
    receiver = FakeReceiver(SECRET, [410]).start()
    try:
        app = make_app(tmp_path, simulator, webhook(receiver))
        answer = post(app, {"phone": "+56 9 6200 0106"})
        record = settle(app, answer["lead_id"])
        assert [a.status for a in receiver.attempts] == [410]
        assert record["outcome"]["webhook"] == "final"
        lines = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith("{")]
        assert any(e.get("outcome") == "outcome_failed" and e["severity"] == "ERROR" for e in lines)
    finally:
        receiver.stop()


def hubspot_outcome(hubspot: FakeHubSpot) -> str:
    return (
        '{ after = "0s", give_up = "1h", hubspot = { token = "env:HUBSPOT_TOKEN", property = "formcall_call_status", '
        f'api_url = "{hubspot.url}" }} }}'
    )


def test_hubspot_429_then_200(tmp_path: Path, simulator: Simulator, hubspot: FakeHubSpot) -> None:
    contact = hubspot.add_contact("lead@example.cl", phone="+56 9 6200 0107")
    app = make_app(tmp_path, simulator, hubspot_outcome(hubspot))
    answer = post(app, {"email": "Lead@Example.cl", "phone": "+56 9 6200 0107"})
    hubspot.fail_next(1, 429, {"Retry-After": "1"})
    record = settle(app, answer["lead_id"], passes=10)
    assert record["outcome"]["hubspot"] == "delivered"
    assert hubspot.contacts[contact].properties["formcall_call_status"] == "Conectada"
    notes = hubspot.notes_of(contact)
    assert len(notes) == 1
    assert answer["uuid"] in json.dumps(notes[0])
    statuses = [c.status for c in hubspot.calls]
    assert statuses[0] == 429 and all(200 <= s < 300 for s in statuses[1:])
    assert all(c.headers["authorization"] == "Bearer " + HUBSPOT_TOKEN for c in hubspot.calls)
    assert all(c.path.startswith("/crm/objects/2026-09/") for c in hubspot.calls)


def test_hubspot_contact_not_found_does_not_fail_the_lead(
    tmp_path: Path, simulator: Simulator, hubspot: FakeHubSpot
) -> None:
    app = make_app(tmp_path, simulator, hubspot_outcome(hubspot))
    answer = post(app, {"phone": "+56 9 6200 0108", "email": "nobody@example.cl"})
    record = settle(app, answer["lead_id"])
    assert record["state"] == "placed"
    assert record["outcome"]["hubspot"] == "not_found"
    assert record["due_at"] is None
    assert hubspot.notes == {}


def test_a_vid_posted_to_a_public_route_writes_no_contact(
    tmp_path: Path, simulator: Simulator, hubspot: FakeHubSpot
) -> None:
    """Issue 18.1: "vid": "4242" on a public route set the property and a note on contact 4242."""
    victim = hubspot.add_contact("victim@example.cl", phone="+56 2 2123 4567")
    app = make_app(tmp_path, simulator, hubspot_outcome(hubspot))
    answer = post(app, {"vid": victim, "objectId": victim, "phone": "+56 9 6200 0109"})
    record = settle(app, answer["lead_id"])
    assert record["outcome"]["hubspot"] == "not_found"
    assert "formcall_call_status" not in hubspot.contacts[victim].properties
    assert hubspot.notes == {} and hubspot.calls == []


def test_a_strangers_email_writes_no_contact(tmp_path: Path, simulator: Simulator, hubspot: FakeHubSpot) -> None:
    """Issue 18.1: a stranger's form with contact 777's email got contact 777 written."""
    victim = hubspot.add_contact("victim@example.cl", phone="+56 2 2123 4567", mobilephone="+56 9 8765 4321")
    app = make_app(tmp_path, simulator, hubspot_outcome(hubspot))
    answer = post(app, {"email": "victim@example.cl", "phone": "+56 9 6200 0110"})
    record = settle(app, answer["lead_id"])
    assert record["outcome"]["hubspot"] == "mismatch"
    assert record["due_at"] is None
    assert "formcall_call_status" not in hubspot.contacts[victim].properties
    assert hubspot.notes == {} and [c.method for c in hubspot.calls] == ["GET"]


def test_on_a_hubspot_signed_route_the_vid_is_the_contact(
    tmp_path: Path, simulator: Simulator, hubspot: FakeHubSpot
) -> None:
    """HubSpot's signature vouches for the vid: that contact is written, whatever its phone says."""
    contact = hubspot.add_contact("lead@example.cl", phone="+56 2 2000 0000")
    public_url = "https://REGION-PROJECT.cloudfunctions.net/formcall-webhook/default"
    signed = '{ type = "hubspot", secret = "env:HUBSPOT_APP_SECRET", ' + f'public_url = "{public_url}" }}'
    app = make_app(tmp_path, simulator, hubspot_outcome(hubspot) + f"\nauth = {signed}")
    raw = json.dumps({"vid": int(contact), "properties": {"phone": {"value": "+56 9 6200 0113"}}}).encode()
    headers = {"content-type": "application/json", **{k.lower(): v for k, v in hubspot_v3(
        "hs-app-secret-outcomes", "POST", public_url, raw).items()}}  # fmt: skip
    stream = io.BytesIO(raw)
    request = Request("POST", "/", headers, b"", lambda n, *_: read_stream(stream, n), len(raw))
    response = app.handle(request)
    assert response.status == 200, response.body
    record = settle(app, json.loads(response.body)["lead_id"])
    assert record["outcome"]["hubspot"] == "delivered"
    assert hubspot.contacts[contact].properties["formcall_call_status"] == "Conectada"
    assert [c.method for c in hubspot.calls] == ["PATCH", "POST", "PUT"]
    assert hubspot.calls[0].path == f"/crm/objects/2026-09/contacts/{contact}"


def _sweep_until_held(app: App, lead_id: str) -> dict[str, Any]:
    sweeper = Sweeper(app.runtime)
    for _ in range(8):
        record = app.store.get_lead(lead_id)
        assert record is not None
        if (record.get("outcome") or {}).get("hubspot_hold_until") or record.get("due_at") is None:
            return record
        clock_of(app).advance_to(record["due_at"] + 0.05)
        sweeper.run()
    raise AssertionError("the HubSpot write was never held")


def test_a_daily_429_is_held_until_the_accounts_midnight(
    tmp_path: Path, simulator: Simulator, hubspot: FakeHubSpot
) -> None:
    hubspot.add_contact("lead@example.cl", phone="+56 9 6200 0111")
    outcome = hubspot_outcome(hubspot).replace('give_up = "1h"', 'give_up = "48h"')
    app = make_app(tmp_path, simulator, outcome)
    answer = post(app, {"email": "lead@example.cl", "phone": "+56 9 6200 0111"})
    hubspot.fail_next(1, 429, {"Retry-After": "1"}, policy="DAILY")
    before = clock_of(app).now()
    record = _sweep_until_held(app, answer["lead_id"])
    after = clock_of(app).now()
    held = record["outcome"]["hubspot_hold_until"]
    # Midnight in the account's zone (America/Santiago in the fake), not Retry-After's second nor an hour.
    assert (
        hubspot_client.next_day(before, "America/Santiago")
        <= held
        <= hubspot_client.next_day(after, "America/Santiago")
    )
    assert record["due_at"] == held
    assert "hubspot" not in record["outcome"]
    calls = len(hubspot.calls)
    Sweeper(app.runtime).run()  # not due: nothing goes to HubSpot before the account's next day
    assert len(hubspot.calls) == calls


def test_a_daily_429_past_give_up_gives_up(tmp_path: Path, simulator: Simulator, hubspot: FakeHubSpot) -> None:
    hubspot.add_contact("lead@example.cl", phone="+56 9 6200 0112")
    app = make_app(tmp_path, simulator, hubspot_outcome(hubspot))
    answer = post(app, {"email": "lead@example.cl", "phone": "+56 9 6200 0112"})
    hubspot.fail_next(2, 429, policy="DAILY")  # the account's details too: a day's hold, past the 1h give_up
    record = settle(app, answer["lead_id"])
    assert record["outcome"]["hubspot"] == "gave_up"
    assert record["due_at"] is None


def test_a_hubspot_outage_is_retried_on_the_leads_backoff(
    tmp_path: Path, simulator: Simulator, hubspot: FakeHubSpot
) -> None:
    """Issue 18.8: a HubSpot-only outcome during a 3-hour outage made 177 requests for one lead (every
    minute); it backs off on the lead's retry schedule like the webhook does: a handful."""
    hubspot.add_contact("lead@example.cl", phone="+56 9 6200 0114")
    outcome = hubspot_outcome(hubspot).replace('give_up = "1h"', 'give_up = "3h"')
    app = make_app(tmp_path, simulator, outcome, schedule='["1m", "5m", "15m", "1h", "3h"]')
    answer = post(app, {"email": "lead@example.cl", "phone": "+56 9 6200 0114"})
    hubspot.fail_next(10_000, 503)
    start = clock_of(app).now()
    record = settle(app, answer["lead_id"], passes=400)
    assert clock_of(app).now() - start >= 3 * 3600 - 60  # the whole outage went by
    assert record["outcome"]["hubspot"] == "gave_up" and record["due_at"] is None
    assert 3 <= len(hubspot.calls) <= 8, len(hubspot.calls)


def test_500_leads_in_one_sweep_read_each_listing_once(tmp_path: Path, simulator: Simulator) -> None:
    app = make_app(tmp_path, simulator, '{ after = "0s", give_up = "1h" }')
    for n in range(500):
        post(app, {"phone": f"+56 9 64{n:06d}"})
    clock_of(app).advance(0.05)
    simulator.reset_list_reads()
    counts = Sweeper(app.runtime).run()
    assert counts["due"] == 500
    reads = simulator.list_reads()
    # One popup; the dates the platform's local day can be around now: each read once.
    assert reads and all(r["count"] == 1 for r in reads), reads
    assert len(reads) <= 2


class _StoreClock:
    """memory://'s clock (its leases), moved on by the test instead of slept through."""

    def __init__(self) -> None:
        self.offset = 0.0

    def monotonic(self) -> float:
        return time.monotonic() + self.offset

    def time(self) -> float:
        return time.time() + self.offset

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


def test_two_sweepers_and_a_slow_hubspot_write_one_note(
    tmp_path: Path, simulator: Simulator, hubspot: FakeHubSpot, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 18.7: with a slow HubSpot, the first sweeper's lease ran out mid-write and a second sweeper
    wrote a second note for the call. Spec 9: once per call, whatever the number of sweepers."""
    monkeypatch.setattr(followup, "_WEBHOOK_TIMEOUT", 30.0)  # the held request outlasts no timeout
    store_clock = _StoreClock()
    monkeypatch.setattr(memory, "time", store_clock)
    contact = hubspot.add_contact("lead@example.cl", phone="+56 9 6200 0115")
    app = make_app(tmp_path, simulator, hubspot_outcome(hubspot))
    lead_id = post(app, {"email": "lead@example.cl", "phone": "+56 9 6200 0115"})["lead_id"]
    arrived, release = hubspot.hold_next("PATCH")  # HubSpot sits on the first write
    first = None
    try:
        for _ in range(8):  # the lookups, until a pass writes to HubSpot
            record = app.store.get_lead(lead_id)
            assert record is not None and record.get("due_at") is not None
            clock_of(app).advance_to(record["due_at"] + 0.05)
            first = threading.Thread(target=Sweeper(app.runtime).run, daemon=True)
            first.start()
            while first.is_alive() and not arrived.wait(0.05):
                pass
            if arrived.is_set():
                break
            first.join(30)
        assert arrived.is_set() and first is not None and first.is_alive()
        # The first sweeper's lease runs out while HubSpot holds its write; a second sweeper comes.
        lease = app.runtime.attempter.lease_seconds + 1
        store_clock.offset += lease
        clock_of(app).advance(lease)
        Sweeper(app.runtime).run()
    finally:
        release.set()
    first.join(30)
    assert not first.is_alive()
    record = settle(app, lead_id)
    assert record["outcome"]["hubspot"] == "delivered"
    assert len(hubspot.notes_of(contact)) == 1 and len(hubspot.notes) == 1
    assert [c.method for c in hubspot.calls if c.method != "GET"] == ["PATCH", "POST", "PUT"]
