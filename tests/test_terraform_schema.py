"""Every resource, attribute and block name in infra/terraform exists in the google provider's schema.

Terraform cannot download providers here, so `terraform validate` cannot run. The schema is extracted
from the provider's own Go source at the version versions.tf pins (infra/terraform/schema/extract.py,
kept in infra/terraform/schema/google.json with its version and commit), and this test holds every
.tf file to it, offline: a misspelt argument, a block written as an attribute, an output-only field
set, or a resource the provider lacks fails here instead of at `terraform plan`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import hcl2
import pytest
from hcl2 import SerializationOptions

ROOT = Path(__file__).resolve().parent.parent
MODULE = ROOT / "infra" / "terraform"
SCHEMA = json.loads((MODULE / "schema" / "google.json").read_text(encoding="utf-8"))
TF_FILES = sorted(MODULE.rglob("*.tf"))
META = {"count", "for_each", "depends_on", "lifecycle", "provider", "provisioner", "connection"}
_OPTIONS = SerializationOptions(with_comments=False, explicit_blocks=True, strip_string_quotes=True)


def parse(path: Path) -> dict[str, Any]:
    with path.open() as handle:
        return hcl2.load(handle, serialization_options=_OPTIONS)


def google_resources() -> list[tuple[str, str, str, dict[str, Any]]]:
    found = []
    for path in TF_FILES:
        for block in parse(path).get("resource", []):
            for rtype, named in block.items():
                for name, body in named.items():
                    if name == "__is_block__":
                        continue
                    found.append((path.relative_to(MODULE).as_posix(), rtype, name, body))
    return found


def check_body(
    where: str, body: dict[str, Any], schema: dict[str, Any], problems: list[str], counts: dict[str, int]
) -> None:
    for key, value in body.items():
        if key == "__is_block__":
            continue
        if key == "dynamic":
            for dynamic in value:
                for name, spec in dynamic.items():
                    if name == "__is_block__":
                        continue
                    entry = schema.get(name)
                    if entry is None or "block" not in entry:
                        problems.append(f"{where}: dynamic {name!r} is no block of the provider's schema")
                        continue
                    counts["blocks"] += 1
                    for content in spec.get("content", []):
                        check_body(f"{where}.{name}", content, entry["block"], problems, counts)
            continue
        entry = schema.get(key)
        if entry is None:
            problems.append(f"{where}: {key!r} is not in the provider's schema")
            continue
        is_block = (
            isinstance(value, list) and value and all(isinstance(v, dict) and v.get("__is_block__") for v in value)
        )
        if is_block:
            if "block" not in entry:
                problems.append(f"{where}: {key!r} is written as a block but is an attribute")
                continue
            counts["blocks"] += 1
            for item in value:
                check_body(f"{where}.{key}", item, entry["block"], problems, counts)
        else:
            counts["attributes"] += 1
            if "block" in entry and entry.get("type") in {"list", "set"}:
                problems.append(f"{where}: {key!r} is a block, written as an attribute")
            if not (entry.get("required") or entry.get("optional")):
                problems.append(f"{where}: {key!r} is output-only (computed): it cannot be set")


def test_the_extract_is_of_the_pinned_provider_version() -> None:
    versions = (MODULE / "versions.tf").read_text()
    (pinned,) = re.findall(r'source\s*=\s*"hashicorp/google"\s*\n\s*version\s*=\s*"~> ([0-9.]+)"', versions)
    assert SCHEMA["version"] in {pinned, f"{pinned}.0"}, "regenerate: infra/terraform/schema/extract.py"
    assert re.fullmatch(r"[0-9a-f]{40}", SCHEMA["commit"])
    assert SCHEMA["provider"] == "registry.terraform.io/hashicorp/google"


def test_every_resource_attribute_and_block_is_in_the_provider_schema() -> None:
    problems: list[str] = []
    counts = {"resources": 0, "attributes": 0, "blocks": 0}
    used_types: set[str] = set()
    for path, rtype, name, body in google_resources():
        if not rtype.startswith("google_"):
            continue
        used_types.add(rtype)
        counts["resources"] += 1
        schema = SCHEMA["resources"].get(rtype)
        if schema is None:
            problems.append(f"{path}: {rtype} is not in the extract (add it to extract.py's RESOURCES)")
            continue
        body = {k: v for k, v in body.items() if k not in META}
        check_body(f"{path}: {rtype}.{name}", body, schema, problems, counts)
        present = set(body) | {name for dynamic in body.get("dynamic", []) for name in dynamic}
        missing = sorted(k for k, v in schema.items() if v.get("required") and k not in present)
        if missing:
            problems.append(f"{path}: {rtype}.{name} lacks the required {missing}")
    assert not problems, "\n".join(problems)
    # What this checked (the closing note quotes these).
    assert counts["resources"] >= 25 and counts["attributes"] >= 150 and counts["blocks"] >= 40, counts
    assert used_types <= set(SCHEMA["resources"])


def _mutated(text: str) -> list[str]:
    problems: list[str] = []
    counts = {"resources": 0, "attributes": 0, "blocks": 0}
    for block in hcl2.loads(text, serialization_options=_OPTIONS)["resource"]:
        for rtype, named in block.items():
            for name, body in named.items():
                if name != "__is_block__":
                    body = {k: v for k, v in body.items() if k not in META}
                    check_body(f"{rtype}.{name}", body, SCHEMA["resources"][rtype], problems, counts)
    return problems


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ('resource "google_cloud_scheduler_job" "x" {\n  name = "a"\n  regoin = "b"\n}\n', "'regoin' is not"),
        (
            'resource "google_storage_bucket" "x" {\n  name = "a"\n  location = "b"\n'
            "  lifecycle_rule {\n    condition {\n      agee = 3\n    }\n  }\n}\n",
            "'agee' is not",
        ),
        ('resource "google_service_account" "x" {\n  account_id = "a"\n  email = "b"\n}\n', "output-only"),
        ('resource "google_firestore_field" "x" {\n  collection = "c"\n  field = "f"\n  ttl_config = {}\n}\n', "block"),
    ],
)
def test_the_check_catches_a_wrong_name(text: str, says: str) -> None:
    problems = _mutated(text)
    assert any(says in p for p in problems), problems
