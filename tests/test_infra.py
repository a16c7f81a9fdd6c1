"""The deploy tooling, checked statically: gcloud and terraform cannot run here.

The Terraform module is parsed with python-hcl2 and its wiring asserted; infra/deploy.sh runs for real
with --dry-run, with a `gcloud` on PATH that records any call (there must be none).
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import hcl2
import pytest
from hcl2 import SerializationOptions

ROOT = Path(__file__).resolve().parent.parent
INFRA = ROOT / "infra"
MODULE = INFRA / "terraform"
DEPLOY = INFRA / "deploy.sh"
TF_FILES = sorted(MODULE.rglob("*.tf"))
POPUP = "e5c98214-d0f6-11e1-8c30-001d09ef4a24"
PROJECT = "acme-prod"
SA_EMAIL = f"formcall-webhook@{PROJECT}.iam.gserviceaccount.com"
BUILD_EMAIL = f"formcall-build@{PROJECT}.iam.gserviceaccount.com"
SCHEDULER_EMAIL = f"formcall-scheduler@{PROJECT}.iam.gserviceaccount.com"
ACCESSOR = "roles/secretmanager.secretAccessor"

_OPTIONS = SerializationOptions(with_comments=False, explicit_blocks=False, strip_string_quotes=True)


# --- Terraform -----------------------------------------------------------------------------------


@functools.cache
def parse(path: Path) -> dict[str, Any]:
    with path.open() as handle:
        return hcl2.load(handle, serialization_options=_OPTIONS)


def module_blocks(kind: str) -> list[dict[str, Any]]:
    """Every top-level `kind` block (resource, variable, output, ...) of the module itself."""
    return [block for path in sorted(MODULE.glob("*.tf")) for block in parse(path).get(kind, [])]


def resources() -> dict[tuple[str, str], dict[str, Any]]:
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for block in module_blocks("resource"):
        for rtype, named in block.items():
            for name, body in named.items():
                assert (rtype, name) not in found, f"{rtype}.{name} declared twice"
                found[(rtype, name)] = body
    return found


def of_type(rtype: str) -> dict[str, dict[str, Any]]:
    return {name: body for (kind, name), body in resources().items() if kind == rtype}


def variables() -> dict[str, dict[str, Any]]:
    return {name: body for block in module_blocks("variable") for name, body in block.items()}


def outputs() -> dict[str, dict[str, Any]]:
    return {name: body for block in module_blocks("output") for name, body in block.items()}


def function() -> dict[str, Any]:
    """The functions' resource: the webhook and the sweeper, for_each over local.functions."""
    return of_type("google_cloudfunctions2_function")["function"]


def service_config() -> dict[str, Any]:
    config = function()["service_config"]
    assert len(config) == 1
    return config[0]


def dynamic_blocks(block: dict[str, Any], name: str) -> list[dict[str, Any]]:
    return [entry[name] for entry in block.get("dynamic", []) if name in entry]


def hcl_regex(condition: str) -> re.Pattern[str]:
    """The first regex(...) pattern inside a validation condition, HCL escapes undone."""
    match = re.search(r'regex\("((?:[^"\\]|\\.)*)"', condition)
    assert match, condition
    return re.compile(match.group(1).encode().decode("unicode_escape"))


@pytest.mark.parametrize("path", TF_FILES, ids=lambda p: str(p.relative_to(MODULE)))
def test_every_tf_file_parses(path: Path) -> None:
    assert parse(path), f"{path} is empty"


def test_versions_pin_terraform_and_providers() -> None:
    (terraform,) = parse(MODULE / "versions.tf")["terraform"]
    assert terraform["required_version"] == ">= 1.9"
    (providers,) = terraform["required_providers"]
    assert providers["google"]["source"] == "hashicorp/google"
    assert providers["google"]["version"] == "~> 7.21"
    assert providers["archive"]["source"] == "hashicorp/archive"


def test_function_runtime_and_entry_point() -> None:
    (build,) = function()["build_config"]
    assert build["runtime"] == "python312"
    assert build["entry_point"] == "${each.value.entry_point}"
    assert build["service_account"] == "${local.build_service_account}"
    (local_block,) = parse(MODULE / "main.tf")["locals"]
    functions = local_block["functions"]
    assert 'entry_point = "formcall_webhook"' in functions
    assert 'entry_point = "formcall_sweep"' in functions
    (source,) = build["source"]
    (storage,) = source["storage_source"]
    assert storage["bucket"] == "${google_storage_bucket.source.name}"
    assert storage["object"] == "${google_storage_bucket_object.source.name}"


def test_source_archive_is_named_by_its_md5_in_a_locked_down_bucket() -> None:
    archive = parse(MODULE / "main.tf")["data"][0]["archive_file"]["source"]
    assert archive["excludes"] == "${var.source_excludes}"
    obj = of_type("google_storage_bucket_object")["source"]
    assert "${data.archive_file.source.output_md5}" in obj["name"]
    bucket = of_type("google_storage_bucket")["source"]
    assert bucket["uniform_bucket_level_access"] is True
    assert bucket["public_access_prevention"] == "enforced"
    assert bucket["versioning"] == [{"enabled": True}]
    assert bucket["lifecycle_rule"], "old archives are never deleted"


def test_source_excludes_cover_gcloudignore() -> None:
    """The archive leaves out at least what `gcloud functions deploy` leaves out."""
    excludes = set(variables()["source_excludes"]["default"])
    for line in (ROOT / ".gcloudignore").read_text().splitlines():
        entry = line.strip()
        if not entry or entry.startswith(("#", "!")):
            continue
        entry = entry.rstrip("/").lstrip("/")
        assert entry in excludes or f"**/{entry}" in excludes, f".gcloudignore has {entry!r}; source_excludes does not"
    assert {"tests", ".venv", ".git", "infra", "docs", "examples"} <= excludes


def test_service_config_limits_and_ingress() -> None:
    config = service_config()
    assert config["max_instance_count"] == "${each.value.max}"
    assert config["min_instance_count"] == "${each.value.min}"
    assert config["max_instance_request_concurrency"] == "${each.value.concurrency}"
    assert config["available_cpu"] == "${var.available_cpu}"
    assert config["available_memory"] == "${var.available_memory}"
    assert config["timeout_seconds"] == "${each.value.timeout}"
    (local_block,) = parse(MODULE / "main.tf")["locals"]
    for setting in ("max = var.max_instances", "min = var.min_instances", "concurrency = var.concurrency"):
        assert re.search(setting.replace(" = ", r"\s*=\s*"), local_block["functions"]), setting
    assert config["ingress_settings"] == "ALLOW_ALL"
    defaults = {name: body.get("default") for name, body in variables().items()}
    assert defaults["max_instances"] == 10
    assert defaults["min_instances"] == 0
    assert defaults["concurrency"] == 16
    assert defaults["available_cpu"] == "1"
    assert defaults["available_memory"] == "256Mi"
    assert defaults["timeout_seconds"] == 30
    assert defaults["region"] == "southamerica-west1"


