"""A short soak in `make test`; `make soak` runs 2,000 leads per store (tests/soak.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import soak


@pytest.mark.parametrize("store", ["memory", "redis"])
def test_every_lead_called_exactly_once_or_answered_4xx(store: str, tmp_path: Path) -> None:
    counts = soak.run(100, store=store, fault_rate=0.15, workdir=tmp_path)
    assert counts.problems == []
    assert counts.faults_injected > 0
    assert counts.retries > 0
    assert counts.resends > 0
    assert counts.gave_up == 0
    assert counts.calls_placed + counts.answered_4xx == counts.leads
    # Every resend, and every lost answer settled from FormCall's list, was suppressed as a duplicate.
    assert counts.duplicates >= counts.resends
