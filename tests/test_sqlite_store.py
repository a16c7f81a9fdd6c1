"""sqlite://: one file that several processes on one machine share (the ledger's contract runs against it
in tests/test_ledger.py); here what only processes can show: a claim is taken by one of them, never two."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from formcall_webhook.stores import StoreUnavailable, open_store
from tests.harness import ROOT

KEYS = 400
# Each process says it is ready, waits for the start line on stdin (so they all race), then claims every
# key with its own marker and prints the keys it got.
_CLAIMER = """
import sys
from formcall_webhook.stores import open_store
store = open_store(sys.argv[1])
store.get_lead("ld_warm")
print("ready", flush=True)
sys.stdin.readline()
got = [f"k{i}" for i in range(int(sys.argv[3])) if store.claim(f"k{i}", sys.argv[2], 60) is None]
print(" ".join(got))
"""


def test_two_processes_never_both_take_a_claim(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path / 'leads.db'}"
    open_store(url).put("warm", "x", 60)  # the file and its schema exist before the race
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", _CLAIMER, url, f"p{n}", str(KEYS)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(3)
    ]
    for racer in racers:
        assert racer.stdout is not None
        assert racer.stdout.readline().strip() == "ready"
    won = []
    for racer in racers:
        assert racer.stdin is not None
        racer.stdin.write("go\n")
        racer.stdin.flush()
    for racer in racers:
        out, err = racer.communicate(timeout=120)
        assert racer.returncode == 0, err
        won.append(set(out.split()))
    assert sum(len(w) for w in won) == KEYS
    assert set().union(*won) == {f"k{i}" for i in range(KEYS)}
    store = open_store(url)
    holders = {store.claim(f"k{i}", "late", 60) for i in range(KEYS)}
    assert holders <= {"p0", "p1", "p2"}


def test_a_relative_path_is_the_current_directory_and_the_folder_is_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    store = open_store("sqlite://.formcall/leads.db")
    store.put("k", "v", 60)
    assert (tmp_path / ".formcall" / "leads.db").is_file()
    assert open_store(f"sqlite://{tmp_path}/.formcall/leads.db").claim("k", "other", 60) == "v"


def test_a_url_without_a_file_or_an_unwritable_one_is_store_unavailable(tmp_path: Path) -> None:
    with pytest.raises(StoreUnavailable):
        open_store("sqlite://").put("k", "v", 1)
    blocker = tmp_path / "file"
    blocker.write_text("", encoding="utf-8")
    with pytest.raises(StoreUnavailable):
        open_store(f"sqlite://{blocker}/leads.db").get_lead("ld_x")