def test_environment_variables_carry_popup_config_region_and_store() -> None:
    assert service_config()["environment_variables"] == (
        "${merge(local.environment_variables, {THREADS = tostring(each.value.concurrency * 2 + 4)})}"
    )
    (local_block,) = parse(MODULE / "main.tf")["locals"]
    env = local_block["environment_variables"]
    assert "FORMCALL_SWEEP_SECONDS" not in env
    store = (
        'FORMCALL_STORE_URL = local.use_firestore ? "firestore://${var.project_id}/${var.firestore_database}"'
        " : var.store_url"
    )
    assert store in env
    assert variables()["store_url"]["default"] == "firestore://"
    for name, source in [
        ("FORMCALL_POPUP_UUID", "var.popup_uuid"),
        ("FORMCALL_CONFIG", "var.config_path"),
        ("FORMCALL_DEFAULT_REGION", "var.default_phone_region"),
        ("GOOGLE_CLOUD_PROJECT", "var.project_id"),
    ]:
        assert re.search(rf"{name}\W+[^,}}]*{re.escape(source)}", env), f"{name} is not set from {source}"


def test_token_secret_env_var_is_bound_to_the_token_secret_at_a_pinned_version() -> None:
    token_env = [s for s in service_config()["secret_environment_variables"] if s["key"] == "FORMCALL_SECURITY_TOKEN"]
    assert token_env == [
        {
            "key": "FORMCALL_SECURITY_TOKEN",
            "project_id": "${var.project_id}",
            "secret": "${google_secret_manager_secret.token.secret_id}",
            "version": "${var.token_secret_version}",
        }
    ]
    version = variables()["token_secret_version"]
    assert "default" not in version, "the pinned version must be chosen, not defaulted"
    pattern = hcl_regex(version["validation"][0]["condition"])
    assert pattern.search("3")
    assert not pattern.search("latest")
    secret = of_type("google_secret_manager_secret")["token"]
    assert secret["secret_id"] == "${var.token_secret_id}"
    assert secret["replication"] == [{"auto": [{}]}]


def test_the_function_runs_as_the_dedicated_service_account_with_no_project_role() -> None:
    assert service_config()["service_account_email"] == "${google_service_account.runtime.email}"
    account = of_type("google_service_account")["runtime"]
    assert account["account_id"] == "${var.service_account_id}"
    assert variables()["service_account_id"]["default"] == "formcall-webhook"
    project_iam = {
        name: body
        for (kind, name), body in resources().items()
        if kind.startswith(("google_project_iam", "google_organization_iam"))
    }
    assert set(project_iam) == {"build", "runtime_datastore"}, "no other project-wide grants"
    assert project_iam["runtime_datastore"]["role"] == "roles/datastore.user"
    assert project_iam["runtime_datastore"]["member"] == "${google_service_account.runtime.member}"
    assert project_iam["build"]["member"] == "${google_service_account.build[0].member}"


def test_secret_accessor_is_granted_on_each_secret_the_function_reads() -> None:
    members = of_type("google_secret_manager_secret_iam_member")
    for name, member in members.items():
        assert member["role"] == ACCESSOR, name
        assert member["member"] == "${google_service_account.runtime.member}", name
    by_secret = {member["secret_id"]: member for member in members.values()}

    # Every secret the function reads, as an env var or a mounted file, has its own grant.
    config = service_config()
    read = [s["secret"] for s in config["secret_environment_variables"]]
    for kind in ("secret_environment_variables", "secret_volumes"):
        read += [block["content"][0]["secret"] for block in dynamic_blocks(config, kind)]
    for secret in read:
        if secret == "${secret_environment_variables.value.secret}":
            assert "${each.value}" in by_secret, "extra secrets are not granted"
            assert members["extra"]["for_each"] == "${local.extra_secret_ids}"
        else:
            assert secret in by_secret, f"{secret} is read but not granted"
    assert "${google_secret_manager_secret.token.secret_id}" in by_secret
    (local_block,) = parse(MODULE / "main.tf")["locals"]
    assert "var.extra_secrets" in local_block["extra_secret_ids"]


def test_no_secret_value_comes_from_a_variable() -> None:
    for name, version in of_type("google_secret_manager_secret_version").items():
        assert "var." not in version["secret_data"], f"secret_data of {name} comes from a variable"
        assert "token" not in version["secret"], "the token's value is added out of band"
    secretish = [name for name in variables() if re.search(r"token|password|secret", name)]
    assert sorted(secretish) == ["extra_secrets", "token_secret_id", "token_secret_version"]
    for name in ("extra_secrets", "token_secret_version"):
        assert "value" not in str(variables()[name].get("type", "")), name


def test_public_invoker_binding_only_when_public() -> None:
    invoker = of_type("google_cloud_run_service_iam_member")["public_invoker"]
    assert invoker["count"] == "${var.public && !var.invoker_iam_disabled ? 1 : 0}"
    assert invoker["role"] == "roles/run.invoker"
    assert invoker["member"] == "allUsers"
    assert invoker["service"] == '${google_cloudfunctions2_function.function["webhook"].name}'
    assert invoker["location"] == "${var.region}"
    assert variables()["public"]["default"] is True
    assert "${var.public" not in str(function()), "the function itself does not depend on public"


def test_redis_resources_only_when_enable_redis() -> None:
    conditional = [
        ("google_redis_instance", "store"),
        ("google_secret_manager_secret", "store_url"),
        ("google_secret_manager_secret_version", "store_url"),
        ("google_secret_manager_secret_iam_member", "store_url"),
        ("google_secret_manager_secret", "redis_ca"),
        ("google_secret_manager_secret_version", "redis_ca"),
        ("google_secret_manager_secret_iam_member", "redis_ca"),
    ]
    for key in conditional:
        assert resources()[key]["count"] == "${var.enable_redis ? 1 : 0}", key
    redis = of_type("google_redis_instance")["store"]
    assert redis["tier"] == "STANDARD_HA", "a BASIC instance is flushed on maintenance: dedupe claims lost"
    assert redis["maintenance_policy"][0]["weekly_maintenance_window"][0]["day"] == "${var.redis_maintenance_day}"
    assert redis["auth_enabled"] is True
    assert redis["transit_encryption_mode"] == "SERVER_AUTHENTICATION"
    assert "google_vpc_access_connector" not in {kind for kind, _ in resources()}
    ca = of_type("google_secret_manager_secret_version")["redis_ca"]["secret_data"]
    assert "for ca in google_redis_instance.store[0].server_ca_certs" in ca, "every server CA is mounted"
    config = service_config()
    (vpc,) = dynamic_blocks(config, "direct_vpc_network_interface")
    assert vpc["for_each"] == "${var.enable_redis ? [1] : []}"
    assert vpc["content"][0] == {"network": "${var.network}", "subnetwork": "${var.subnetwork}"}
    assert config["direct_vpc_egress"] == '${var.enable_redis ? "VPC_EGRESS_PRIVATE_RANGES_ONLY" : null}'
    store_env = [b for b in dynamic_blocks(config, "secret_environment_variables") if "enable_redis" in b["for_each"]]
    assert [b["content"][0]["key"] for b in store_env] == ["FORMCALL_STORE_URL"]
    url = of_type("google_secret_manager_secret_version")["store_url"]["secret_data"]
    assert "google_redis_instance.store[0].host" in url
    assert "google_redis_instance.store[0].port" in url
    assert "google_redis_instance.store[0].auth_string" in url
    assert variables()["enable_redis"]["default"] is False


