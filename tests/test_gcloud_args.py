"""Every gcloud command infra/deploy.sh runs, through the real gcloud's argument parser.

With an empty CLOUDSDK_CONFIG and no account, gcloud checks a command's flags offline and then stops
with "You do not currently have an active account": a misspelt flag ("unrecognized arguments"), a
missing companion ("--memory must be specified") or a malformed value fails before that. So each
command deploy.sh --dry-run prints is run for real, and must fail for the account alone.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.gcloud_batch import GCLOUD, NO_ACCOUNT, run_batch, run_offline

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "infra" / "deploy.sh"
POPUP = "e5c98214-d0f6-11e1-8c30-001d09ef4a24"

if GCLOUD is None and os.environ.get("CI"):
    pytest.fail("gcloud is not installed, and CI must check deploy.sh's commands with it", pytrace=False)
pytestmark = pytest.mark.skipif(GCLOUD is None, reason="gcloud is not installed (Google Cloud SDK)")

# Every branch of deploy.sh: Firestore with monitoring and an org that forbids allUsers; Memorystore
# through Direct VPC egress, private, with an existing build account and secrets left to be pinned;
# memory:// (no sweeper); a named Firestore database.
RUNS = {
    "firestore-monitoring": [
        *("--popup-uuid", POPUP, "--token-version", "3", "--secret", "HUBSPOT_APP_SECRET=hubspot-app:2"),
        *("--secret", "/etc/secrets/zapier=zapier-token:1", "--monitoring", "ops@acme.cl", "--no-invoker-iam-check"),
    ],
    "redis-private": [
        *("--popup-uuid", POPUP, "--secret", "FORMCALL_STORE_URL=store-url", "--network", "default"),
        *("--subnet", "formcall", "--private", "--build-service-account", "builder@acme-prod.iam.gserviceaccount.com"),
    ],
    "memory": ["--popup-uuid", POPUP, "--store-url", "memory://", "--max-instances", "1", "--token-version", "1"],
    # A region without Cloud Scheduler: the job goes to the nearest one (us-central1).
    "us-south1": ["--popup-uuid", POPUP, "--token-version", "1", "--region", "us-south1"],
    "named-database": [
        *("--popup-uuid", POPUP, "--store-url", "firestore://acme-prod/formcall", "--firestore-location", "nam5"),
        *("--token-version", "2", "--concurrency", "1", "--memory", "512Mi"),
    ],
}


def dry_run(args: list[str]) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FORMCALL_", "COVERAGE_"))}
    for name in ("PROJECT", "REGION", "CONFIG", "PYTHON"):
        env.pop(name, None)
    result = subprocess.run(
        ["bash", str(DEPLOY), "--dry-run", "--project", "acme-prod", "--python", sys.executable, *args],
        capture_output=True,
        text=True,
        env=env,
        stdin=subprocess.DEVNULL,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def gcloud_commands(printout: str) -> list[list[str]]:
    """The gcloud commands of a dry run's lines: `a >/dev/null 2>&1 || b`, `a && b || c`, `a | grep -q x || b`."""
    commands = []
    for line in printout.splitlines():
        if not line.startswith("gcloud "):
            continue
        line = line.replace(" >/dev/null 2>&1", "")
        for part in re.split(r" \|\| | && | \| ", line):
            words = shlex.split(part)
            if words and words[0] == "gcloud":
                commands.append(words)
    return commands


def placeholders_filled(words: list[str]) -> list[str]:
    """A dry run shows versions it would look up as <newest-enabled-version-of-S>; gcloud wants a number."""
    return [re.sub(r"<newest-enabled-version-of-[^>]+>", "7", word) for word in words]


@pytest.fixture(scope="module")
def commands() -> list[list[str]]:
    with ThreadPoolExecutor(len(RUNS)) as pool:
        printouts = dict(zip(RUNS, pool.map(dry_run, RUNS.values()), strict=True))
    found: dict[str, list[str]] = {}
    for printout in printouts.values():
        for words in gcloud_commands(printout):
            words = placeholders_filled(words)
            found.setdefault(shlex.join(words), words)
    return list(found.values())


def test_the_dry_runs_cover_every_kind_of_command(commands: list[list[str]]) -> None:
    groups = {" ".join(w for w in words[1:4] if not w.startswith("-")) for words in commands}
    expected = {
        "services enable",
        "iam service-accounts",
        "projects add-iam-policy-binding",
        "secrets create",
        "secrets add-iam-policy-binding",
        "secrets versions",
        "firestore databases create",
        "firestore fields ttls",
        "firestore indexes composite",
        "functions deploy formcall-webhook",
        "functions deploy formcall-sweep",
        "functions add-invoker-policy-binding formcall-sweep",
        "run deploy formcall-webhook",
        "run deploy formcall-sweep",
        "run services add-iam-policy-binding",
        "run services describe",
        "firestore indexes fields",
        "scheduler jobs create",
        "scheduler jobs update",
        "logging metrics create",
        "beta monitoring channels",
        "alpha monitoring policies",
        "monitoring dashboards create",
    }
    missing = {name for name in expected if not any(group.startswith(name) for group in groups)}
    assert not missing, f"no dry run printed: {sorted(missing)}"


def test_every_command_gets_past_gcloud_argument_parsing(commands: list[list[str]]) -> None:
    results = run_batch(commands, processes=2)
    refused = [
        f"{shlex.join(words)}\n    -> {output.strip().splitlines()[0] if output.strip() else f'exit {code}'}"
        for words, code, output in results
        if code == 0 or NO_ACCOUNT not in output
    ]
    assert not refused, "gcloud refused these before asking for an account:\n" + "\n".join(refused)


def test_the_check_itself_catches_a_bad_flag() -> None:
    """The premise: offline, gcloud still refuses unknown flags and incomplete combinations, both through its
    launcher and through one batch process, where a good command between two bad ones still gets as far."""
    base = ["gcloud", "functions", "deploy", "x", "--gen2", "--region", "southamerica-west1", "--project", "acme-prod"]
    bad, incomplete, valid = [*base, "--bogus-flag"], [*base, "--cpu", "1"], [*base, "--memory", "256Mi", "--cpu", "1"]
    with ThreadPoolExecutor(4) as pool:
        batch = pool.submit(run_batch, [bad, valid, incomplete, valid])
        alone = list(pool.map(run_offline, [bad, incomplete, valid]))
        batched = batch.result()
    for (_, bad_code, bogus), (_, cpu_code, cpu_alone), (_, valid_code, ok) in (
        alone,
        [batched[0], batched[2], batched[1]],
    ):
        assert bad_code != 0 and "unrecognized arguments" in bogus
        assert cpu_code != 0 and "--memory must be specified" in cpu_alone
        assert valid_code != 0 and NO_ACCOUNT in ok
    assert NO_ACCOUNT in batched[3][2] and "unrecognized" not in batched[3][2] and "--memory must" not in batched[3][2]
