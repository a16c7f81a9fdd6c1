"""Every resource where Google offers its service: infra/locations.py's table, and both deploy paths held to it.

deploy.sh runs for real with --dry-run (a `gcloud` on PATH that records any call: there must be none);
Terraform's variable validations run for real with `terraform plan` on a copy of variables.tf and the
table, which needs no provider (nothing is downloaded).
"""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "infra" / "deploy.sh"
MODULE = ROOT / "infra" / "terraform"
POPUP = "e5c98214-d0f6-11e1-8c30-001d09ef4a24"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("infra_locations", ROOT / "infra" / "locations.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


locations = _load()


# --- The table ----------------------------------------------------------------------------------


def test_the_table_names_every_service_the_deploy_uses_with_its_source_and_date() -> None:
    assert set(locations.OFFERED) == {
        "functions",
        "firestore",
        "scheduler",
        "memorystore",
        "secretmanager",
        "monitoring",
    }
    assert set(locations.SOURCES) == set(locations.OFFERED) == set(locations.NAMES)
    assert all(url.startswith("https://") for url in locations.SOURCES.values())
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", locations.READ_ON)
    for service, offered in locations.OFFERED.items():
        assert offered, service
        regional = offered - {"global", "nam5", "eur3"}
        assert regional <= locations.REGIONS.keys(), (
            f"{service}: no town for {sorted(regional - locations.REGIONS.keys())}"
        )


def test_santiago_runs_functions_firestore_and_memorystore_but_not_scheduler() -> None:
    for service in ("functions", "firestore", "memorystore"):
        assert "southamerica-west1" in locations.OFFERED[service], service
    assert "southamerica-west1" not in locations.OFFERED["scheduler"]
    assert locations.nearest("scheduler", "southamerica-west1") == "southamerica-east1"


def test_nearest_is_the_closest_region_offering_the_service() -> None:
    for region in sorted(locations.OFFERED["functions"]):
        chosen = locations.nearest("scheduler", region)
        assert chosen in locations.OFFERED["scheduler"]
        if region in locations.OFFERED["scheduler"]:
            assert chosen == region
            continue
        best = min(locations.distance_km(region, other) for other in locations.OFFERED["scheduler"])
        assert locations.distance_km(region, chosen) == best, region


def test_the_distance_is_a_great_circle_in_km() -> None:
    # Santiago to São Paulo is about 2,600 km; a region is 0 km from itself.
    assert 2_500 < locations.distance_km("southamerica-west1", "southamerica-east1") < 2_700
    assert locations.distance_km("us-central1", "us-central1") == 0


def test_terraform_copy_of_the_table_is_current() -> None:
    assert (MODULE / "locations.tf.json").read_text(encoding="utf-8") == locations.terraform_text(), (
        "run: python3 infra/locations.py terraform"
    )


# --- deploy.sh ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fake_gcloud(tmp_path_factory: pytest.TempPathFactory) -> Path:
    bin_dir = tmp_path_factory.mktemp("bin")
    script = bin_dir / "gcloud"
    script.write_text(f'#!/bin/sh\necho "$@" >> "{bin_dir / "gcloud-called"}"\nexit 3\n')
    script.chmod(0o755)
    return bin_dir


def dry_run(fake_gcloud: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("FORMCALL_", "COVERAGE_")) and name not in {"PROJECT", "REGION", "CONFIG", "PYTHON"}
    }
    env["PATH"] = f"{fake_gcloud}{os.pathsep}{env.get('PATH', '')}"
    result = subprocess.run(
        ["bash", str(DEPLOY), "--dry-run", "--project", "acme-prod", "--python", sys.executable, *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=fake_gcloud,
        stdin=subprocess.DEVNULL,
        timeout=120,
        check=False,
    )
    assert not (fake_gcloud / "gcloud-called").exists(), "deploy.sh called gcloud"
    return result


def commands(printout: str) -> list[list[str]]:
    found = []
    for line in printout.splitlines():
        if line.startswith("gcloud "):
            for part in re.split(r" \|\| | && | \| ", line.replace(" >/dev/null 2>&1", "")):
                words = shlex.split(part)
                if words and words[0] == "gcloud":
                    found.append(words)
    return found


def flag(words: list[str], name: str) -> str | None:
    for index, word in enumerate(words):
        if word == name:
            return words[index + 1]
        if word.startswith(f"{name}="):
            return word.split("=", 1)[1]
    return None


def resource_locations(printout: str) -> list[tuple[str, str, str]]:
    """(service, location, command) for every command that places or addresses a regional resource."""
    placed = []
    for words in commands(printout):
        text = shlex.join(words[:4])
        if words[1:3] == ["functions", "deploy"] or words[1] in {"functions", "run"}:
            location = flag(words, "--region")
            if location:
                placed.append(("functions", location, text))
        elif words[1] == "scheduler":
            placed.append(("scheduler", flag(words, "--location") or "", text))
        elif words[1:4] == ["firestore", "databases", "create"]:
            placed.append(("firestore", flag(words, "--location") or "", text))
        elif words[1] in {"secrets", "logging", "monitoring", "beta", "alpha"}:
            assert flag(words, "--location") is None and flag(words, "--region") is None, text
    return placed


BASE = ("--popup-uuid", POPUP, "--token-version", "1")


@pytest.mark.parametrize(
    ("region", "expected_scheduler"),
    [("southamerica-west1", "southamerica-east1"), ("us-central1", "us-central1"), ("europe-west1", "europe-west1")],
)
def test_every_resource_of_a_dry_run_is_where_its_service_is_offered(
    fake_gcloud: Path, region: str, expected_scheduler: str
) -> None:
    result = dry_run(
        fake_gcloud, *BASE, "--region", region, "--firestore-location", region, "--monitoring", "o@acme.cl"
    )
    assert result.returncode == 0, result.stderr
    placed = resource_locations(result.stdout)
    services = {service for service, _, _ in placed}
    assert services == {"functions", "scheduler", "firestore"}
    for service, location, command in placed:
        assert location in locations.OFFERED[service], f"{command}: {service} is not offered in {location}"
    assert {location for service, location, _ in placed if service == "scheduler"} == {expected_scheduler}
    assert {location for service, location, _ in placed if service == "functions"} == {region}
    assert f"sweep job in {expected_scheduler}" in result.stdout


def test_a_region_without_scheduler_gets_the_nearest_one(fake_gcloud: Path) -> None:
    assert "us-south1" in locations.OFFERED["functions"] and "us-south1" not in locations.OFFERED["scheduler"]
    result = dry_run(fake_gcloud, *BASE, "--region", "us-south1")
    assert result.returncode == 0, result.stderr
    scheduler = {location for service, location, _ in resource_locations(result.stdout) if service == "scheduler"}
    assert scheduler == {"us-central1"} == {locations.nearest("scheduler", "us-south1")}


def test_an_explicit_scheduler_region_is_used(fake_gcloud: Path) -> None:
    result = dry_run(fake_gcloud, *BASE, "--scheduler-region", "us-east1")
    assert result.returncode == 0, result.stderr
    scheduler = {location for service, location, _ in resource_locations(result.stdout) if service == "scheduler"}
    assert scheduler == {"us-east1"}


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("--region", "mars-central1"), "Cloud Run functions is not offered in mars-central1"),
        (("--scheduler-region", "southamerica-west1"), "Cloud Scheduler is not offered in southamerica-west1"),
        (("--firestore-location", "mars-central1"), "Firestore is not offered in mars-central1"),
    ],
)
def test_an_impossible_location_is_refused_before_any_command(
    fake_gcloud: Path, args: tuple[str, ...], says: str
) -> None:
    result = dry_run(fake_gcloud, *BASE, *args)
    assert result.returncode == 2
    assert says in result.stderr
    assert "nothing was created" in result.stderr
    assert "gcloud" not in result.stdout


