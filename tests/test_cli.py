"""`python -m formcall_webhook check`, run as a user would before deploying."""

from __future__ import annotations

import json
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


def try_(*args: str, stdin: str | None = None, env: dict[str, str] | None = None) -> tuple[int, dict[str, object]]:
    done = subprocess.run(
        [sys.executable, "-m", "formcall_webhook", "try", *args],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", **coverage_env(), **(env or {})},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.stderr == "", done.stderr
    return done.returncode, json.loads(done.stdout)


def test_try_zero_config_form_sample() -> None:
    code, result = try_("tests/samples/elementor.form", env={"FORMCALL_POPUP_UUID": POPUP})
    assert code == 0
    assert result["phone"] == {
        "e164": "+56956311283", "region": "CL", "type": "FIXED_LINE_OR_MOBILE", "split": "56 / 9 / 56311283"
    }  # fmt: skip
    assert result["payload"] == {
        "popup_uuid": POPUP, "country_code": "56", "areacode": "9", "phonenumber": "56311283",
        "security_token": "***", "adicional": {"Nombre": "Diego Muñoz", "Email": "diego@example.cl"},
    }  # fmt: skip


def test_try_a_route_of_a_config_never_shows_the_token() -> None:
    env = {"FORMCALL_SECURITY_TOKEN": "real-token-value"}
    code, result = try_("--config", "examples/formcall.toml", "--route", "hubspot",
                        "tests/samples/hubspot_legacy_contact.json", env=env)  # fmt: skip
    assert code == 0
    assert result["payload"]["security_token"] == "***"  # type: ignore[index]
    assert "real-token-value" not in json.dumps(result)


def test_try_multipart_get_and_headers(tmp_path: Path) -> None:
    config = tmp_path / "f.toml"
    config.write_text(
        f"[routes.default]\npopup_uuid = '{POPUP}'\nphone = \"{{{{ headers['x-tel'] or query.tel or phone }}}}\"\n"
        "allow_get = true\n",
        encoding="utf-8",
    )
    code, result = try_(
        "--config", str(config), "--header", "X-Tel: +56 2 2123 4567", "tests/samples/jotform.multipart"
    )
    assert code == 0
    assert result["phone"]["split"] == "56 / 2 / 21234567"  # type: ignore[index]
    code, result = try_("--config", str(config), "--method", "GET", "--query", "tel=%2B56961234567", "-", stdin="")
    assert result["phone"]["split"] == "56 / 9 / 61234567"  # type: ignore[index]


def test_try_shows_the_answer_the_function_would_give() -> None:
    code, result = try_("--config", "examples/formcall.toml", "-", stdin='{"telefono": "123"}')
    assert code == 1
    assert result["answer"] == {  # type: ignore[comparison-overlap]
        "status": 422, "success": False, "error": "invalid_phone", "message": "The phone number is not a valid number."
    }  # fmt: skip
    code, result = try_("--config", "examples/formcall.toml", "--route", "nope", "-", stdin="{}")
    assert result["answer"]["error"] == "unknown_route"  # type: ignore[index]
    code, result = try_("--config", "examples/formcall.toml", "-", stdin="{not json")
    assert result["answer"]["error"] == "bad_request"  # type: ignore[index]


def check_config(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "formcall.toml"
    path.write_text(f"[defaults]\npopup_uuid = '{POPUP}'\n{text}", encoding="utf-8")
    return run("check", str(path), env={"FORMCALL_SECURITY_TOKEN": "t", **(env or {})})


def test_check_warns_about_an_open_route_and_not_a_guarded_one(tmp_path: Path) -> None:
    done = check_config(
        tmp_path,
        "[routes.open]\nrate_limit = false\n[routes.limited]\n[routes.own]\nrate_limit = { per_ip = '5/minute' }\n"
        "[routes.zapier]\nauth = { type = 'token', secret = 'env:Z', query_token = false }\nrate_limit = false\n",
        env={"Z": "z"},
    )
    assert done.returncode == 0, done.stderr
    # This file has no [routes.default]: that warning is tested on its own below.
    warnings = [line for line in done.stderr.splitlines() if not line.startswith("warning: routes: ")]
    assert len(warnings) == 1, done.stderr
    assert warnings[0].startswith("warning: routes.open: anyone can make this route place paid calls")
    assert "rate_limit = false" in warnings[0]


def test_check_warns_about_http_endpoints(tmp_path: Path) -> None:
    done = check_config(
        tmp_path,
        "[formcall]\napi_url = 'http://formcall.example/calls/manage/api'\n"
        "[routes.default]\nredirect = { success = 'http://acme.cl/gracias', failure = '/error' }\n"
        "captcha = { provider = 'turnstile', secret = 'env:C', verify_url = 'http://captcha.example/v' }\n"
        "[routes.local]\ncaptcha = { provider = 'turnstile', secret = 'env:C', verify_url = 'http://127.0.0.1:9/v' }\n",
        env={"C": "c"},
    )
    assert done.returncode == 0, done.stderr
    warned = {line.split(":", 2)[1].strip() for line in done.stderr.splitlines()}
    assert warned == {
        "formcall.api_url",
        "routes.default.redirect.success",
        "routes.default.captcha.verify_url",
    }, done.stderr
    assert "use https://" in done.stderr


def test_check_warns_when_a_number_type_never_occurs_in_a_region(tmp_path: Path) -> None:
    # phonenumbers cannot tell Chilean mobiles from landlines: it reports them FIXED_LINE_OR_MOBILE.
    done = check_config(tmp_path, "[routes.default]\nallowed_number_types = ['MOBILE']\n")
    assert done.returncode == 0
    assert done.stderr.strip() == (
        "warning: routes.default.allowed_number_types: phonenumbers reports CL numbers as FIXED_LINE_OR_MOBILE, "
        "never as MOBILE, so those leads would be refused (number_type_not_allowed); "
        'write allowed_number_types = ["MOBILE", "FIXED_LINE_OR_MOBILE"]'
    )
    # The suggestion works: with it, a Chilean mobile is taken, and check is quiet.
    fixed = check_config(tmp_path, "[routes.default]\nallowed_number_types = ['MOBILE', 'FIXED_LINE_OR_MOBILE']\n")
    assert fixed.stderr == ""
    code, result = try_("--config", str(tmp_path / "formcall.toml"), "-", stdin='{"phone": "+56 9 6123 4567"}')
    assert code == 0 and result["phone"]["type"] == "FIXED_LINE_OR_MOBILE"  # type: ignore[index]
    # Argentina's mobiles are MOBILE to phonenumbers: nothing to warn about.
    quiet = check_config(tmp_path, "region = 'AR'\n[routes.default]\nallowed_number_types = ['MOBILE']\n")
    assert quiet.stderr == ""


def test_check_names_a_bad_default_as_defaults(tmp_path: Path) -> None:
    done = check_config(tmp_path, "region = 'ZZ'\n[routes.a]\n[routes.b]\n")
    assert done.returncode == 1
    assert (
        done.stderr.strip()
        == f"error: {tmp_path / 'formcall.toml'}: defaults.region: 'ZZ' is not a region code such as CL"
    )


def test_check_refuses_a_cors_origin_that_cannot_match(tmp_path: Path) -> None:
    done = check_config(tmp_path, "[routes.default]\ncors_origins = ['https://acme.cl/']\n")
    assert done.returncode == 1
    assert "routes.default.cors_origins: 'https://acme.cl/' can never match" in done.stderr
    assert "write https://acme.cl" in done.stderr


def test_check_warns_about_a_shared_store_without_a_hash_key_and_never_opens_it(tmp_path: Path) -> None:
    # Nothing listens on port 1: check would fail if it opened the store.
    dead = {"FORMCALL_STORE_URL": "redis://127.0.0.1:1/0", "K": "k"}
    done = check_config(tmp_path, "", env=dead)
    assert done.returncode == 0, done.stderr
    assert done.stderr.startswith("warning: leads.hash_key is not set: the store's phone hashes")
    assert check_config(tmp_path, "[leads]\nhash_key = 'env:K'\n", env=dead).stderr == ""
    assert check_config(tmp_path, "").stderr == ""  # memory://: nothing outlives the process


FIVE_MISTAKES = f"""
[formcall]
timeout_seconds = 0

[routes.default]
popup_uuid = "{POPUP}"
phon = "{{{{ telefono }}}}"
region = "ZZ"
retry = {{ service_hours = "lun-vie 9:00-19:00, sáb 10:00-25:00" }}

[routes.zapier]
popup_uuid = "{POPUP}"
auth = {{ type = "token", secret = "hunter2" }}
"""


def test_check_names_all_five_mistakes_in_one_run(tmp_path: Path) -> None:
    path = tmp_path / "formcall.toml"
    path.write_text(FIVE_MISTAKES, encoding="utf-8")
    done = run("check", str(path), env={"FORMCALL_SECURITY_TOKEN": "t"})
    assert done.returncode == 1
    lines = done.stderr.splitlines()
    assert lines[-1] == "5 errors: each names the file, the key and the fix"
    errors = [line.removeprefix(f"error: {path}: ") for line in lines[:-1]]
    assert [error.split(":", 1)[0] for error in errors] == [
        "formcall.timeout_seconds",
        "routes.default.phon",
        "routes.default.region",
        "routes.default.retry.service_hours",
        "routes.zapier.auth.secret",
    ], done.stderr
    assert all(line.startswith(f"error: {path}: ") for line in lines[:-1])
    # Each says what to write instead.
    assert errors[0].endswith("must be more than 0 and at most 60")
    assert errors[1].endswith("unknown key; did you mean `phone`?")
    assert "'ZZ' is not a region code such as CL" in errors[2]
    assert "'25:00' is not a time of day" in errors[3]  # lun-vie, 9:00 and sáb were taken
    assert "use env:NAME, file:PATH or secret:" in errors[4]
    assert done.stdout == ""


def test_check_warns_about_what_fails_once_deployed(tmp_path: Path) -> None:
    text = f"""
[defaults]
popup_uuid = "{POPUP}"

[routes.hubspot]
auth = {{ type = "hubspot", secret = "env:HUBSPOT_APP_SECRET" }}
outcome = {{ hubspot = {{ token = "env:HUBSPOT_TOKEN", api_url = "http://hubapi.example" }} }}

[routes.signed]
auth = {{ type = "hubspot", secret = "env:HUBSPOT_APP_SECRET", public_url = "https://f.example/signed" }}
"""
    path = tmp_path / "formcall.toml"
    path.write_text(text, encoding="utf-8")
    env = {"FORMCALL_SECURITY_TOKEN": "t", "HUBSPOT_TOKEN": "pat", "FORMCALL_STORE_URL": "redis://127.0.0.1:1/0"}
    done = run("check", str(path), env=env)
    assert done.returncode == 0, done.stderr
    warned = [line.removeprefix("warning: ") for line in done.stderr.splitlines()]
    assert sorted(line.split(":", 1)[0] for line in warned) == [
        "leads.hash_key is not set",
        "routes",
        "routes.hubspot.auth.public_url",
        "routes.hubspot.auth.secret",
        "routes.hubspot.outcome.hubspot.api_url",
    ], done.stderr
    by_key = {line.split(":", 1)[0]: line for line in warned}
    assert "no [routes.default], so POST / answers 404" in by_key["routes"]
    assert "HUBSPOT_APP_SECRET is not set here" in by_key["routes.hubspot.auth.secret"]
    assert "also used by routes.signed.auth.secret" in by_key["routes.hubspot.auth.secret"]
    assert 'public_url = "https://YOUR-FUNCTION-URL/hubspot"' in by_key["routes.hubspot.auth.public_url"]
    assert "use https://" in by_key["routes.hubspot.outcome.hubspot.api_url"]
    # Set and fixed, check is quiet.
    fixed = (
        text.replace("[routes.hubspot]", "[routes.default]\n[routes.hubspot]")
        .replace(
            'secret = "env:HUBSPOT_APP_SECRET" }',
            'secret = "env:HUBSPOT_APP_SECRET", public_url = "https://f.example/h" }',
        )
        .replace("http://hubapi.example", "https://hubapi.example")
    )
    path.write_text(fixed + '\n[leads]\nhash_key = "env:K"\n', encoding="utf-8")
    quiet = run("check", str(path), env={**env, "HUBSPOT_APP_SECRET": "s", "K": "k"})
    assert (quiet.returncode, quiet.stderr) == (0, "")


def test_check_and_try_never_load_the_runtime(tmp_path: Path) -> None:
    sample = tmp_path / "lead.json"
    sample.write_text('{"phone": "+56 9 6123 4567"}', encoding="utf-8")
    code = (
        "import sys\n"
        "from formcall_webhook.cli import main\n"
        f"assert main(['check']) == 0 and main(['try', {str(sample)!r}]) == 0\n"
        "heavy = ('runtime', 'delivery', 'app', 'sweep', 'followup', 'outcomes', 'stores.redis', 'stores.firestore')\n"
        "print([m for m in heavy if 'formcall_webhook.' + m in sys.modules])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "FORMCALL_POPUP_UUID": POPUP, "FORMCALL_SECURITY_TOKEN": "t", **coverage_env()},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"
