"""The Lead type (spec 8): every move of its state machine, keep_fields, and records saved before it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from formcall_webhook import records
from formcall_webhook.records import CallWork, Lead, LeadState, MoveRefused
from formcall_webhook.states import STATES, can_move

SAMPLES = Path(__file__).parent / "samples" / "records_v1"
POPUP = "e5c98214-d0f6-11e1-8c30-001d09ef4a24"
NOW = 1_796_552_074.0


def fresh(**extra: Any) -> Lead:
    return Lead.admitted(
        lead_id="ld_1",
        route="default",
        received=NOW,
        payload={
            "popup_uuid": POPUP,
            "country_code": "56",
            "areacode": "9",
            "phonenumber": "61234567",
            "adicional": {"Nombre": "Ana"},
            "security_token": "t",
        },
        masked="+56*****567",
        phone_hash="h",
        keep_days=30,
        claims=[("formcall:*:lead:abc", 600.0)],
        **extra,
    )


def in_state(state: LeadState) -> Lead:
    lead = fresh()
    if state is LeadState.SCHEDULED:
        return lead
    if state is LeadState.FAILED:
        return lead.failed("formcall_rejected", keep_fields="keep")
    return lead.placed("u1", pending=state is LeadState.PENDING, now=NOW, work_after=600, keep_fields="keep")


# Each move, by the state it ends in (None: the state stays).
def _moves(lead: Lead) -> dict[str, tuple[Any, LeadState | None]]:
    work = CallWork(due=True, lookups=1)
    return {
        "scheduled": (lambda: lead.scheduled(due_at=NOW + 60, last_error="origination_failed"), LeadState.SCHEDULED),
        "retried": (lambda: lead.retried(NOW), LeadState.SCHEDULED),
        "held": (lambda: lead.held(NOW + 3600), LeadState.SCHEDULED),
        "in_flight": (lambda: lead.in_flight(NOW, NOW + 30), LeadState.SCHEDULED),
        "placed": (
            lambda: lead.placed("u2", pending=False, now=NOW, work_after=None, keep_fields="keep"),
            LeadState.PLACED,
        ),
        "pending": (
            lambda: lead.placed(None, pending=True, now=NOW, work_after=None, keep_fields="keep"),
            LeadState.PENDING,
        ),
        "failed": (lambda: lead.failed("origination_failed", keep_fields="keep"), LeadState.FAILED),
        "outcome_step": (lambda: lead.outcome_step(work, NOW + 60), None),
        "outcome_done": (lambda: lead.outcome_done(work, "keep"), None),
    }


@pytest.mark.parametrize("state", STATES)
def test_every_move_from_every_state(state: LeadState) -> None:
    lead = in_state(state)
    for name, (move, target) in _moves(lead).items():
        if target is None:
            allowed = state in (LeadState.PLACED, LeadState.PENDING)
        elif name == "in_flight":
            allowed = state is LeadState.SCHEDULED
        elif name == "held":
            allowed = state is LeadState.SCHEDULED and lead.attempts == 0
        else:
            allowed = can_move(state, target)
        if allowed:
            moved = move()
            assert moved.state is (target or state), name
            assert moved.version == lead.version + 1, name
            assert lead.state is state  # frozen: the old lead is unchanged
        else:
            with pytest.raises(MoveRefused):
                move()


def test_the_state_table() -> None:
    allowed = {(old, new) for old in STATES for new in STATES if can_move(old, new)}
    s, p, n, f = LeadState.SCHEDULED, LeadState.PLACED, LeadState.PENDING, LeadState.FAILED
    assert allowed == {(s, s), (s, p), (s, n), (s, f), (f, s), (f, p), (f, n)}


def test_keep_fields_until_done() -> None:
    placed = fresh().placed("u1", pending=False, now=NOW, work_after=None, keep_fields="until_done")
    assert (placed.payload, placed.minimized, placed.number()) == (None, True, None)
    failed = fresh().failed("formcall_rejected", keep_fields="until_done")
    assert failed.payload is not None and "adicional" not in failed.payload
    assert failed.number() == "+56961234567"
    kept = fresh().placed("u1", pending=False, now=NOW, work_after=None, keep_fields="keep")
    assert kept.payload is not None and kept.payload["adicional"] == {"Nombre": "Ana"}
    # With outcome work to do, the lead keeps what the work needs until it is done.
    working = fresh().placed("u1", pending=False, now=NOW, work_after=600, keep_fields="until_done")
    assert working.payload is not None and working.due_at == NOW + 600 and working.work == CallWork(due=True)
    done = working.outcome_done(working.work or CallWork(), "until_done")
    assert (done.payload, done.due_at, done.work and done.work.due) == (None, None, False)


def test_in_flight_marks_the_attempt_and_leases_it() -> None:
    lead = fresh().in_flight(NOW + 5, NOW + 40)
    assert (lead.attempts, lead.attempt.since, lead.due_at) == (1, NOW + 5, NOW + 40)
    assert lead.to_json()["next_attempt_at"] == records.iso(NOW + 40)
    assert lead.unmarked().attempt.since is None


def _stored_records() -> list[tuple[str, str, dict[str, Any]]]:
    """Every record the code before the Lead type saved (tests/samples/records_v1), as each store reads it."""
    from formcall_webhook.stores import firestore, redis

    found = []
    for kind in ("memory", "redis", "firestore"):
        for name, stored in json.loads((SAMPLES / f"{kind}.json").read_text()).items():
            if kind == "memory":
                record = stored
            elif kind == "redis":
                record = json.loads(stored)
            else:
                record = firestore._record_of(stored, NOW)
            assert isinstance(record, dict), (kind, name)
            found.append((kind, name, record))
    del redis
    return found


@pytest.mark.parametrize(("kind", "name", "record"), _stored_records(), ids=lambda v: v if isinstance(v, str) else "")
def test_records_saved_before_the_lead_type_load_and_save_unchanged(
    kind: str, name: str, record: dict[str, Any]
) -> None:
    lead = Lead.from_json(record)
    assert lead.to_json() == record
    assert lead.state == record["state"]
    # And they move on: a scheduled one can be attempted, a placed one's work stepped.
    if lead.state is LeadState.SCHEDULED:
        assert lead.in_flight(NOW, NOW + 30).attempts == record["attempts"] + 1


def test_all_states_and_stores_are_in_the_samples() -> None:
    seen = {(kind, record["state"]) for kind, _, record in _stored_records()}
    assert seen == {(k, str(s)) for k in ("memory", "redis", "firestore") for s in STATES}


def test_the_dict_helpers_match_the_lead() -> None:
    record = records.new_record(lead_id="ld_1", route="default", received=NOW, payload={"popup_uuid": POPUP},
                                masked="+56*****567", phone_hash="h", keep_days=30, claims=[])  # fmt: skip
    assert Lead.from_json(record).to_json() == record
    assert record["state"] == "scheduled" and record["version"] == 1 and "contact" not in record
