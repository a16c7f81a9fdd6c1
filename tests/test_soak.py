"""A short soak in `make test`; `make soak` runs 2,000 leads per store (tests/soak.py)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests import soak

# The soak: function processes, sweepers and real stores for a few seconds each.
pytestmark = pytest.mark.slow

# Each store's 100 leads arrive evenly over this long.
SOAK_SECONDS = 6.0


@pytest.fixture(scope="module")
def soaked(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> dict[str, soak.Counts | BaseException]:
    """The three stores' soaks, run side by side: each waits on its processes far more than it computes
    (a tenth of a core), so together they take little more than the slowest instead of the sum. The
    Firestore soak goes first and alone while its leads arrive (a cold Firestore client's first requests
    are the ones issue 16 saw fail, and they must not meet two other soaks' start-up); memory:// and Redis
    start once its leads are in. A store whose server is missing holds the skip its session fixture
    raised (CI fails there instead)."""
    servers: dict[str, Any] = {"memory": None}
    results: dict[str, soak.Counts | BaseException] = {}
    for store, fixture in (("redis", "redis_server"), ("firestore", "firestore_emulator")):
        try:
            servers[store] = request.getfixturevalue(fixture)
        except pytest.skip.Exception as skipped:
            results[store] = skipped

    firestore_sent = threading.Event()

    def run(store: str) -> soak.Counts:
        if store != "firestore" and "firestore" in servers:
            firestore_sent.wait(SOAK_SECONDS + 120)
        try:
            return _run(store)
        finally:
            if store == "firestore":
                firestore_sent.set()

    def _run(store: str) -> soak.Counts:
        return soak.run(
            100,
            store=store,
            seconds=SOAK_SECONDS,
            on_sent=firestore_sent.set if store == "firestore" else None,
            workdir=tmp_path_factory.mktemp(f"soak-{store}"),
            redis=servers[store] if store == "redis" else None,
            firestore=servers[store] if store == "firestore" else None,
        )

    with ThreadPoolExecutor(max_workers=len(servers)) as pool:
        futures = {store: pool.submit(run, store) for store in servers}
    for store, future in futures.items():
        error = future.exception()
        results[store] = error if error is not None else future.result()
    return results


@pytest.mark.parametrize("store", soak.STORES)
def test_no_lead_lost_or_rung_twice(store: str, soaked: dict[str, soak.Counts | BaseException]) -> None:
    result = soaked[store]
    if isinstance(result, BaseException):
        raise result
    counts = result
    print(soak.table([counts]))
    # No one rung twice, whatever the rows say.
    assert counts.called_twice == 0
    # On documented rows, a lost answer FormCall never placed and another lead's lost answer whose call it
    # did place, in one window (this soak's 6 s are inside one), cannot be told apart (spec 8): both share
    # that call with uuid_certain: false, and the never-rung one is the only kind of lead the soak may count
    # lost here (make soak prints each with where it came from). Every other problem is a defect.
    shared = [p for p in counts.problems if p.endswith("(uuid_certain: false) but FormCall never rang it")]
    assert [p for p in counts.problems if p not in shared] == []
    assert counts.lost == counts.uncertain_not_called == len(shared)
    # The weather happened: every kind of stretch, and random faults on top.
    assert {"down", "error2", "pending", "lost"} <= set(counts.stretches)
    assert counts.faults_injected > 0
    # Every distinct lead ended in one of the three states, or was a mistyped number answered 422.
    mistyped = sum(1 for i in range(counts.leads) if soak.mistyped(i))
    assert counts.leads_placed + counts.leads_pending + counts.leads_failed + mistyped == counts.leads
    # Each call rang one lead; the leads sharing a call FormCall placed for another are over and above.
    assert counts.calls_placed == counts.leads_placed - counts.uncertain_not_called
    # FormCall refused three requests for good: those leads failed, each with its ERROR lead_failed line.
    assert counts.leads_failed >= 3
    # FormCall down or out of service hours: the function kept the leads and answered 200, never a 5xx.
    assert counts.answered["scheduled"] > 0
    assert counts.answered["pending"] > 0
    assert counts.leads_pending > 0
    assert counts.answered["5xx"] == 0
    # Every resend was answered as the lead it repeats, never kept as a second lead.
    assert counts.resends > 0
    assert counts.answered["duplicate"] == counts.resends
    assert counts.submissions == counts.leads + counts.resends + counts.retries