def test_outputs() -> None:
    found = outputs()
    webhook = 'google_cloudfunctions2_function.function["webhook"]'
    run = "google_cloud_run_v2_service.webhook[0]"
    assert (
        found["function_url"]["value"] == f"${{var.invoker_iam_disabled ? {run}.uri : {webhook}.service_config[0].uri}}"
    )
    assert found["function_legacy_url"]["value"] == f"${{var.invoker_iam_disabled ? null : {webhook}.url}}"
    assert found["service_account_email"]["value"] == "${google_service_account.runtime.email}"
    assert found["token_secret_id"]["value"] == "${google_secret_manager_secret.token.id}"


def test_variable_validations() -> None:
    found = variables()
    region_rule, offered_rule, redis_rule = found["region"]["validation"]
    assert 'trimspace(var.region) != ""' in region_rule["condition"]
    # Where Google offers each service: tests/test_locations.py runs these for real.
    assert "contains(local.locations.functions, var.region)" in offered_rule["condition"]
    assert "contains(local.locations.memorystore, var.region)" in redis_rule["condition"]
    popup = hcl_regex(found["popup_uuid"]["validation"][0]["condition"])
    assert popup.search(POPUP)
    assert not popup.search("not-a-uuid")
    assert not popup.search(POPUP[:-1])
    assert "var.popup_uuid == null" in found["popup_uuid"]["validation"][0]["condition"]
    for name, body in found.items():
        assert body.get("description"), f"variable {name} has no description"


@pytest.mark.parametrize("example", sorted(p.parent.name for p in MODULE.glob("examples/*/main.tf")))
def test_examples_call_the_module(example: str) -> None:
    parsed = parse(MODULE / "examples" / example / "main.tf")
    (module,) = [body for block in parsed["module"] for body in block.values()]
    assert module["source"] == "../.."
    assert re.fullmatch(r"[1-9][0-9]*", module["token_secret_version"])
    assert "function_url" in {name for block in parsed["output"] for name in block}


def test_every_checkov_skip_gives_a_reason() -> None:
    for path in TF_FILES:
        for line in path.read_text().splitlines():
            if "checkov:skip" in line:
                assert re.fullmatch(r"\s*#checkov:skip=CKV2?_[A-Z]+_\d+:.{30,}", line), f"{path.name}: {line.strip()}"


# --- deploy.sh --dry-run -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fake_gcloud(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A gcloud that records being called: --dry-run must never call it."""
    bin_dir = tmp_path_factory.mktemp("bin")
    record = bin_dir / "gcloud-called"
    script = bin_dir / "gcloud"
    script.write_text(f'#!/bin/sh\necho "$@" >> "{record}"\nexit 3\n')
    script.chmod(0o755)
    return bin_dir


def _env(fake_gcloud: Path) -> dict[str, str]:
    # Not COVERAGE_*: the config check's Python would measure itself, slowly, for tests that are
    # about the script (tests/test_cli.py covers the check).
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("FORMCALL_", "COVERAGE_")) and name not in {"PROJECT", "REGION", "CONFIG", "PYTHON"}
    }
    env["PATH"] = f"{fake_gcloud}{os.pathsep}{env.get('PATH', '')}"
    return env


