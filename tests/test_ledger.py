"""The ledger contract: every backend (memory, a real Redis, Google's Firestore emulator) passes the same tests."""

from __future__ import annotations

import threading
import time
from typing import Any

from formcall_webhook import records
from formcall_webhook.stores import Admission, Backend, Counter, Finish


def record(lead_id: str | None = None, *, route: str = "default", received: float | None = None,
           phone_hash: str = "h1", keep_days: int = 30, claims: list[tuple[str, float]] | None = None,
           ) -> dict[str, Any]:  # fmt: skip
    return records.new_record(
        lead_id=lead_id or records.new_lead_id(),
        route=route,
        received=time.time() if received is None else received,
        payload={
            "popup_uuid": "e5c98214-d0f6-11e1-8c30-001d09ef4a24",
            "country_code": "56",
            "areacode": "9",
            "phonenumber": "61234567",
            "adicional": {"Nombre": "Ana"},
        },
        masked="+56*****567",
        phone_hash=phone_hash,
        keep_days=keep_days,
        claims=claims or [],
    )


def test_admit_takes_claims_creates_the_record_and_the_lease(backend: Backend) -> None:
    lead = record(claims=[("c:lead", 60.0)])
    got = backend.admit(Admission(claims=[("c:lead", 60.0)], marker="pending:m1", record=lead,
                                  lease=("lease:" + lead["lead_id"], 30.0)))  # fmt: skip
    assert got.ok
    assert backend.get_lead(lead["lead_id"]) == lead
    assert backend.claim("c:lead", "x", 5) == "pending:m1"
    assert backend.claim("lease:" + lead["lead_id"], "x", 5) == "pending:m1"


def test_admit_reports_held_claims_and_does_nothing_else(backend: Backend) -> None:
    backend.put("c:held", '{"lead_id":"ld_first"}', 60)
    lead = record()
    got = backend.admit(Admission(claims=[("c:free", 60.0), ("c:held", 60.0)], marker="pending:m2", record=lead,
                                  counters=[Counter("rate:x", 60, 1)]))  # fmt: skip
    assert not got.ok
    assert got.held == {"c:held": '{"lead_id":"ld_first"}'}
    assert backend.get_lead(lead["lead_id"]) is None
    assert backend.claim("c:free", "mine", 5) is None
    # The counter was not counted for a duplicate.
    assert backend.hit("rate:x", 60)[0] == 1


def test_admit_counts_and_refuses_past_the_limit(backend: Backend) -> None:
    for n in range(3):
        got = backend.admit(Admission(claims=[(f"c:{n}", 60.0)], marker="pending:m", record=record(),
                                      counters=[Counter("rate:phone", 3600, 2)]))  # fmt: skip
        assert got.ok is (n < 2)
    assert got.refused == "rate_limited"
    assert got.counter == "rate:phone"
    assert 1 <= got.retry_after <= 3600
    # Refused: no claim taken.
    assert backend.claim("c:2", "x", 5) is None


def test_admit_refuses_an_opted_out_number(backend: Backend) -> None:
    backend.set_optout("hash-out", True)
    assert backend.is_opted_out("hash-out")
    lead = record()
    got = backend.admit(Admission(claims=[("c:o", 60.0)], marker="pending:m", record=lead, optout="hash-out"))
    assert got.refused == "opted_out"
    assert backend.get_lead(lead["lead_id"]) is None
    backend.set_optout("hash-out", False)
    assert not backend.is_opted_out("hash-out")
    assert backend.admit(Admission(claims=[("c:o", 60.0)], marker="pending:m", record=lead, optout="hash-out")).ok


def test_finish_writes_the_record_answers_the_claims_and_frees_the_lease(backend: Backend) -> None:
    lead = record()
    lease = "lease:" + lead["lead_id"]
    claims = [("c:a", 60.0), ("c:b", 60.0)]
    assert backend.admit(Admission(claims=claims, marker="pending:m", record=lead, lease=(lease, 30.0))).ok
    placed = records.changed(lead, state="placed", uuid="80b5fc503f24d33de4f15f908f42b279", due_at=None)
    backend.finish(Finish(lead["lead_id"], placed, 1, claims, "pending:m", '{"uuid":"80b5"}', lease))
    assert backend.get_lead(lead["lead_id"]) == placed
    assert backend.claim("c:a", "x", 5) == '{"uuid":"80b5"}'
    assert backend.claim(lease, "next", 5) is None


