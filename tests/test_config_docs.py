"""docs/configuration.md lists every key the config reader accepts, and no key it refuses (spec 2).

The reader's keys are asked of the reader itself: a config with a key no table knows is refused with the
table's known keys, which is what a user reads too."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from formcall_webhook import config
from formcall_webhook.errors import ConfigErrors

DOC = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"
POPUP = "e5c98214-d0f6-11e1-8c30-001d09ef4a24"
UNKNOWN = "zz_no_such_key"
# Where the doc's table for each table of the file is, and a config with an unknown key in that table.
TABLES = {
    "[formcall]": ("#### `[formcall]`", f"[formcall]\n{UNKNOWN} = 1\n"),
    "a route": ("#### Route keys", f"[routes.default]\npopup_uuid = '{POPUP}'\n{UNKNOWN} = 1\n"),
    "[defaults]": ("#### Route keys", f"[defaults]\n{UNKNOWN} = 1\n[routes.default]\npopup_uuid = '{POPUP}'\n"),
    "[leads]": ("#### `[leads]`", f"[leads]\n{UNKNOWN} = 1\n[routes.default]\npopup_uuid = '{POPUP}'\n"),
}


def accepted_keys(tmp_path: Path, text: str) -> set[str]:
    """The keys the reader says it knows in the table where `text` has an unknown key."""
    path = tmp_path / "formcall.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigErrors) as caught:
        config.load({}, path)
    (problem,) = [err.problem for err in caught.value.errors if err.key.endswith(UNKNOWN)]
    match = re.fullmatch(r"unknown key; known keys here: (.+)", problem)
    assert match, problem
    return set(match.group(1).split(", "))


def documented_keys(heading: str, doc: str | None = None) -> set[str]:
    """The keys named in the first column of the table under `heading` (several per row allowed)."""
    lines = (DOC.read_text(encoding="utf-8") if doc is None else doc).splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(heading))
    keys: set[str] = set()
    in_table = False
    for line in lines[start + 1 :]:
        if line.startswith("|"):
            in_table = True
            first = line.split("|")[1]
            keys.update(re.findall(r"`([a-z_]+)`", first))
        elif in_table or line.startswith("#"):
            break
    keys.discard("key")
    return keys


@pytest.mark.parametrize("table", sorted(TABLES))
def test_the_configuration_doc_lists_every_key_the_reader_accepts(tmp_path: Path, table: str) -> None:
    heading, text = TABLES[table]
    accepted = accepted_keys(tmp_path, text)
    documented = documented_keys(heading)
    assert accepted - documented == set(), f"{table}: accepted but not in docs/configuration.md"
    assert documented - accepted == set(), f"{table}: in docs/configuration.md but refused"


def test_the_doc_check_sees_a_missing_row() -> None:
    """A row taken out of the table is a key the check no longer finds documented."""
    doc = DOC.read_text(encoding="utf-8")
    row = next(line for line in doc.splitlines() if line.startswith("| `pace` |"))
    assert "pace" in documented_keys("#### Route keys", doc)
    assert "pace" not in documented_keys("#### Route keys", doc.replace(row + "\n", ""))
    assert "recall" in documented_keys("#### Route keys", doc.replace(row + "\n", ""))