def _start(fake_gcloud: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        ["bash", str(DEPLOY), "--python", sys.executable, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env=_env(fake_gcloud),
        cwd=fake_gcloud,
    )


def _finish(process: subprocess.Popen[str]) -> subprocess.CompletedProcess[str]:
    stdout, stderr = process.communicate(timeout=60)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def deploy(fake_gcloud: Path, *args: str) -> subprocess.CompletedProcess[str]:
    result = _finish(_start(fake_gcloud, *args))
    assert not (fake_gcloud / "gcloud-called").exists(), "deploy.sh called gcloud"
    return result


def deploy_line(stdout: str, function: str = "formcall-webhook") -> str:
    """The one command that deploys FUNCTION: `gcloud functions deploy`, or `gcloud run deploy --function`."""
    (line,) = [
        line
        for line in stdout.splitlines()
        if line.startswith((f"gcloud functions deploy {function} ", f"gcloud run deploy {function} "))
    ]
    return line


@pytest.fixture(scope="module")
def dry_runs(fake_gcloud: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The dry runs that reach the config check (a Python start each), run side by side."""
    bad = tmp_path_factory.mktemp("config") / "formcall.toml"
    bad.write_text(f'[routes.default]\npopup_uuid = "{POPUP}"\nregion = "ZZ"\n')
    refs = bad.parent / "refs.toml"
    refs.write_text(SECRET_REFS_CONFIG)
    base = ["--dry-run", "--project", PROJECT]
    started = {
        "pinned": _start(
            fake_gcloud,
            *base,
            *["--token-version", "3", "--popup-uuid", POPUP, "--secret", "HUBSPOT_APP_SECRET=hubspot-app:2"],
        ),
        "private": _start(fake_gcloud, *base, "--popup-uuid", POPUP, "--private"),
        "bad_config": _start(fake_gcloud, *base, "--config", str(bad), "--token-version", "1"),
        "refs": _start(fake_gcloud, *base, "--config", str(refs), "--token-version", "1"),
        "refs_provided": _start(
            fake_gcloud,
            *base,
            *["--config", str(refs), "--token-version", "1", "--secret", "HUBSPOT_APP_SECRET=hubspot-app"],
            *["--secret", "ZAPIER=zapier-token", "--secret", "/etc/secrets/form/token=form-token"],
        ),
        "memory": _start(fake_gcloud, *base, "--popup-uuid", POPUP, "--store-url", "memory://", "--token-version", "1"),
        "redis": _start(
            fake_gcloud,
            *base,
            *["--popup-uuid", POPUP, "--token-version", "1", "--secret", "FORMCALL_STORE_URL=store-url:1"],
            *["--network", "default", "--subnet", "formcall", "--no-invoker-iam-check"],
        ),
    }
    results: dict[str, Any] = {name: _finish(process) for name, process in started.items()}
    assert not (fake_gcloud / "gcloud-called").exists(), "deploy.sh called gcloud"
    results["bad_config_path"] = bad
    return results


SECRET_REFS_CONFIG = f"""
[routes.default]
popup_uuid = "{POPUP}"
auth = {{ type = "hubspot", secret = "env:HUBSPOT_APP_SECRET" }}

[routes.zap]
popup_uuid = "{POPUP}"
auth = {{ type = "token", secret = "secret:projects/{PROJECT}/secrets/zapier-token/versions/1" }}

[routes.form]
popup_uuid = "{POPUP}"
auth = {{ type = "token", secret = "file:/etc/secrets/form/token" }}
"""


@pytest.fixture
def pinned_run(dry_runs: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    result: subprocess.CompletedProcess[str] = dry_runs["pinned"]
    assert result.returncode == 0, result.stderr
    return result


def test_dry_run_deploys_gen2_python312_with_a_pinned_token(pinned_run: subprocess.CompletedProcess[str]) -> None:
    line = deploy_line(pinned_run.stdout)
    assert line.startswith("gcloud functions deploy formcall-webhook ")
    assert "--gen2 --runtime python312 --entry-point formcall_webhook" in line
    assert "--region southamerica-west1 --project acme-prod --source . --trigger-http" in line
    secrets = (
        "FORMCALL_SECURITY_TOKEN=formcall-token:3,HUBSPOT_APP_SECRET=hubspot-app:2,FORMCALL_HASH_KEY=formcall-hash-key:"
    )
    assert "--set-secrets " in line and secrets in line
    # THREADS above the concurrency (issue 18.9): stalled uploads leave threads for the requests in flight.
    env = f"--set-env-vars THREADS=36,GOOGLE_CLOUD_PROJECT={PROJECT},FORMCALL_POPUP_UUID={POPUP},FORMCALL_STORE_URL=firestore://"
    assert env in line
    assert "latest" not in line
    assert "FORMCALL_SWEEP_SECONDS" not in pinned_run.stdout, "deployed, Cloud Scheduler runs the sweep"
    assert f"--build-service-account projects/{PROJECT}/serviceAccounts/{BUILD_EMAIL}" in line


def test_dry_run_sets_account_limits_and_public_access(pinned_run: subprocess.CompletedProcess[str]) -> None:
    words = deploy_line(pinned_run.stdout).split()
    flags = {flag: value for flag, value in zip(words, [*words[1:], ""], strict=True) if flag.startswith("--")}
    assert flags["--service-account"] == SA_EMAIL
    assert flags["--max-instances"] == "10"
    assert flags["--min-instances"] == "0"
    assert flags["--concurrency"] == "16"
    assert flags["--cpu"] == "1"
    assert flags["--timeout"] == "30s"
    assert flags["--memory"] == "256Mi"
    assert "--allow-unauthenticated" in words
    assert "--no-allow-unauthenticated" not in words


def test_dry_run_grants_access_per_secret_and_creates_only_what_is_missing(
    pinned_run: subprocess.CompletedProcess[str],
) -> None:
    lines = pinned_run.stdout.splitlines()
    commands = [line for line in lines if line.startswith("gcloud ")]
    for secret in ("formcall-token", "hubspot-app"):
        binding = (
            f"gcloud secrets add-iam-policy-binding {secret} --project {PROJECT} "
            f"--member serviceAccount:{SA_EMAIL} --role {ACCESSOR}"
        )
        assert any(c.startswith(binding) for c in commands), f"no binding on {secret}"
        create = (
            f"gcloud secrets describe {secret} --project {PROJECT} >/dev/null 2>&1 || gcloud secrets create {secret} "
        )
        assert any(c.startswith(create) for c in commands), f"{secret} is not created behind a describe"
    project_grants = sorted(
        re.sub(r" --condition=None --quiet$", "", c.split("--member ")[1])
        for c in commands
        if "projects add-iam-policy-binding" in c
    )
    assert project_grants == sorted(
        [
            f"serviceAccount:{BUILD_EMAIL} --role roles/logging.logWriter",
            f"serviceAccount:{BUILD_EMAIL} --role roles/artifactregistry.writer",
            f"serviceAccount:{BUILD_EMAIL} --role roles/storage.objectAdmin",
            f"serviceAccount:{SA_EMAIL} --role roles/datastore.user",
        ]
    ), "the only project-wide grants: the build account's and Firestore's"
    account = f"gcloud iam service-accounts describe {SA_EMAIL} --project {PROJECT} >/dev/null 2>&1 || "
    assert any(c.startswith(account + "gcloud iam service-accounts create formcall-webhook ") for c in commands)
    for command in commands:
        if re.search(r"\b(create|update http)\b", command) and "monitoring" not in command:
            guard = command.split(" create ")[0]
            assert " describe " in guard or " list " in guard, f"unguarded create: {command}"
        assert "versions add" not in command, "deploy.sh must never put a secret value"
    # Its one value: the store's hash key (spec 10), random, made only when the secret is missing.
    (made,) = [line for line in lines if "--data-file" in line]
    assert made == (
        f"gcloud secrets describe formcall-hash-key --project {PROJECT} >/dev/null 2>&1 || "
        f"{sys.executable} -c 'import secrets; print(secrets.token_urlsafe(32), end=\"\")' | "
        f"gcloud secrets create formcall-hash-key --project {PROJECT} --replication-policy=automatic "
        "--labels=app=formcall-webhook --data-file=-"
    )
    assert "FORMCALL_HASH_KEY=formcall-hash-key:" in deploy_line(pinned_run.stdout)


def test_private_deploy_and_newest_enabled_version(dry_runs: dict[str, Any]) -> None:
    result = dry_runs["private"]
    assert result.returncode == 0, result.stderr
    line = deploy_line(result.stdout)
    assert "--no-allow-unauthenticated" in line.split()
    assert "--allow-unauthenticated" not in line.split()
    # No --token-version: the newest enabled version is looked up, and pinned.
    lookup = (
        f"gcloud secrets versions list formcall-token --project {PROJECT} --filter=state:ENABLED "
        "--sort-by='~createTime' --limit=1 --format='value(name)'"
    )
    assert lookup in result.stdout.splitlines()
    assert "FORMCALL_SECURITY_TOKEN=formcall-token:<newest-enabled-version-of-formcall-token>" in line


def test_a_bad_config_stops_before_any_gcloud_command(dry_runs: dict[str, Any]) -> None:
    result, bad = dry_runs["bad_config"], dry_runs["bad_config_path"]
    assert result.returncode == 1
    assert f"error: {bad}: routes.default.region" in result.stderr
    assert "nothing was deployed" in result.stderr
    assert "gcloud" not in result.stdout


@pytest.mark.parametrize(
    "args",
    [
        ["--project", PROJECT, "--no-such-flag"],
        ["--popup-uuid", POPUP],  # no project
        ["--project", PROJECT, "--token-version", "latest-ish"],
        ["--project", PROJECT, "--store-url", "redis://:hunter2@10.0.0.3:6379/0"],
        ["--project", PROJECT, "--concurrency", "8", "--cpu", "0.5"],
        ["--project", PROJECT, "--secret", "HUBSPOT_APP_SECRET"],
        ["--project", PROJECT, "--region"],
        ["--project", PROJECT, "--vpc-connector", "c"],
        ["--project", PROJECT, "--network", "default"],
        ["--project", PROJECT, "--store-url", "firestore://other-project/db"],
        ["--project", PROJECT, "--monitoring", "not-an-email"],
        ["--project", PROJECT, "--secret", "FORMCALL_SWEEP_SECONDS=x"],
    ],
    ids=[
        "unknown-flag",
        "no-project",
        "bad-version",
        "password-in-url",
        "cpu-below-1",
        "bad-secret",
        "no-value",
        "vpc-connector-gone",
        "network-without-subnet",
        "firestore-elsewhere",
        "bad-email",
        "sweep-seconds",
    ],
)
def test_usage_errors_exit_2(fake_gcloud: Path, args: list[str]) -> None:
    result = deploy(fake_gcloud, "--dry-run", *args)
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    assert "deploy.sh: " in result.stderr


def test_help_explains_public_and_private(fake_gcloud: Path) -> None:
    result = deploy(fake_gcloud, "--help")
    assert result.returncode == 0
    assert "--public" in result.stdout
    assert "--private" in result.stdout
    assert "identity tokens" in result.stdout


def test_scripts_pass_shellcheck() -> None:
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        if os.environ.get("CI"):
            pytest.fail("shellcheck is not installed, and CI must run it (apt-get install shellcheck)")
        pytest.skip("shellcheck is not installed (apt-get install shellcheck); CI runs this test")
    scripts = [DEPLOY, INFRA / "check.sh", ROOT / ".ci" / "run"]
    result = subprocess.run([shellcheck, *map(str, scripts)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_sweeper_is_private_and_only_the_schedulers_account_may_invoke_it(
    pinned_run: subprocess.CompletedProcess[str],
) -> None:
    lines = pinned_run.stdout.splitlines()
    sweep = deploy_line(pinned_run.stdout, "formcall-sweep")
    words = sweep.split()
    assert "--entry-point formcall_sweep" in sweep
    assert "--no-allow-unauthenticated" in words
    assert "--allow-unauthenticated" not in words
    webhook = deploy_line(pinned_run.stdout)
    env = re.search(r"--set-env-vars (\S+)", webhook)
    sweep_env = re.search(r"--set-env-vars (\S+)", sweep)
    assert env and sweep_env
    assert env.group(1).split(",")[1:] == sweep_env.group(1).split(",")[1:], "same environment but THREADS"
    assert re.search(r"--set-secrets (\S+)", webhook).group(1) == re.search(r"--set-secrets (\S+)", sweep).group(1)  # type: ignore[union-attr]
    binding = [line for line in lines if "add-invoker-policy-binding" in line]
    assert binding == [
        "gcloud functions add-invoker-policy-binding formcall-sweep --region southamerica-west1 "
        f"--project {PROJECT} --member serviceAccount:{SCHEDULER_EMAIL}"
    ]
    assert not [line for line in lines if "run.invoker" in line and "projects add-iam" in line]
    (job,) = [line for line in lines if "scheduler jobs" in line]
    create = job.split(" || ")[-1]
    assert create.startswith("gcloud scheduler jobs create http formcall-sweep ")
    assert "--schedule '* * * * *'" in create
    assert "--http-method POST" in create
    assert f"--oidc-service-account-email {SCHEDULER_EMAIL}" in create
    url = re.search(r"--uri (\S+)", create)
    assert url and f"--oidc-token-audience {url.group(1)}" in create, "the audience is the sweeper's URL"
    deadline = re.search(r"--attempt-deadline (\d+)s", create)
    assert deadline and 60 <= int(deadline.group(1)) <= 120
    assert " && gcloud scheduler jobs update http formcall-sweep " in job, "an existing job is updated to match"


def test_firestore_is_created_with_ttls_and_the_leads_index(pinned_run: subprocess.CompletedProcess[str]) -> None:
    out = pinned_run.stdout
    assert "firestore.googleapis.com" in out and "cloudscheduler.googleapis.com" in out
    assert (
        f"gcloud firestore databases describe --database='(default)' --project {PROJECT} >/dev/null 2>&1 || "
        "gcloud firestore databases create --database='(default)' --location=southamerica-west1 --type=firestore-native"
    ) in out
    for collection in ("formcall_claims", "formcall_leads"):
        assert f"ttls update expires_at --collection-group={collection} " in out
        assert "--enable-ttl" in out
    assert (
        "composite create --collection-group=formcall_leads --field-config=field-path=state,order=ascending "
        "--field-config=field-path=received_at,order=ascending"
    ) in out
    exempt = sorted(
        (words[5], words[6].split("=", 1)[1])
        for words in (line.split() for line in out.splitlines())
        if words[:4] == ["gcloud", "firestore", "indexes", "fields"] and "--disable-indexes" in words
    )
    assert exempt == sorted(
        [
            ("value", "formcall_claims"),
            ("expires", "formcall_claims"),
            ("expires_at", "formcall_claims"),
            ("json", "formcall_leads"),
            ("expires_at", "formcall_leads"),
        ]
    )


def test_every_secret_reference_of_the_config_must_be_provided(dry_runs: dict[str, Any]) -> None:
    result = dry_runs["refs"]
    assert result.returncode == 1
    assert "nothing was deployed" in result.stderr
    assert 'routes.default.auth.secret = "env:HUBSPOT_APP_SECRET"' in result.stderr
    assert f'routes.zap.auth.secret = "secret:projects/{PROJECT}/secrets/zapier-token/versions/1"' in result.stderr
    assert 'routes.form.auth.secret = "file:/etc/secrets/form/token"' in result.stderr
    assert "gcloud" not in result.stdout
    provided = dry_runs["refs_provided"]
    assert "refers to secrets" not in provided.stderr
    # (It then stops because the temporary config is outside the repository: no upload could hold it.)
    assert "is outside" in provided.stderr


def test_memory_store_warns_and_deploys_no_sweeper(dry_runs: dict[str, Any]) -> None:
    result = dry_runs["memory"]
    assert result.returncode == 0, result.stderr
    assert "memory:// with --max-instances 10: each instance has its own leads, dedupe and rate limits" in result.stderr
    assert "functions deploy formcall-sweep" not in result.stdout
    assert "scheduler" not in result.stdout
    assert "FORMCALL_STORE_URL=memory://" in deploy_line(result.stdout)
    assert "firestore" not in result.stdout


def test_redis_goes_through_direct_vpc_egress_and_no_invoker_check(dry_runs: dict[str, Any]) -> None:
    result = dry_runs["redis"]
    assert result.returncode == 0, result.stderr
    line = deploy_line(result.stdout)
    assert "FORMCALL_STORE_URL=store-url:1" in line
    assert "FORMCALL_STORE_URL=" not in line.split("--set-env-vars")[1].split()[0]
    assert "--vpc-connector" not in result.stdout
    assert "--no-allow-unauthenticated" in line.split(), "no allUsers binding"
    # One step per function: every setting in the deploy itself, never a `run services update` after it.
    assert "services update" not in result.stdout
    assert "gcloud functions deploy" not in result.stdout
    deploys = {
        line.split()[3]: line.split() for line in result.stdout.splitlines() if line.startswith("gcloud run deploy ")
    }
    assert set(deploys) == {"formcall-webhook", "formcall-sweep"}
    for name, words in deploys.items():
        joined = " ".join(words)
        assert "--source . --function formcall_" in joined and "--base-image python312" in joined
        assert "--network default --subnet formcall --vpc-egress private-ranges-only" in joined, name
        assert "--no-allow-unauthenticated" in words
    assert "--no-invoker-iam-check" in deploys["formcall-webhook"]
    assert "--no-invoker-iam-check" not in deploys["formcall-sweep"], "the sweeper keeps its invoker check"
    assert (
        f"gcloud run services add-iam-policy-binding formcall-sweep --region southamerica-west1 --project {PROJECT} "
        f"--member serviceAccount:{SCHEDULER_EMAIL} --role roles/run.invoker"
    ) in result.stdout
    assert "firestore" not in result.stdout


def test_the_default_deploy_is_gcloud_functions_deploy_in_one_step(
    pinned_run: subprocess.CompletedProcess[str],
) -> None:
    out = pinned_run.stdout
    assert [line.split()[3] for line in out.splitlines() if line.startswith("gcloud functions deploy ")] == [
        "formcall-webhook",
        "formcall-sweep",
    ]
    assert "services update" not in out and "gcloud run deploy" not in out


def test_bindings_naming_a_new_service_account_are_retried() -> None:
    script = DEPLOY.read_text()
    body = script[script.index("run_retrying() {") :]
    body = body[: body.index("\n}\n")]
    assert "does not exist" in body and "sleep" in body
    for command in (
        "run_retrying gcloud projects add-iam-policy-binding",
        "run_retrying gcloud secrets add-iam-policy-binding",
        "run_retrying gcloud functions add-invoker-policy-binding",
        "run_retrying gcloud run services add-iam-policy-binding",
        'run_retrying "${DEPLOY[@]}"',
    ):
        assert command in script, command
    assert "run gcloud projects add-iam-policy-binding" not in script


# --- Terraform: sweeper, Firestore, build account ------------------------------------------------


def test_terraform_sweeper_is_private_and_called_by_its_own_account() -> None:
    invoker = of_type("google_cloud_run_service_iam_member")["sweep_invoker"]
    assert invoker["service"] == '${google_cloudfunctions2_function.function["sweep"].name}'
    assert invoker["role"] == "roles/run.invoker"
    assert invoker["member"] == "${google_service_account.scheduler[0].member}"
    job = of_type("google_cloud_scheduler_job")["sweep"]
    assert job["schedule"] == "* * * * *"
    assert 60 <= int(job["attempt_deadline"].rstrip("s")) <= 120
    (target,) = job["http_target"]
    assert target["http_method"] == "POST"
    (oidc,) = target["oidc_token"]
    assert oidc["service_account_email"] == "${google_service_account.scheduler[0].email}"
    assert (
        oidc["audience"]
        == target["uri"]
        == '${google_cloudfunctions2_function.function["sweep"].service_config[0].uri}'
    )
    # Only the webhook may be public.
    public = of_type("google_cloud_run_service_iam_member")["public_invoker"]
    assert "webhook" in public["service"]


def test_terraform_firestore_ttls_index_and_grant() -> None:
    database = of_type("google_firestore_database")["store"]
    assert database["type"] == "FIRESTORE_NATIVE"
    assert database["location_id"] == "${var.firestore_location}"
    assert variables()["firestore_location"]["default"] == "southamerica-west1"
    assert variables()["firestore_database"]["default"] == "(default)"
    ttl = of_type("google_firestore_field")["ttl"]
    assert ttl["field"] == "expires_at"
    assert "formcall_claims" in ttl["for_each"] and "formcall_leads" in ttl["for_each"]
    assert ttl["ttl_config"] == [{}]
    assert ttl["index_config"] == [{}], "the TTL field's single-field indexes are off"
    exempt = of_type("google_firestore_field")["exempt"]
    assert exempt["index_config"] == [{}]
    for pair in ("formcall_claims/value", "formcall_claims/expires", "formcall_leads/json"):
        assert pair in exempt["for_each"]
    main = (MODULE / "main.tf").read_text()
    assert "An empty index_config disables" in main
    assert "keeps Firestore's automatic single-field indexes" not in main
    index = of_type("google_firestore_index")["leads_by_state"]
    assert index["collection"] == "formcall_leads"
    assert index["fields"] == [
        {"field_path": "state", "order": "ASCENDING"},
        {"field_path": "received_at", "order": "ASCENDING"},
    ]
    (local_block,) = parse(MODULE / "main.tf")["locals"]
    assert "firestore.googleapis.com" in local_block["apis"]
    assert "cloudscheduler.googleapis.com" in local_block["apis"]


def test_terraform_build_account_gets_the_documented_roles() -> None:
    (local_block,) = parse(MODULE / "main.tf")["locals"]
    # Google's build-account page: Logs Writer, Artifact Registry Writer, Storage Object Admin.
    for role in ("roles/logging.logWriter", "roles/artifactregistry.writer", "roles/storage.objectAdmin"):
        assert role in local_block["build_roles"]
    assert "roles/storage.objectViewer" not in local_block["build_roles"]
    assert of_type("google_project_iam_member")["build"]["for_each"].startswith("${var.build_service_account == null")


def test_terraform_source_bucket_lifecycle_rules_can_fire() -> None:
    (bucket,) = [of_type("google_storage_bucket")["source"]]
    rules = bucket["lifecycle_rule"]
    conditions = [rule["condition"][0] for rule in rules]
    # Archives are named by content: never overwritten, so only an age rule on live objects removes them.
    assert {"age": 30, "with_state": "LIVE"} in conditions
    assert all("num_newer_versions" not in c for c in conditions)
    assert all(rule["action"] == [{"type": "Delete"}] for rule in rules)


def test_terraform_monitoring_without_recipients_warns() -> None:
    (check,) = [c["alert_recipients"] for c in parse(MODULE / "monitoring.tf")["check"]]
    (assertion,) = check["assert"]
    assert assertion["condition"] == "${!var.enable_monitoring || length(var.alert_emails) > 0}"
    assert "notify no one" in assertion["error_message"]


# --- monitoring: the dashboards and alerts against the fields the function really logs ------------

MONITORING = INFRA / "monitoring"
RENDER_VALUES = {
    "webhook_service": "formcall-webhook",
    "sweep_service": "formcall-sweep",
    "notification_channels": '["projects/acme-prod/notificationChannels/1"]',
    "scheduled_share": "0.5",
    "error_share": "0.05",
}


def rendered(path: Path) -> dict[str, Any]:
    from string import Template

    text = path.read_text()
    placeholders = set(re.findall(r"(?<!\$)\$\{([^}]*)\}", text))
    assert placeholders <= set(RENDER_VALUES), f"{path.name}: unknown placeholders {placeholders - set(RENDER_VALUES)}"
    value: dict[str, Any] = json.loads(Template(text).substitute(RENDER_VALUES))
    return value


def metric_defs() -> dict[str, dict[str, Any]]:
    return {path.stem: rendered(path) for path in sorted((MONITORING / "metrics").glob("*.json"))}


def all_filters(value: Any) -> list[str]:
    """Every monitoring filter string inside a policy or dashboard."""
    if isinstance(value, dict):
        found = []
        for key, item in value.items():
            if isinstance(item, str) and key.lower().endswith("filter"):
                found.append(item)
            else:
                found += all_filters(item)
        return found
    if isinstance(value, list):
        return [f for item in value for f in all_filters(item)]
    return []


def outcome_words(text: str) -> set[str]:
    words: set[str] = set()
    for match in re.finditer(r"(?:jsonPayload|metric\.label)\.outcome\s*(?:=|!=)\s*(\"[^\"]*\"|one_of\([^)]*\))", text):
        words.update(re.findall(r'"([^"]*)"', match.group(1)))
    return words


def test_log_metrics_read_only_fields_the_function_logs() -> None:
    from formcall_webhook.logs import LOG_FIELDS

    defs = metric_defs()
    assert {"formcall_outcomes", "formcall_wait_seconds", "formcall_latency_ms"} <= set(defs)
    for name, metric in defs.items():
        assert metric["name"] == name
        used = set(re.findall(r"jsonPayload\.([A-Za-z_]+)", json.dumps(metric)))
        assert used or 'resource.type="cloud_scheduler_job"' in metric["filter"], name
        assert used <= LOG_FIELDS, f"{name} reads {sorted(used - LOG_FIELDS)}, which no line carries"
        labels = {label["key"] for label in metric["metricDescriptor"]["labels"]}
        assert labels == set(metric["labelExtractors"]), name
        for extractor in metric["labelExtractors"].values():
            assert re.fullmatch(r"EXTRACT\(jsonPayload\.[a-z_]+\)", extractor)
        assert "formcall-webhook" in metric["filter"] or "formcall-sweep" in metric["filter"], name
    outcomes = defs["formcall_outcomes"]
    assert {"outcome", "route", "formcall_error_code"} <= set(outcomes["labelExtractors"])
    assert defs["formcall_wait_seconds"]["valueExtractor"] == "EXTRACT(jsonPayload.wait_seconds)"
    assert defs["formcall_latency_ms"]["valueExtractor"] == "EXTRACT(jsonPayload.formcall_ms)"


# Outcome words the alerts key on that another part of issue 17 adds to the code (the heartbeat's
# WARNING line); once formcall_webhook.logs.OUTCOMES holds them, this set can go.
PENDING_OUTCOMES = frozenset({"sweeper_stale"})


def test_alerts_and_dashboard_use_defined_metrics_labels_and_real_outcome_words() -> None:
    from formcall_webhook.logs import OUTCOMES

    defs = metric_defs()
    labels = {name: {label["key"] for label in m["metricDescriptor"]["labels"]} for name, m in defs.items()}
    documents = {path.name: rendered(path) for path in sorted((MONITORING / "policies").glob("*.json"))}
    documents["dashboard.json"] = rendered(MONITORING / "dashboard.json")
    for name, document in documents.items():
        filters = all_filters(document)
        assert filters, name
        for text in filters:
            (metric_type,) = re.findall(r'metric\.type="([^"]+)"', text)
            if metric_type.startswith("logging.googleapis.com/user/"):
                metric = metric_type.rsplit("/", 1)[1]
                assert metric in defs, f"{name}: {metric} is not defined in infra/monitoring/metrics"
                used = set(re.findall(r"metric\.labels?\.([a-z_]+)", text))
                assert used <= labels[metric], f"{name}: {sorted(used - labels[metric])} not labels of {metric}"
            else:
                assert metric_type == "run.googleapis.com/request_count", metric_type
            words = outcome_words(text)
            known = OUTCOMES | PENDING_OUTCOMES
            assert words <= known, f"{name}: {sorted(words - known)} are no outcome words"
        for group in re.findall(r'"metric\.label\.([a-z_]+)"', json.dumps(document)):
            assert any(group in keys for keys in labels.values()) or group == "response_code_class", group
    by_title = {name: " ".join(all_filters(doc)) for name, doc in documents.items()}
    assert outcome_words(by_title["lead_failed.json"]) == {"lead_failed"}
    assert "formcall_misconfigured" in outcome_words(by_title["formcall_misconfigured.json"])
    assert "scheduled" in outcome_words(by_title["scheduled_share.json"])
    assert "5xx" in by_title["webhook_5xx.json"]


def test_the_dashboard_shows_what_operators_asked_for() -> None:
    board = rendered(MONITORING / "dashboard.json")
    titles = [tile["widget"]["title"] for tile in board["mosaicLayout"]["tiles"]]
    text = json.dumps(board)
    assert any("route and outcome" in t for t in titles)
    assert any("submission to call" in t for t in titles)
    assert any("FormCall latency" in t for t in titles)
    assert any("error codes" in t for t in titles)
    assert any("Scheduled and failed" in t for t in titles)
    for metric in ("formcall_outcomes", "formcall_wait_seconds", "formcall_latency_ms"):
        assert f"logging.googleapis.com/user/{metric}" in text


def test_both_deploy_paths_use_the_same_monitoring_files() -> None:
    monitoring_tf = (MODULE / "monitoring.tf").read_text()
    assert '"${path.module}/../monitoring"' in monitoring_tf
    for kind in ("metrics", "policies"):
        assert f'"${{local.monitoring_dir}}/{kind}"' in monitoring_tf
    assert "dashboard.json" in monitoring_tf
    script = DEPLOY.read_text()
    assert "infra/monitoring/render.py" in script
    assert "--monitoring" in script


def test_monitoring_dry_run_renders_and_names_the_files(fake_gcloud: Path) -> None:
    args = ["--popup-uuid", POPUP, "--token-version", "1", "--monitoring", "ops@acme.cl"]
    result = deploy(fake_gcloud, "--dry-run", "--project", PROJECT, *args)
    assert result.returncode == 0, result.stderr
    files = re.findall(r"--(?:config|policy)-from-file (\S+)", result.stdout)
    assert len({Path(f).name for f in files}) == 5 + 10 + 1
    memory = deploy(
        fake_gcloud, "--dry-run", "--project", PROJECT, *args, "--store-url", "memory://", "--max-instances", "1"
    )
    assert memory.returncode == 0, memory.stderr
    policies = {Path(f).name for f in re.findall(r"--policy-from-file (\S+)", memory.stdout)}
    assert len(policies) == 6 and not any(name.startswith("sweeper_") for name in policies), policies
    for file in files:
        content = json.loads(Path(file).read_text())
        assert "${" not in json.dumps(content).replace("${metric.labels.route}", "")
    policy = json.loads(Path(next(f for f in files if f.endswith("lead_failed.json"))).read_text())
    assert policy["notificationChannels"] == [f"projects/{PROJECT}/notificationChannels/0000000000000000000"]


def test_unknown_paths_log_one_fixed_route_value(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """formcall_outcomes labels lines by route: a stranger's paths must not add label values."""
    import io

    from formcall_webhook.app import UNKNOWN_ROUTE, App, Request, read_stream

    config = tmp_path / "f.toml"
    config.write_text(f"[routes.contact]\npopup_uuid = '{POPUP}'\nretry = false\n")
    app = App(
        {"FORMCALL_CONFIG": str(config), "FORMCALL_SECURITY_TOKEN": "t", "FORMCALL_API_URL": "http://127.0.0.1:9/x"}
    )
    for path in ("/wp-admin", "/a/b/c", "/" + "x" * 300):
        raw = b"{}"
        stream = io.BytesIO(raw)
        reader = functools.partial(read_stream, stream)
        response = app.handle(Request("POST", path, {"content-type": "application/json"}, b"", reader, len(raw)))
        assert response.status == 404
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    unknown = [line for line in lines if line.get("outcome") == "unknown_route"]
    assert len(unknown) == 3
    assert {line["route"] for line in unknown} == {UNKNOWN_ROUTE}
    assert any("wp-admin" in line["message"] for line in unknown), "the path itself stays in the message"


def test_check_warns_when_a_route_accepts_the_token_in_the_query_string(tmp_path: Path) -> None:
    """Cloud Run's request logs keep the URL's query string: ?token= would sit there for 30 days."""
    path = tmp_path / "formcall.toml"
    common = f"[defaults]\npopup_uuid = '{POPUP}'\n[routes.zap]\nauth = {{ type = 'token', secret = 'env:Z'"

    def check(text: str) -> subprocess.CompletedProcess[str]:
        path.write_text(text)
        env = {"PATH": os.environ.get("PATH", ""), "FORMCALL_SECURITY_TOKEN": "t", "Z": "z"}
        return subprocess.run(
            [sys.executable, "-m", "formcall_webhook", "check", str(path)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    loud = check(common + " }\n")
    assert loud.returncode == 0, loud.stderr
    assert "warning: routes.zap.auth: the token is also accepted as ?token=" in loud.stderr
    assert "query_token = false" in loud.stderr
    quiet = check(common + ", query_token = false }\n")
    assert quiet.returncode == 0 and "?token=" not in quiet.stderr, quiet.stderr


# Labels of Google's own monitored resources and metrics that the filters may name.
RESOURCE_LABELS = {
    "cloud_run_revision": {"service_name", "revision_name", "location", "configuration_name", "project_id"},
    "cloud_scheduler_job": {"job_id", "location", "project_id"},
}
BUILT_IN_METRIC_LABELS = {"run.googleapis.com/request_count": {"response_code", "response_code_class", "route"}}


def test_every_alert_filter_field_is_one_the_code_writes() -> None:
    """Each field an alert or its log metric filters on: a log field the code writes, a label a log
    metric extracts from one, or a label of the Google resource or metric named in the same filter."""
    from formcall_webhook.logs import LOG_FIELDS

    defs = metric_defs()
    for name, metric in defs.items():
        fields = re.findall(r"\b(jsonPayload|resource\.labels|severity)\b\.?([a-z_]*)", metric["filter"])
        (rtype,) = re.findall(r'resource\.type="([^"]+)"', metric["filter"])
        for kind, field in fields:
            if kind == "jsonPayload":
                assert field in LOG_FIELDS, f"{name} filters on jsonPayload.{field}, which the code never writes"
            elif kind == "resource.labels":
                assert field in RESOURCE_LABELS[rtype], f"{name}: {rtype} has no label {field}"
        for extractor in [*metric["labelExtractors"].values(), metric.get("valueExtractor", "")]:
            for field in re.findall(r"jsonPayload\.([a-z_]+)", extractor):
                assert field in LOG_FIELDS, f"{name} extracts jsonPayload.{field}, which the code never writes"
    for path in sorted((MONITORING / "policies").glob("*.json")):
        policy = rendered(path)
        for condition in policy["conditions"]:
            (kind,) = [key for key in condition if key.startswith("condition")]
            assert kind in {"conditionThreshold", "conditionAbsent"}, f"{path.name}: {kind}"
        for text in all_filters(policy):
            (rtype,) = re.findall(r'resource\.type="([^"]+)"', text)
            (metric_type,) = re.findall(r'metric\.type="([^"]+)"', text)
            if metric_type.startswith("logging.googleapis.com/user/"):
                metric_labels = set(defs[metric_type.rsplit("/", 1)[1]]["labelExtractors"])
            else:
                metric_labels = BUILT_IN_METRIC_LABELS[metric_type]
            for field in re.findall(r"\bmetric\.labels?\.([a-z_]+)", text):
                assert field in metric_labels, f"{path.name}: {metric_type} has no label {field}"
            for field in re.findall(r"\bresource\.labels?\.([a-z_]+)", text):
                assert field in RESOURCE_LABELS[rtype], f"{path.name}: {rtype} has no label {field}"
            assert not re.search(r"jsonPayload\.", text), f"{path.name}: policies filter metrics, not log lines"


def test_the_alerts_issue_17_asks_for() -> None:
    policies = {path.stem: rendered(path) for path in sorted((MONITORING / "policies").glob("*.json"))}
    text = {name: json.dumps(policy) for name, policy in policies.items()}
    assert outcome_words(" ".join(all_filters(policies["sweeper_stale"]))) == {"sweeper_stale"}
    (absent,) = policies["sweeper_silent"]["conditions"]
    assert absent["conditionAbsent"]["duration"] == "300s"
    assert 'metric.label.outcome=\\"sweep\\"' in text["sweeper_silent"]
    assert "formcall-sweep" in text["sweeper_5xx"] and "5xx" in text["sweeper_5xx"]
    assert "formcall_scheduler_errors" in text["sweeper_scheduler_errors"]
    assert metric_defs()["formcall_scheduler_errors"]["filter"].endswith("severity>=ERROR")
    assert outcome_words(" ".join(all_filters(policies["formcall_unavailable"]))) == {
        "store_unavailable",
        "formcall_unavailable",
        "origination_failed",
    }
    assert "formcall_browser_redirects" in text["browser_failures"]
    assert "jsonPayload.status=303" in metric_defs()["formcall_browser_redirects"]["filter"]


def test_terraform_public_without_allusers_turns_the_invoker_check_off_in_the_deploying_resource() -> None:
    """An org that refuses allUsers: the webhook is a Cloud Run service with invoker_iam_disabled."""
    (service,) = of_type("google_cloud_run_v2_service").values()
    assert service["count"] == "${var.invoker_iam_disabled ? 1 : 0}"
    assert service["invoker_iam_disabled"] is True
    assert service["ingress"] == "INGRESS_TRAFFIC_ALL"
    (build,) = service["build_config"]
    assert build["function_target"] == "formcall_webhook"
    assert build["base_image"] == "${local.webhook_base_image}"
    assert "runtimes/python312" in (MODULE / "webhook_run.tf").read_text()
    assert "google_storage_bucket_object.source.name" in build["source_location"]
    (template,) = service["template"]
    assert template["service_account"] == "${google_service_account.runtime.email}"
    # The function resource leaves the webhook out then, and no allUsers binding is made.
    assert 'key == "webhook" && var.invoker_iam_disabled' in function()["for_each"]
    rule = variables()["invoker_iam_disabled"]["validation"][0]["condition"]
    assert rule == "${!var.invoker_iam_disabled || var.public}"


def test_the_config_check_runs_with_the_store_it_deploys(dry_runs: dict[str, Any]) -> None:
    """Issue 20: deploy.sh's check sees the store it deploys, so a shared store without leads.hash_key is
    warned about before the first deploy (setting it later forgets every opt-out); memory:// is not shared."""
    hint = "warning: leads.hash_key is not set"
    for shared in ("pinned", "redis"):  # firestore:// by default; a redis:// URL held in a secret
        assert dry_runs[shared].returncode == 0, dry_runs[shared].stderr
        assert hint in dry_runs[shared].stderr, (shared, dry_runs[shared].stderr)
    assert dry_runs["memory"].returncode == 0, dry_runs["memory"].stderr
    assert hint not in dry_runs["memory"].stderr
