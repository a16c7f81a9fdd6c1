"""What only firestore:// has: its URL, its documents, its round trips, a dead store, a lazy import; a
store that stumbles (a lost answer, a lost request, a stream broken midway) through a proxy that harms
chosen RPCs; and the library's version and public API.

The contract every store shares is in test_ledger.py, run against Google's emulator.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from formcall_webhook import records
from formcall_webhook.simulator import Simulator
from formcall_webhook.stores import Admission, Counter, Finish, StoreUnavailable
from formcall_webhook.stores import firestore as firestore_store
from formcall_webhook.stores.firestore import FirestoreStore, doc_id, parse_url
from tests.conftest import POPUP, ROOT
from tests.fakes.firestore_emulator import PROJECT, FirestoreEmulator, H2Proxy
from tests.harness import FunctionProcess
from tests.test_ledger import record


@pytest.fixture
def emulator(firestore_emulator: FirestoreEmulator) -> FirestoreEmulator:
    firestore_emulator.clear()
    return firestore_emulator


def new_store(emulator: FirestoreEmulator, timeout: float = 2.0) -> FirestoreStore:
    return FirestoreStore(emulator.store_url, timeout=timeout)


def raw_client() -> Any:
    from google.cloud import firestore

    return firestore.Client(project=PROJECT, database="(default)")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("firestore://", (None, "(default)")),
        ("firestore://my-project", ("my-project", "(default)")),
        ("firestore://my-project/", ("my-project", "(default)")),
        ("firestore://my-project/leads-db", ("my-project", "leads-db")),
        ("firestore://demo-formcall/(default)", ("demo-formcall", "(default)")),
    ],
)
def test_url(url: str, expected: tuple[str | None, str]) -> None:
    assert parse_url(url) == expected


@pytest.mark.parametrize(
    "url", ["firestore:///db", "firestore://p/d/extra", "firestore://p/d?x=1", "firestore://user@p", "redis://x"]
)
def test_bad_url(url: str) -> None:
    with pytest.raises(ValueError, match="firestore://"):
        parse_url(url)


def test_document_ids_are_one_to_one_and_never_reserved() -> None:
    keys = ["formcall:default:lead:ab12", "a/b", "a%2Fb", "a%b", "__x__", "%__x__", ".", "..", "", "%"]
    ids = [doc_id(k) for k in keys]
    assert len(set(ids)) == len(keys)
    for escaped in ids:
        assert "/" not in escaped
        assert escaped not in ("", ".", "..")
        assert not escaped.startswith("__")
    assert doc_id("formcall:default:lead:ab12") == "formcall:default:lead:ab12"


def test_documents_have_the_names_the_deploy_indexes(emulator: FirestoreEmulator) -> None:
    """The TTL policies (expires_at) and the state + received_at index are made for these names."""
    store = new_store(emulator)
    lead = records.changed(record(phone_hash="ph"), due_at=time.time() + 60)
    assert store.admit(Admission(claims=[("formcall:r/1:lead:x", 60.0)], marker="pending:m", record=lead,
                                 counters=[Counter("formcall:rate:ip", 60, 5)]))  # fmt: skip
    store.set_optout("hash/1", True)
    client = raw_client()
    claim = client.collection("formcall_claims").document("formcall:r%2F1:lead:x").get().to_dict()
    assert claim["value"] == "pending:m"
    assert claim["expires"] == pytest.approx(time.time() + 60, abs=5)
    assert claim["expires_at"].timestamp() == pytest.approx(claim["expires"], abs=1e-3)  # a Timestamp
    counter = client.collection("formcall_claims").document("formcall:rate:ip").get().to_dict()
    assert counter["value"] == "1"
    doc = client.collection("formcall_leads").document(lead["lead_id"]).get().to_dict()
    assert doc["state"] == "scheduled"
    assert doc["route"] == "default"
    assert doc["phone_hash"] == "ph"
    assert doc["version"] == lead["version"] == 2
    assert doc["due_at"] == lead["due_at"]
    assert doc["received_ts"] == lead["received_ts"]
    assert doc["received_at"].timestamp() == pytest.approx(lead["received_ts"], abs=1e-3)
    assert doc["expires"] == lead["expires_at"]
    assert doc["expires_at"].timestamp() == pytest.approx(lead["expires_at"], abs=1e-3)
    assert client.collection("formcall_optout").document("hash%2F1").get().exists


def test_a_placed_lead_costs_two_rpcs_before_formcall_and_one_after(emulator: FirestoreEmulator) -> None:
    store = new_store(emulator)
    lead = record()
    lease = "lease:" + lead["lead_id"]
    claims = [("c:lead", 600.0), ("c:delivery", 600.0)]
    admission = Admission(claims=claims, marker="pending:m", record=lead, counters=[Counter("rate:ip", 60, 10)],
                          optout="h1", lease=(lease, 30.0))  # fmt: skip
    assert store.admit(admission).ok
    assert store.round_trips == 2
    placed = records.changed(lead, state="placed", uuid="80b5fc503f24d33de4f15f908f42b279", due_at=None)
    store.finish(Finish(lead["lead_id"], placed, 1, claims, "pending:m", '{"uuid":"80b5"}', lease))
    assert store.round_trips == 3
    # A duplicate is answered from one read.
    again = store.admit(Admission(claims=claims, marker="pending:n", record=record(), optout="h1"))
    assert again.held == {"c:lead": '{"uuid":"80b5"}', "c:delivery": '{"uuid":"80b5"}'}
    assert store.round_trips == 4
    assert store.get_lead(lead["lead_id"]) == placed


def test_finish_on_another_instance_reads_first(emulator: FirestoreEmulator) -> None:
    admitting, finishing = new_store(emulator), new_store(emulator)
    lead = record()
    claims = [("c:other", 600.0)]
    assert admitting.admit(Admission(claims=claims, marker="pending:m", record=lead)).ok
    placed = records.changed(lead, state="placed")
    finishing.finish(Finish(lead["lead_id"], placed, 1, claims, "pending:m", '{"uuid":"u"}'))
    assert finishing.round_trips == 2  # the read, then the Commit
    assert finishing.get_lead(lead["lead_id"]) == placed
    assert finishing.claim("c:other", "x", 5) == '{"uuid":"u"}'


def test_what_an_instance_remembers_never_overrides_another_writer(emulator: FirestoreEmulator) -> None:
    """Instance A admitted; B then changed the claim and the record. A's one-Commit finish fails its
    preconditions and A decides again on what is there now, as every store does."""
    mine, theirs = new_store(emulator), new_store(emulator)
    lead = record()
    claims = [("c:taken", 600.0), ("c:kept", 600.0)]
    assert mine.admit(Admission(claims=claims, marker="pending:m", record=lead)).ok
    theirs.put("c:taken", "pending:someone-else", 600)
    moved = records.changed(lead, state="failed")
    assert theirs.save_lead(moved, 1)
    before = mine.round_trips
    mine.finish(Finish(lead["lead_id"], records.changed(lead, state="placed"), 1, claims, "pending:m", "answer"))
    assert mine.round_trips - before == 3  # the Commit that failed, the read, the Commit
    assert theirs.get_lead(lead["lead_id"]) == moved  # version 1 was no longer there: not replaced
    assert theirs.claim("c:taken", "x", 5) == "pending:someone-else"
    assert theirs.claim("c:kept", "x", 5) == "answer"


def test_counters_and_claims_remembered_cost_one_commit(emulator: FirestoreEmulator) -> None:
    store = new_store(emulator)
    assert store.hit("rate", 60) == (1, 60)
    assert store.round_trips == 2  # the read (absent) and the create
    assert store.hit("rate", 60)[0] == 2
    assert store.round_trips == 3  # written by this instance: one Commit on its update time
    other = new_store(emulator)
    assert other.hit("rate", 60)[0] == 3
    assert store.hit("rate", 60)[0] == 4  # its remembered update time failed: read, then count
    assert store.claim("k", "v", 60) is None
    store.release("k", "v")
    assert other.claim("k", "w", 60) is None


def test_an_expired_document_is_absent_before_the_ttl_policy_deletes_it(emulator: FirestoreEmulator) -> None:
    store = new_store(emulator)
    assert store.claim("c:short", "first", 0.3) is None
    lead = record(claims=[("c:short", 60.0)])
    time.sleep(0.5)
    assert store.admit(Admission(claims=[("c:short", 60.0)], marker="pending:2", record=lead)).ok
    assert store.claim("c:short", "x", 5) == "pending:2"
    old = record(received=time.time() - 40 * 86400, keep_days=30)
    assert store.save_lead(old, None)  # written, already expired: TTL deletes it later
    assert store.get_lead(old["lead_id"]) is None
    assert store.save_lead(records.changed(old, received_ts=time.time(), expires_at=time.time() + 60), None)


def test_an_opt_out_between_the_read_and_the_commit_refuses(
    emulator: FirestoreEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, other = new_store(emulator), new_store(emulator)
    real_read = store._read

    def read_then_opt_out(refs: list[Any]) -> Any:
        docs = real_read(refs)
        if not other.is_opted_out("h-late"):
            other.set_optout("h-late", True)  # the person opts out while this admission decides
        return docs

    monkeypatch.setattr(store, "_read", read_then_opt_out)
    lead = record()
    got = store.admit(Admission(claims=[("c:late", 60.0)], marker="pending:m", record=lead, optout="h-late"))
    assert got.refused == "opted_out"
    assert store.round_trips == 3  # read, the Commit its check failed, read again
    assert other.get_lead(lead["lead_id"]) is None
    assert other.claim("c:late", "x", 5) is None


def test_racing_instances_admit_one(emulator: FirestoreEmulator) -> None:
    stores = [new_store(emulator) for _ in range(4)]
    wins: list[int] = []
    barrier = threading.Barrier(8)

    def attempt(n: int) -> None:
        barrier.wait()
        got = stores[n % 4].admit(Admission(claims=[("c:race", 60.0)], marker=f"pending:{n}", record=record(),
                                            counters=[Counter("rate:all", 60, 100)]))  # fmt: skip
        if got.ok:
            wins.append(n)

    threads = [threading.Thread(target=attempt, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 1
    assert stores[0].claim("c:race", "x", 5) == f"pending:{wins[0]}"
    assert stores[0].hit("rate:all", 60)[0] == 2  # duplicates are not counted


def test_scan_pages_through_ties(emulator: FirestoreEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(firestore_store, "_PAGE", 2)
    store = new_store(emulator)
    now = time.time()
    leads = [record(received=now - 100 + (i // 2), route="a" if i % 3 else "b") for i in range(7)]
    for lead in leads:
        assert store.save_lead(lead, None)
    scanned = [r["lead_id"] for r in store.scan_leads()]
    assert sorted(scanned) == sorted(r["lead_id"] for r in leads)
    assert [store.get_lead(i)["received_ts"] for i in scanned] == sorted(r["received_ts"] for r in leads)  # type: ignore[index]
    assert {r["lead_id"] for r in store.scan_leads(route="b")} == {r["lead_id"] for r in leads if r["route"] == "b"}
    assert len(list(store.scan_leads(since=now - 98, state="scheduled"))) == 3


@pytest.fixture
def dead_host(monkeypatch: pytest.MonkeyPatch) -> str:
    """A loopback port with nothing listening, as the store's address."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", f"127.0.0.1:{port}")
    return f"127.0.0.1:{port}"


