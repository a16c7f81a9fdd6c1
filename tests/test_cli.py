"""`python -m formcall_webhook check`, run as a user would before deploying."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.harness import ROOT, coverage_env

POPUP = "e5c98214-d0f6-11e1-8c30-001d09ef4a24"


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "formcall_webhook", *args],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", **coverage_env(), **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_check_lists_routes_of_the_example() -> None:
    done = run("check", "examples/formcall.toml", env={"HUBSPOT_APP_SECRET": "x"})
    assert done.returncode == 0, done.stderr
    assert "ok: examples/formcall.toml" in done.stdout
    assert "route default" in done.stdout
    assert "/hubspot" in done.stdout
    assert "auth=hubspot" in done.stdout


def test_check_names_file_key_and_problem(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(f"[routes.default]\npopup_uuid = '{POPUP}'\nregion = 'ZZ'\n", encoding="utf-8")
    done = run("check", str(path))
    assert done.returncode == 1
    assert done.stderr.strip() == f"error: {path}: routes.default.region: 'ZZ' is not a region code such as CL"


def test_check_zero_config_from_environment() -> None:
    done = run("check", env={"FORMCALL_POPUP_UUID": POPUP})
    assert done.returncode == 0
    assert "ok: environment" in done.stdout
    assert "no FormCall token" in done.stderr


def test_check_warns_when_the_token_variable_is_unset_here() -> None:
    done = run("check", env={"FORMCALL_POPUP_UUID": POPUP, "FORMCALL_SECURITY_TOKEN": "t"})
    assert done.returncode == 0
    assert done.stderr == ""
