"""Shared fixtures: an isolated environment, and helpers to build requests for the pipeline."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SAMPLES = Path(__file__).parent / "samples"
ROOT = Path(__file__).parent.parent
POPUP = "e5c98214-d0f6-11e1-8c30-001d09ef4a24"


@pytest.fixture(autouse=True)
def _isolated_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """No FORMCALL_* or Google variable from the developer's shell leaks into a test."""
    for name in list(os.environ):
        if name.startswith(("FORMCALL_", "GOOGLE_", "GCP_", "HUBSPOT_")):
            monkeypatch.delenv(name)