@pytest.fixture
def hung_host(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A loopback port that accepts connections and never answers: a hung store."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    host = f"127.0.0.1:{server.getsockname()[1]}"
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", host)
    yield host
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    server.close()


def _every_operation(store: FirestoreStore) -> list[tuple[str, Any]]:
    lead = record()
    return [
        ("claim", lambda: store.claim("k", "v", 5)),
        ("hit", lambda: store.hit("k", 5)),
        ("admit", lambda: store.admit(Admission(claims=[("k", 5.0)], marker="pending:m", record=lead))),
        ("finish", lambda: store.finish(Finish(lead["lead_id"], lead, 1, [("k", 5.0)], "pending:m", "a"))),
        ("get_lead", lambda: store.get_lead(lead["lead_id"])),
        ("save_lead", lambda: store.save_lead(lead, 3)),
        ("due_leads", lambda: store.due_leads(time.time(), 10)),
        ("scan_leads", lambda: list(store.scan_leads(state="failed"))),
    ]


@pytest.mark.parametrize("where", ["dead_host", "hung_host"])
def test_a_dead_or_hung_store_is_503_within_a_few_timeouts(where: str, request: pytest.FixtureRequest) -> None:
    request.getfixturevalue(where)
    timeout = 0.5
    store = FirestoreStore(f"firestore://{PROJECT}/(default)", timeout=timeout)
    for name, operation in _every_operation(store):
        started = time.monotonic()
        with pytest.raises(StoreUnavailable) as caught:
            operation()
        took = time.monotonic() - started
        assert caught.value.status == 503, name
        # The first try and its one retry, or a lost Commit's try and its read-backs: a few timeouts, not
        # the library's minute of retries (the bound is generous: a loaded machine is slow to fail too).
        assert took < timeout * 5 + 10, (name, took)


@pytest.fixture(scope="module")
def own_emulator() -> Iterator[FirestoreEmulator]:
    """An emulator of this module's own, for the one test that stops it (started once per module)."""
    saved = os.environ.get("FIRESTORE_EMULATOR_HOST")
    emulator = FirestoreEmulator().start()
    # Not the address every other test talks to: the test that uses it points a proxy at it.
    if saved is None:
        del os.environ["FIRESTORE_EMULATOR_HOST"]
    else:
        os.environ["FIRESTORE_EMULATOR_HOST"] = saved
    yield emulator
    emulator.stop()  # the whole process group: gcloud, its script and the Java server


def _poll(check: Any, seconds: float = 30.0) -> Any:
    """`check()` until it answers without StoreUnavailable: a cold JVM's first answers may be slow."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return check()
        except StoreUnavailable:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_a_stopped_emulator_is_503(own_emulator: FirestoreEmulator, monkeypatch: pytest.MonkeyPatch,
                                   caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    """Issue 16: the emulator stops in the middle of a query's stream. The library used to call
    `retry._predicate` on retry=None and raise AttributeError; now it is StoreUnavailable (503), and
    every operation after it too. No timing is asserted: a loaded machine may be as slow as it likes."""
    proxy = H2Proxy(own_emulator.host)
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", proxy.host)
    try:
        store = FirestoreStore(own_emulator.store_url, timeout=5.0)
        _poll(lambda: store.claim("warm", "v", 60))
        big = {"adicional": {f"k{i}": "x" * 40 for i in range(20)}}
        now = time.time()
        for n in range(60):
            assert store.save_lead({**record(received=now - 100 + n), **big}, None)
        assert len(list(store.scan_leads())) == 60
        stopped: list[bool] = []

        def stop() -> None:
            own_emulator.stop()
            stopped.append(True)

        proxy.break_stream(1, then=stop)
        with pytest.raises(StoreUnavailable) as caught:
            list(store.scan_leads())
        assert stopped == [True]  # it was stopped mid-stream, after the first documents came
        assert caught.value.status == 503
        assert caught.value.error == "store_unavailable"
        assert "store error" in (caught.value.reason or "")
        for name, operation in _every_operation(store):
            with pytest.raises(StoreUnavailable):
                operation()
            assert name
    finally:
        proxy.stop()


SIMULATOR_TOKENS = ("fs-sweep-token-1",)


def test_a_query_broken_midway_makes_the_sweep_503_with_a_log_line(
    emulator: FirestoreEmulator, simulator: Simulator, tmp_path: Path
) -> None:
    """The deployed sweeper (`formcall_sweep`) on a store whose query stream breaks after its first
    documents and that then stays away: 503 store_unavailable and a log line, not a crash or a 500."""
    seeding = FirestoreStore(emulator.store_url, timeout=10.0)
    now = time.time()
    big = {"adicional": {f"k{i}": "x" * 40 for i in range(20)}}
    for n in range(60):  # enough documents that the answer comes in several frames
        assert seeding.save_lead(records.changed({**record(received=now - 100 + n), **big}, due_at=now - 10), None)
    lossy = H2Proxy(emulator.host)
    config = tmp_path / "formcall.toml"
    config.write_text(f'[routes.default]\npopup_uuid = "{POPUP}"\nrate_limit = false\n')
    env = {
        "FORMCALL_CONFIG": str(config),
        "FORMCALL_API_URL": simulator.api_url,
        "FORMCALL_SECURITY_TOKEN": SIMULATOR_TOKENS[0],
        "FORMCALL_STORE_URL": emulator.store_url,
        "FIRESTORE_EMULATOR_HOST": lossy.host,
    }
    try:
        with FunctionProcess(env, tmp_path / "sweep.log", target="formcall_sweep").start() as sweeper:
            lossy.break_stream(0)  # the first answer in several frames: the sweep's query of due leads
            answer = requests.post(sweeper.url, timeout=120)
    finally:
        lossy.stop()
    log = (tmp_path / "sweep.log").read_text(errors="replace")
    assert lossy.harmed == 1
    assert (answer.status_code, answer.json()["error"]) == (503, "store_unavailable")
    assert "AttributeError" not in log and "Traceback" not in log
    assert simulator.calls() == []
    lines = [json.loads(x) for x in log.splitlines() if x.startswith("{")]
    if not [e for e in lines if e.get("outcome") == "store_unavailable"]:
        # The store's part holds (503, no crash); the line is main.formcall_sweep's to write.
        pytest.xfail("main.formcall_sweep answers a store error 503 without writing a log line")


# -- a lost answer, resolved before anyone is answered (issue 16) --


@pytest.fixture
def proxy(emulator: FirestoreEmulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[H2Proxy]:
    lossy = H2Proxy(emulator.host)
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", lossy.host)
    yield lossy
    lossy.stop()


def _admission(lead: dict[str, Any]) -> Admission:
    return Admission(claims=[("c:lost", 600.0)], marker="pending:" + lead["lead_id"], record=lead,
                     counters=[Counter("rate:lost", 3600, 5)], optout="h-lost",
                     lease=("lease:" + lead["lead_id"], 30.0))  # fmt: skip


def _warm(proxy: H2Proxy) -> FirestoreStore:
    store = FirestoreStore(f"firestore://{PROJECT}/(default)", timeout=5.0)
    _poll(lambda: store.claim("warm", "v", 60))
    return store


def _kept(emulator: FirestoreEmulator) -> list[dict[str, Any]]:
    """What the sweeper and the `leads` command would see, through a store of its own."""
    other = FirestoreStore(emulator.store_url, timeout=10.0)
    return list(other.scan_leads())


def test_an_admission_whose_answer_is_lost_after_it_applied_is_kept_once(
    emulator: FirestoreEmulator, proxy: H2Proxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = _warm(proxy)
    lead = records.changed(record(), due_at=time.time() + 30)
    proxy.lose_answer(2)  # the read goes through; the Commit applies and its answer is lost
    got = store.admit(_admission(lead))
    assert proxy.harmed == 1
    assert got.ok  # read back: it was there, so the lead goes on
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", emulator.host)
    assert [r["lead_id"] for r in _kept(emulator)] == [lead["lead_id"]]
    other = FirestoreStore(emulator.store_url, timeout=10.0)
    assert other.claim("c:lost", "x", 5) == "pending:" + lead["lead_id"]
    assert other.hit("rate:lost", 3600)[0] == 2  # counted once
    assert [r["lead_id"] for r in other.due_leads(time.time() + 60, 10)] == [lead["lead_id"]]


def test_an_admission_whose_request_is_lost_is_sent_again_and_kept_once(
    emulator: FirestoreEmulator, proxy: H2Proxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = _warm(proxy)
    lead = records.changed(record(), due_at=time.time() + 30)
    proxy.lose_request(2)  # the Commit never arrives: read back, absent, fenced, decided again
    got = store.admit(_admission(lead))
    assert proxy.harmed == 1
    assert got.ok
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", emulator.host)
    assert [r["lead_id"] for r in _kept(emulator)] == [lead["lead_id"]]
    other = FirestoreStore(emulator.store_url, timeout=10.0)
    assert other.hit("rate:lost", 3600)[0] == 2  # counted once


def test_a_lost_admission_answered_503_leaves_nothing_the_sweeper_would_call(
    emulator: FirestoreEmulator, proxy: H2Proxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both Commits lost (the first and the one retry): 503, and nothing kept, now or later."""
    store = _warm(proxy)
    lead = records.changed(record(), due_at=time.time() + 30)
    # 1 read, 2 Commit (lost), 3 read back, 4 fence, 5 read, 6 Commit (lost), 7 read back, 8 fence.
    proxy.lose_request(2, 6)
    with pytest.raises(StoreUnavailable) as caught:
        store.admit(_admission(lead))
    assert proxy.harmed == 2
    assert caught.value.status == 503
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", emulator.host)
    assert _kept(emulator) == []
    other = FirestoreStore(emulator.store_url, timeout=10.0)
    assert other.due_leads(time.time() + 3600, 10) == []
    assert other.get_lead(lead["lead_id"]) is None
    assert other.claim("c:lost", "x", 5) is None  # no claim left to turn the resend into a duplicate
    other.release("c:lost", "x")
    # The record's document is fenced: a late arrival of the lost Commit (which creates it) cannot apply.
    from google.api_core.exceptions import AlreadyExists

    with pytest.raises(AlreadyExists):
        raw_client().collection("formcall_leads").document(lead["lead_id"]).create({"json": "{}"})
    # The sender's resend is a new lead, kept once.
    again = records.changed(record(), due_at=time.time() + 30)
    assert other.admit(_admission(again)).ok
    assert [r["lead_id"] for r in _kept(emulator)] == [again["lead_id"]]


@pytest.mark.parametrize("placed", [True, False], ids=["placed", "nothing-kept"])
def test_a_finish_whose_answer_is_lost_is_read_back(
    emulator: FirestoreEmulator, proxy: H2Proxy, monkeypatch: pytest.MonkeyPatch, placed: bool
) -> None:
    """The answer written, or the record deleted (a 5xx keeps nothing): its Commit's answer lost, the
    documents are read back and the caller goes on; the sweeper finds nothing due."""
    store = _warm(proxy)
    lead = records.changed(record(), due_at=time.time() + 30)
    assert store.admit(_admission(lead)).ok
    done = records.changed(lead, state="placed", due_at=None) if placed else None
    proxy.lose_answer(1)  # the finish's one Commit (this instance admitted: no read first)
    store.finish(Finish(lead["lead_id"], done, lead["version"], [("c:lost", 600.0)], "pending:" + lead["lead_id"],
                        '{"uuid":"u"}' if placed else None, "lease:" + lead["lead_id"]))  # fmt: skip
    assert proxy.harmed == 1
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", emulator.host)
    other = FirestoreStore(emulator.store_url, timeout=10.0)
    assert other.get_lead(lead["lead_id"]) == done
    assert other.due_leads(time.time() + 3600, 10) == []
    assert other.claim("c:lost", "x", 5) == ('{"uuid":"u"}' if placed else None)


def test_a_claim_whose_answer_is_lost_is_ours(emulator: FirestoreEmulator, proxy: H2Proxy) -> None:
    store = _warm(proxy)
    proxy.lose_answer(1)
    assert store.claim("c:mine", "pending:me", 60) is None  # not "held by pending:me"
    assert proxy.harmed == 1
    assert store.claim("c:mine", "x", 60) == "pending:me"


def test_one_transient_error_is_retried_once(emulator: FirestoreEmulator, proxy: H2Proxy) -> None:
    """Spec 8: one transient error (here a connection reset before the request) is retried once
    within the deadline; a second one is 503."""
    store = _warm(proxy)
    lead = records.changed(record(), due_at=time.time())
    assert store.save_lead(lead, None)
    proxy.lose_request(1)
    assert store.get_lead(lead["lead_id"]) == lead
    assert proxy.harmed == 1
    proxy.lose_request(1)
    assert len(store.due_leads(time.time() + 3600, 10)) == 1
    proxy.lose_request(1)
    assert store.hit("rate:t", 60)[0] == 1  # a read retried, then the Commit
    proxy.lose_request(1, 2)
    with pytest.raises(StoreUnavailable) as caught:
        store.get_lead(lead["lead_id"])
    assert proxy.harmed == 2
    assert caught.value.status == 503


def test_the_library_is_a_known_major_version() -> None:
    """The store uses the public API of google-cloud-firestore 2.x. A new major version may change
    it: this fails then (and not on a patch or minor release), to be read and tested before upgrading."""
    from importlib.metadata import version

    installed = version("google-cloud-firestore")
    assert installed.split(".")[0] == "2", f"google-cloud-firestore {installed}: review firestore.py for 3.x"
    pinned = [line for line in (ROOT / "requirements.txt").read_text().splitlines()
              if line.startswith("google-cloud-firestore==")]  # fmt: skip
    assert len(pinned) == 1
    assert pinned[0].split("==")[1].split(".")[0] == "2"


def test_no_private_part_of_the_library_is_used() -> None:
    """Only our own `_names`: none of google-cloud-firestore's, api_core's or grpc's."""
    source = (ROOT / "formcall_webhook" / "stores" / "firestore.py").read_text()
    ours = {"_Doc", "_Writes", "_Lost", "_NotApplied", "_Operation"}
    for line in source.splitlines():
        for match in re.finditer(r"(\w+)\.(_\w+)", line):
            owner, name = match.groups()
            if name.startswith("__") and name.endswith("__"):
                continue  # Python's own (err.__cause__)
            assert owner in ("self", "fence", "op", "writes") or owner in ours, line
    for forbidden in ("_firestore_api", "_rpc_metadata", "_document_path", "_write_pbs", "_database_string",
                      "_helpers", "_predicate"):  # fmt: skip
        assert forbidden not in source, forbidden


def test_importing_the_stores_leaves_the_firestore_client_unloaded() -> None:
    code = (
        "import sys, formcall_webhook.stores, formcall_webhook.stores.firestore\n"
        "formcall_webhook.stores.open_store('memory://')\n"
        "print([m for m in sys.modules if m.startswith(('google.cloud.firestore', 'grpc'))])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"