def test_memory_store_needs_no_scheduler(fake_gcloud: Path) -> None:
    # No sweeper, no job: a region without Scheduler is fine, and --scheduler-region is not checked.
    result = dry_run(fake_gcloud, *BASE, "--store-url", "memory://", "--max-instances", "1", "--region", "us-south1")
    assert result.returncode == 0, result.stderr
    assert not [words for words in commands(result.stdout) if words[1] == "scheduler"]


# --- Terraform's validations, run for real --------------------------------------------------------

TERRAFORM = shutil.which("terraform")
needs_terraform = pytest.mark.skipif(TERRAFORM is None, reason="terraform is not installed")
if TERRAFORM is None and os.environ.get("CI"):
    pytest.fail("terraform is not installed, and CI must run its variable validations", pytrace=False)

HARNESS = """
locals {
  scheduler_region = %s
}
output "scheduler_region" { value = local.scheduler_region }
"""


@pytest.fixture(scope="module")
def terraform_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """variables.tf and the table as they are, and main.tf's scheduler_region expression: no provider."""
    assert TERRAFORM is not None
    work = tmp_path_factory.mktemp("tf")
    shutil.copy(MODULE / "variables.tf", work)
    shutil.copy(MODULE / "locations.tf.json", work)
    (expression,) = re.findall(r"^\s*scheduler_region = (coalesce\(.*\))$", (MODULE / "main.tf").read_text(), re.M)
    (work / "harness.tf").write_text(HARNESS % expression)
    subprocess.run(
        [TERRAFORM, "init", "-input=false", "-no-color"],
        cwd=work,
        env=_tf_env(),
        check=True,
        timeout=120,
        capture_output=True,
    )
    return work