def test_finish_without_an_answer_releases_and_without_a_record_deletes(backend: Backend) -> None:
    lead = record()
    claims = [("c:r", 60.0)]
    assert backend.admit(Admission(claims=claims, marker="pending:m", record=lead)).ok
    backend.finish(Finish(lead["lead_id"], None, 1, claims, "pending:m", None))
    assert backend.get_lead(lead["lead_id"]) is None
    assert backend.claim("c:r", "x", 5) is None
    assert list(backend.scan_leads()) == []


def test_save_is_conditional_on_the_version(backend: Backend) -> None:
    lead = record()
    assert backend.save_lead(lead, None)
    assert not backend.save_lead(lead, None)  # exists already
    moved = records.changed(lead, state="failed")
    assert not backend.save_lead(moved, 7)
    assert backend.save_lead(moved, 1)
    assert not backend.save_lead(records.changed(lead, state="placed"), 1)  # a stale read loses
    assert backend.get_lead(lead["lead_id"])["state"] == "failed"  # type: ignore[index]


def test_due_leads_most_overdue_first_and_only_due(backend: Backend) -> None:
    now = time.time()
    late = records.changed(record(), due_at=now - 100)
    later = records.changed(record(), due_at=now - 10)
    future = records.changed(record(), due_at=now + 100)
    never = record()
    for r in (later, future, late, never):
        assert backend.save_lead(r, None)
    due = backend.due_leads(now, 10)
    assert [r["lead_id"] for r in due] == [late["lead_id"], later["lead_id"]]
    assert [r["lead_id"] for r in backend.due_leads(now, 1)] == [late["lead_id"]]
    # No longer due once saved without a due time.
    assert backend.save_lead(records.changed(late, due_at=None), late["version"])
    assert [r["lead_id"] for r in backend.due_leads(now, 10)] == [later["lead_id"]]


def test_scan_filters_and_orders_by_arrival(backend: Backend) -> None:
    now = time.time()
    old = record(received=now - 3 * 86400, route="a")
    mid = records.changed(record(received=now - 3600, route="b"), state="placed")
    new = record(received=now - 60, route="a")
    for r in (new, old, mid):
        assert backend.save_lead(r, None)
    assert [r["lead_id"] for r in backend.scan_leads()] == [old["lead_id"], mid["lead_id"], new["lead_id"]]
    assert [r["lead_id"] for r in backend.scan_leads(since=now - 86400)] == [mid["lead_id"], new["lead_id"]]
    assert [r["lead_id"] for r in backend.scan_leads(route="a")] == [old["lead_id"], new["lead_id"]]
    assert [r["lead_id"] for r in backend.scan_leads(state="placed")] == [mid["lead_id"]]


def test_expired_records_are_gone_whatever_the_ttl_machinery_says(backend: Backend) -> None:
    # Received 31 days ago with keep_days 30: expired, though Firestore's TTL may not have run yet.
    gone = record(received=time.time() - 31 * 86400, keep_days=30, phone_hash="hx")
    gone["due_at"] = time.time() - 5
    kept = record(phone_hash="hx")
    assert backend.save_lead(gone, None) or True  # a store may refuse what is already expired
    assert backend.save_lead(kept, None)
    assert backend.get_lead(gone["lead_id"]) is None
    assert [r["lead_id"] for r in backend.leads_by_phone("hx")] == [kept["lead_id"]]
    assert [r["lead_id"] for r in backend.scan_leads()] == [kept["lead_id"]]
    assert backend.due_leads(time.time(), 10) == []


def test_by_phone_and_delete(backend: Backend) -> None:
    a, b, other = record(phone_hash="p1"), record(phone_hash="p1"), record(phone_hash="p2")
    for r in (a, b, other):
        assert backend.save_lead(r, None)
    assert {r["lead_id"] for r in backend.leads_by_phone("p1")} == {a["lead_id"], b["lead_id"]}
    backend.delete_lead(a["lead_id"])
    assert [r["lead_id"] for r in backend.leads_by_phone("p1")] == [b["lead_id"]]
    assert backend.get_lead(a["lead_id"]) is None
    backend.delete("c:any")  # deleting what is not there is fine


def test_one_admission_wins_a_race(backend: Backend) -> None:
    wins: list[str] = []
    lock = threading.Lock()

    def attempt(n: int) -> None:
        got = backend.admit(Admission(claims=[("c:race", 60.0)], marker=f"pending:{n}", record=record()))
        if got.ok:
            with lock:
                wins.append(f"pending:{n}")

    threads = [threading.Thread(target=attempt, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 1
    assert backend.claim("c:race", "x", 5) == wins[0]
    assert len(list(backend.scan_leads())) == 1
