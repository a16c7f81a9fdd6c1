"""The pipeline in-process (App.handle), for cases cheaper to set up than a whole process."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from formcall_webhook.app import App, Request, read_stream, route_name
from formcall_webhook.simulator import Simulator

POPUP = "e5c98214-d0f6-11e1-8c30-001d09ef4a24"
TOKEN = "pipeline-token-3c1e"
SIMULATOR_TOKENS = (TOKEN,)  # the tokens the module's simulator accepts (tests/conftest.py)


def request(
    body: bytes | dict[str, Any] = b"",
    *,
    method: str = "POST",
    path: str = "/",
    content_type: str | None = "application/json",
    query: bytes = b"",
    headers: dict[str, str] | None = None,
) -> Request:
    raw = json.dumps(body).encode() if isinstance(body, dict) else body
    all_headers = {"content-type": content_type} if content_type else {}
    all_headers.update(headers or {})
    stream = io.BytesIO(raw)
    return Request(
        method, path, all_headers, query, lambda limit, timeout=None: read_stream(stream, limit, timeout), len(raw)
    )


def app_with(tmp_path: Path, simulator: Simulator, config: str | None = None, **env: str) -> App:
    environ = {"FORMCALL_API_URL": simulator.api_url, "FORMCALL_SECURITY_TOKEN": TOKEN, **env}
    if config is not None:
        path = tmp_path / "formcall.toml"
        path.write_text(config, encoding="utf-8")
        environ["FORMCALL_CONFIG"] = str(path)
    else:
        environ.setdefault("FORMCALL_POPUP_UUID", POPUP)
    return App(environ)


def result(app: App, req: Request) -> tuple[int, dict[str, Any]]:
    response = app.handle(req)
    return response.status, json.loads(response.body)


def test_route_names() -> None:
    assert route_name("/") == "default"
    assert route_name("") == "default"
    assert route_name("/hubspot/") == "hubspot"


def test_read_stream_stops_at_the_limit() -> None:
    assert read_stream(io.BytesIO(b"x" * 100), 10) == b"x" * 10
    assert read_stream(io.BytesIO(b"abc"), 10) == b"abc"


def test_placed(tmp_path: Path, simulator: Simulator) -> None:
    app = app_with(tmp_path, simulator)
    status, body = result(app, request({"phone": "+56961234567"}))
    assert status == 200
    assert body["uuid"] == simulator.placed()[0]["uuid"]


def test_get_only_where_allowed(tmp_path: Path, simulator: Simulator) -> None:
    config = f"[routes.default]\npopup_uuid = '{POPUP}'\n[routes.zap]\npopup_uuid = '{POPUP}'\nallow_get = true\n"
    app = app_with(tmp_path, simulator, config)
    status, _ = result(app, request(method="GET", query=b"phone=%2B56961234567", content_type=None))
    assert status == 405
    status, body = result(app, request(method="GET", path="/zap", query=b"phone=%2B56961234567", content_type=None))
    assert status == 200, body
    assert len(simulator.placed()) == 1
    response = app.handle(request(method="OPTIONS", path="/zap"))
    assert response.status == 204
    assert "GET" in response.headers["Allow"]


def test_popup_template_that_renders_no_uuid_is_misconfigured(tmp_path: Path, simulator: Simulator) -> None:
    app = app_with(tmp_path, simulator, "[routes.default]\npopup_uuid = '{{ popup }}'\n")
    status, body = result(app, request({"phone": "+56961234567", "popup": "nope"}))
    assert (status, body["error"]) == (500, "misconfigured")
    status, _ = result(app, request({"phone": "+56961234567", "popup": POPUP}))
    assert status == 200


def test_dry_run_needs_no_token(tmp_path: Path, simulator: Simulator) -> None:
    app = App({"FORMCALL_POPUP_UUID": POPUP, "FORMCALL_DRY_RUN": "1", "FORMCALL_API_URL": simulator.api_url})
    status, body = result(app, request({"phone": "+56961234567", "nombre": "Ana"}))
    assert status == 200
    assert body["payload"]["adicional"] == {"Nombre": "Ana"}
    assert simulator.calls() == []


def test_content_length_over_limit_is_refused_before_reading(tmp_path: Path, simulator: Simulator) -> None:
    app = app_with(tmp_path, simulator)

    def never_read(limit: int) -> bytes:
        raise AssertionError("the body must not be read")

    req = Request("POST", "/", {"content-type": "application/json"}, b"", never_read, 10**9)
    status, body = result(app, req)
    assert (status, body["error"]) == (413, "payload_too_large")


def test_an_unexpected_error_is_a_clean_500(
    tmp_path: Path, simulator: Simulator, capsys: pytest.CaptureFixture[str]
) -> None:
    app = app_with(tmp_path, simulator)

    def broken(limit: int, timeout: float | None = None) -> bytes:
        raise RuntimeError("the stream broke with +56961234567 in it")

    status, body = result(app, Request("POST", "/", {}, b"", broken))
    assert (status, body["error"]) == (500, "misconfigured")
    log = capsys.readouterr().out
    assert "RuntimeError" in log
    assert "+56961234567" not in log


def test_error_8_with_an_unchanged_token_is_not_retried(tmp_path: Path, simulator: Simulator) -> None:
    app = app_with(tmp_path, simulator)
    simulator.set_tokens("another")
    status, body = result(app, request({"phone": "+56961234567"}))
    assert (status, body["formcall_error_code"]) == (502, 8)
    assert len(simulator.calls()) == 1


def test_file_token_is_reread_after_error_8(tmp_path: Path, simulator: Simulator) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("old-token", encoding="utf-8")
    config = f"[formcall]\nsecurity_token = 'file:{token_file}'\n[routes.default]\npopup_uuid = '{POPUP}'\n"
    app = App({"FORMCALL_API_URL": simulator.api_url, "FORMCALL_CONFIG": str(tmp_path / "f.toml")})
    (tmp_path / "f.toml").write_text(config, encoding="utf-8")
    simulator.set_tokens("new-token")
    token_file.write_text("new-token", encoding="utf-8")  # the volume mount was updated
    status, _ = result(app, request({"phone": "+56961234567"}))
    assert status == 200
    assert len(simulator.calls()) == 1


def test_log_level_filters(tmp_path: Path, simulator: Simulator, capsys: pytest.CaptureFixture[str]) -> None:
    app = app_with(tmp_path, simulator, FORMCALL_LOG_LEVEL="ERROR")
    result(app, request({"phone": "+56961234567"}))
    result(app, request({"phone": "123"}))
    assert capsys.readouterr().out == ""
    result(app, request(b"{}", path="/x"))
    app_missing = App({"FORMCALL_POPUP_UUID": POPUP, "FORMCALL_LOG_LEVEL": "ERROR"})
    result(app_missing, request({"phone": "+56961234567"}))
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["severity"] for line in lines] == ["ERROR"]


def test_warm_loads_config_and_never_raises(tmp_path: Path) -> None:
    (tmp_path / "bad.toml").write_text("[routes.default]\npopup_uuid = 'nope'\n", encoding="utf-8")
    broken = App({"FORMCALL_CONFIG": str(tmp_path / "bad.toml")})
    broken.warm()  # the error waits for a request to report it
    status, body = result(broken, request({"phone": "+56961234567"}))
    assert (status, body["error"]) == (500, "misconfigured")
    env = {"FORMCALL_POPUP_UUID": POPUP, "FORMCALL_SECURITY_TOKEN_SECRET": "projects/p/secrets/s/versions/1"}
    App(env).warm()
    assert "google.cloud.secretmanager" in sys.modules


def test_a_popup_template_broken_by_the_submission_is_a_400(tmp_path: Path, simulator: Simulator) -> None:
    template = "{{ {'santiago': '" + POPUP + "'}.get(sucursal, '" + POPUP + "') }}"
    app = app_with(tmp_path, simulator, f'[routes.default]\npopup_uuid = "{template}"\n')
    status, body = result(app, request({"phone": "+56961234567", "sucursal": ["a", "b"]}))
    assert (status, body["error"]) == (400, "bad_request")
    assert simulator.calls() == []


def test_a_lone_surrogate_reaches_formcall_as_a_replacement_character(tmp_path: Path, simulator: Simulator) -> None:
    app = app_with(tmp_path, simulator)
    status, _ = result(app, request(b'{"phone": "+56961234567", "nombre": "Ana\\ud800"}'))
    assert status == 200
    assert simulator.placed()[0]["payload"]["adicional"]["Nombre"] == "Ana\ufffd"


def test_a_captcha_route_still_calls_a_number_at_most_3_times_a_day(tmp_path: Path, simulator: Simulator) -> None:
    """Spec 2: a captcha proves a person, not a consented number, so per_phone = "3/day" applies to a
    route without auth even when it has a captcha (and no per_ip: the captcha guards against floods)."""
    from tests.fakes.captcha import FakeSiteverify

    siteverify = FakeSiteverify("captcha-secret-7d2a").start()
    try:
        config = (
            f"[routes.default]\npopup_uuid = '{POPUP}'\ndedupe = {{ key = '{{{{ n }}}}' }}\n"
            f"captcha = {{ provider = 'turnstile', secret = 'env:CAPTCHA_SECRET', verify_url = '{siteverify.url}' }}\n"
        )
        app = app_with(tmp_path, simulator, config, CAPTCHA_SECRET="captcha-secret-7d2a")
        route = app.config().routes["default"]
        assert route.rate_per_ip is None and route.rate_per_phone is not None
        answers = [
            result(app, request({"phone": "+56 9 7123 4567", "n": str(n), "cf-turnstile-response": "pass"}))
            for n in range(4)
        ]
        other = result(app, request({"phone": "+56 9 7123 4568", "n": "x", "cf-turnstile-response": "pass"}))
    finally:
        siteverify.stop()
    assert [status for status, _ in answers] == [200, 200, 200, 429]
    assert answers[3][1]["error"] == "rate_limited"
    assert other[0] == 200
    assert len(simulator.placed()) == 4
