"""A short soak in `make test`; `make soak` runs 2,000 leads per store (tests/soak.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import soak

# The soak: function processes, sweepers and real stores for a few seconds each.
pytestmark = pytest.mark.slow


@pytest.mark.parametrize("store", soak.STORES)
def test_no_lead_lost_or_rung_twice(store: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    # Session fixtures: a missing redis-server or emulator skips here (and fails under CI).
    redis = request.getfixturevalue("redis_server") if store == "redis" else None
    firestore = request.getfixturevalue("firestore_emulator") if store == "firestore" else None
    counts = soak.run(
        100,
        store=store,
        seconds=6,
        workdir=tmp_path,
        redis=redis,
        firestore=firestore,
        rich_rows=True,  # until settle uses documented rows
    )
    print(soak.table([counts]))
    assert counts.problems == []
    assert (counts.lost, counts.called_twice) == (0, 0)
    # The weather happened: both kinds of stretch, and random faults on top.
    assert {"down", "error2", "pending", "lost"} <= set(counts.stretches)
    assert counts.faults_injected > 0
    # Every distinct lead ended in one of the three states, or was a mistyped number answered 422.
    mistyped = sum(1 for i in range(counts.leads) if soak.mistyped(i))
    assert counts.leads_placed + counts.leads_pending + counts.leads_failed + mistyped == counts.leads
    assert counts.calls_placed == counts.leads_placed
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