def _tf_env() -> dict[str, str]:
    return {**os.environ, "TF_CLI_CONFIG_FILE": "/dev/null", "TF_IN_AUTOMATION": "1", "CHECKPOINT_DISABLE": "1"}


def plan(work: Path, **variables: str) -> subprocess.CompletedProcess[str]:
    assert TERRAFORM is not None
    args = [TERRAFORM, "plan", "-input=false", "-no-color", "-lock=false", "-refresh=false"]
    for name, value in {"project_id": "acme-prod", "token_secret_version": "1", **variables}.items():
        args += ["-var", f"{name}={value}"]
    return subprocess.run(args, cwd=work, env=_tf_env(), capture_output=True, text=True, timeout=120, check=False)


@needs_terraform
@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        ({}, "southamerica-east1"),
        ({"region": "us-south1"}, "us-central1"),
        ({"region": "europe-west1"}, "europe-west1"),
        ({"scheduler_region": "us-east1"}, "us-east1"),
    ],
)
def test_terraform_places_the_job_like_deploy_sh(terraform_dir: Path, variables: dict[str, str], expected: str) -> None:
    result = plan(terraform_dir, **variables)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f'scheduler_region = "{expected}"' in result.stdout


@needs_terraform
@pytest.mark.parametrize(
    ("variables", "says"),
    [
        ({"region": "mars-central1"}, "Cloud Run functions is not offered in region mars-central1"),
        ({"scheduler_region": "southamerica-west1"}, "Cloud Scheduler is not offered in scheduler_region"),
        ({"firestore_location": "mars-central1"}, "Firestore is not offered in firestore_location mars-central1"),
        # Every functions region has Memorystore today, so a region with neither shows both refusals.
        (
            {"region": "mars-central1", "enable_redis": "true"},
            "Memorystore for Redis is not offered in region mars-central1",
        ),
    ],
)
def test_terraform_refuses_a_location_without_its_service(
    terraform_dir: Path, variables: dict[str, str], says: str
) -> None:
    result = plan(terraform_dir, **variables)
    assert result.returncode != 0
    assert "Invalid value for variable" in result.stderr
    assert says in " ".join(result.stderr.split())


def test_terraform_sweep_job_uses_its_own_location() -> None:
    text = (MODULE / "main.tf").read_text()
    job = text[text.index('resource "google_cloud_scheduler_job" "sweep"') :]
    job = job[: job.index("\n}\n")]
    assert re.search(r"^\s*region\s*=\s*local\.scheduler_region$", job, re.M), job
