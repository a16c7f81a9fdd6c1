"""The whole function through a real functions-framework process, FormCall simulated on loopback."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from formcall_webhook.simulator import Simulator
from tests.fakes.secret_manager import FakeSecretManager
from tests.harness import FunctionProcess, forbidden_in_logs, start_all, stop_all

# Every test here talks to a functions-framework process.
pytestmark = pytest.mark.slow

POPUP = "e5c98214-d0f6-11e1-8c30-001d09ef4a24"
POPUP_B = "f0e1d2c3-0000-4000-8000-000000000001"
TOKEN = "tok-Zx81-live-a9f3"
SM_TOKEN_V1 = "sm-token-v1-77c2"
SIMULATOR_TOKENS = (TOKEN, SM_TOKEN_V1)  # the tokens the module's simulator accepts (tests/conftest.py)
SM_TOKEN_V2 = "sm-token-v2-91d4"
SECRET_NAME = "projects/acme/secrets/formcall-token"
HUBSPOT_SECRET = "hs-app-secret-5521"
# Every form of every lead's number used here: none may reach a log.
WHOLE_NUMBERS: set[str] = set()
_serial = itertools.count()


def fresh_lead() -> dict[str, str]:
    """A lead with a number no other test used: dedupe would (rightly) suppress a repeat."""
    local = str(61234567 + next(_serial) * 1013)
    typed = f"9 {local[:4]} {local[4:]}"
    WHOLE_NUMBERS.update({f"+569{local}", f"569{local}", f"9{local}", local, typed})
    return {"telefono": typed, "nombre": "Ana", "apellido": "Pérez Cotapos", "email": "ana.perez@example.cl"}


TIMEOUT = 2.0

# What every process of this module wrote; scanned at the end of the module.
LOG_FILES: list[Path] = []


@pytest.fixture(scope="module")
def logdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("function-logs")


@pytest.fixture(scope="module")
def secret_manager() -> Iterator[FakeSecretManager]:
    fake = FakeSecretManager().start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def processes(
    simulator: Simulator, logdir: Path, secret_manager: FakeSecretManager
) -> Iterator[dict[str, FunctionProcess]]:
    """Every process of this module, one per environment, started at once (their start-ups overlap)."""
    (logdir / "formcall.toml").write_text(CONFIG, encoding="utf-8")
    (logdir / "broken.toml").write_text(
        f'[routes.default]\npopup_uuid = "{POPUP}"\nphone = "{{{{ telefono "\n', encoding="utf-8"
    )
    (logdir / "token").write_text(TOKEN + "\n", encoding="utf-8")
    (logdir / "file-ref.toml").write_text(
        f'[formcall]\nsecurity_token = "file:{logdir / "token"}"\n[routes.default]\npopup_uuid = "{POPUP}"\n',
        encoding="utf-8",
    )
    formcall = {"FORMCALL_API_URL": simulator.api_url, "FORMCALL_SECURITY_TOKEN": TOKEN}
    envs = {
        "zero-config": {**formcall, "FORMCALL_POPUP_UUID": POPUP, "GOOGLE_CLOUD_PROJECT": "acme-prod"},
        "configured": {**formcall, "FORMCALL_CONFIG": str(logdir / "formcall.toml")},
        "broken": {"FORMCALL_CONFIG": str(logdir / "broken.toml"), "FORMCALL_SECURITY_TOKEN": TOKEN},
        "no-token": {"FORMCALL_POPUP_UUID": POPUP},
        "secret-manager": {
            "FORMCALL_API_URL": simulator.api_url,
            "FORMCALL_POPUP_UUID": POPUP,
            "FORMCALL_SECURITY_TOKEN_SECRET": f"{SECRET_NAME}/versions/latest",
            "FORMCALL_SECRET_MANAGER_ENDPOINT": secret_manager.endpoint,
        },
        "file-ref": {"FORMCALL_CONFIG": str(logdir / "file-ref.toml"), "FORMCALL_API_URL": simulator.api_url},
    }
    started = {}
    for name, env in envs.items():
        LOG_FILES.append(logdir / f"{name}.log")
        started[name] = FunctionProcess(env, logdir / f"{name}.log")
    start_all(started.values())
    yield started
    stop_all(started.values())


@pytest.fixture(scope="module")
def zero_config(processes: dict[str, FunctionProcess]) -> FunctionProcess:
    return processes["zero-config"]


CONFIG = f"""
[formcall]
timeout_seconds = {TIMEOUT}

[defaults]
region = "CL"
allowed_regions = ["CL", "AR"]

[routes.default]
popup_uuid = "{POPUP}"
phone = "{{{{ telefono or phone }}}}"

[routes.default.adicional]
Nombre = "{{{{ nombre }}}} {{{{ apellido }}}}"
Email = "{{{{ email }}}}"
Origen = "Landing verano"
Vacio = "{{{{ nada }}}}"

[routes.hubspot]
popup_uuid = "{{{{ {{'santiago': '{POPUP}'}}.get(properties.sucursal.value, '{POPUP_B}') }}}}"
phone = "{{{{ properties.mobilephone.value or properties.phone.value }}}}"
allow_get = true
adicional = {{ Nombre = "{{{{ properties.firstname.value }}}}", Lead = "{{{{ lead.e164 }}}}" }}

[routes.partes]
popup_uuid = "{POPUP}"
phone_parts = {{ country_code = "{{{{ cc }}}}", areacode = "{{{{ area }}}}", phonenumber = "{{{{ numero }}}}" }}

[routes.prueba]
popup_uuid = "{POPUP}"
dry_run = true
max_body_bytes = 200
"""


@pytest.fixture(scope="module")
def configured(processes: dict[str, FunctionProcess]) -> FunctionProcess:
    return processes["configured"]


def answer(response: requests.Response) -> dict[str, Any]:
    assert response.headers["Content-Type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    return body


# -- the common path --


def test_json_lead_becomes_one_call(zero_config: FunctionProcess, simulator: Simulator) -> None:
    lead = fresh_lead()
    response = zero_config.post(json=lead)
    body = answer(response)
    assert response.status_code == 200, body
    assert body["success"] is True
    placed = simulator.placed()
    assert len(placed) == 1
    payload = placed[0]["payload"]
    assert body["uuid"] == placed[0]["uuid"]
    assert payload == {
        "popup_uuid": POPUP,
        "country_code": "56",
        "areacode": "9",
        "phonenumber": lead["telefono"][2:].replace(" ", ""),
        "security_token": TOKEN,
        "adicional": {"Nombre": "Ana Pérez Cotapos", "Email": "ana.perez@example.cl"},
    }


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"data": {"phone": "+56 2 2123 4567", "name": "Bob"}}, ("2", "21234567")),
        (
            {
                "data": b"fields[phone][value]=%2B56+32+212+3456",
                "headers": {"Content-Type": "application/x-www-form-urlencoded"},
            },
            ("32", "2123456"),
        ),
        ({"files": {"cv": ("cv.pdf", b"%PDF")}, "data": {"celular": "09 5631 1283"}}, ("9", "56311283")),
        (
            {"data": json.dumps({"whatsapp": "56974766123"}), "headers": {"Content-Type": "text/plain"}},
            ("9", "74766123"),
        ),
    ],
)
def test_every_body_type(
    zero_config: FunctionProcess, simulator: Simulator, kwargs: dict[str, Any], expected: tuple[str, str]
) -> None:
    response = zero_config.post(**kwargs)
    assert response.status_code == 200, response.text
    payload = simulator.placed()[0]["payload"]
    assert (payload["areacode"], payload["phonenumber"]) == expected


def test_query_string_is_merged_under_query(configured: FunctionProcess, simulator: Simulator) -> None:
    response = requests.get(
        f"{configured.url}/hubspot",
        params={"properties[phone][value]": "+56 9 8111 2222", "properties[firstname][value]": "Eva"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    payload = simulator.placed()[0]["payload"]
    assert payload["popup_uuid"] == POPUP_B  # no sucursal: the template's default popup
    assert payload["adicional"] == {"Nombre": "Eva", "Lead": "+56981112222"}


def test_templates_defaults_and_adicional(configured: FunctionProcess, simulator: Simulator) -> None:
    response = configured.post(json={"telefono": "+54 9 11 2345 6789", "nombre": "Ana"})
    assert response.status_code == 200, response.text
    payload = simulator.placed()[0]["payload"]
    assert (payload["country_code"], payload["areacode"], payload["phonenumber"]) == ("54", "911", "23456789")
    # Empty values are left out; the literal and the partly empty template stay.
    assert payload["adicional"] == {"Nombre": "Ana", "Origen": "Landing verano"}


def test_hubspot_shaped_body_picks_popup_by_template(configured: FunctionProcess, simulator: Simulator) -> None:
    body = json.loads((Path(__file__).parent / "samples" / "hubspot_legacy_contact.json").read_text())
    response = configured.post("hubspot", json=body)
    assert response.status_code == 200, response.text
    payload = simulator.placed()[0]["payload"]
    assert payload["popup_uuid"] == POPUP
    assert (payload["areacode"], payload["phonenumber"]) == ("9", "74766123")


def test_phone_parts(configured: FunctionProcess, simulator: Simulator) -> None:
    response = configured.post("partes", data={"cc": "56", "area": "2", "numero": "2123 4567"})
    assert response.status_code == 200, response.text
    payload = simulator.placed()[0]["payload"]
    assert (payload["country_code"], payload["areacode"], payload["phonenumber"]) == ("56", "2", "21234567")


def test_dry_run_masks_the_token_and_calls_no_one(configured: FunctionProcess, simulator: Simulator) -> None:
    response = configured.post("prueba", json={"phone": "+56961234567"})
    body = answer(response)
    assert response.status_code == 200
    assert body["dry_run"] is True
    assert body["payload"]["security_token"] == "***"
    assert body["payload"]["phonenumber"] == "61234567"
    assert TOKEN not in response.text
    assert simulator.calls() == []


# -- bad input: a clear JSON answer from the table --


@pytest.mark.parametrize(
    ("method", "route", "kwargs", "status", "word"),
    [
        ("POST", "nope", {"json": {"phone": "+56 9 4000 0001"}}, 404, "unknown_route"),
        ("PUT", "", {"json": {"phone": "+56 9 4000 0002"}}, 405, "method_not_allowed"),
        ("GET", "", {}, 405, "method_not_allowed"),
        ("DELETE", "", {}, 405, "method_not_allowed"),
        ("POST", "", {"data": "{bad", "headers": {"Content-Type": "application/json"}}, 400, "bad_request"),
        ("POST", "", {"data": "[1]", "headers": {"Content-Type": "application/json"}}, 400, "bad_request"),
        ("POST", "", {"data": "<x/>", "headers": {"Content-Type": "application/xml"}}, 415, "unsupported_media_type"),
        ("POST", "", {"data": "x" * 70000, "headers": {"Content-Type": "text/plain"}}, 413, "payload_too_large"),
        ("POST", "", {"json": {"nombre": "Ana"}}, 422, "phone_missing"),
        ("POST", "", {"json": {"phone": "12345"}}, 422, "invalid_phone"),
        ("POST", "", {"json": {"phone": "+54 9 11 2345 6789"}}, 422, "region_not_allowed"),
        ("POST", "", {"json": {"phone": "+56 600 123 4567"}}, 422, "number_type_not_allowed"),
    ],
)
def test_bad_input_answers(
    zero_config: FunctionProcess,
    simulator: Simulator,
    method: str,
    route: str,
    kwargs: dict[str, Any],
    status: int,
    word: str,
) -> None:
    response = requests.request(method, f"{zero_config.url}/{route}", timeout=10, **kwargs)
    body = answer(response)
    assert response.status_code == status, body
    assert body["success"] is False
    assert body["error"] == word
    assert body["message"]
    assert "Traceback" not in response.text
    assert simulator.calls() == []


def test_body_limit_per_route_and_chunked_bodies(configured: FunctionProcess) -> None:
    response = configured.post("prueba", data=iter([b'{"phone": "', b"1" * 300, b'"}']))
    assert response.status_code == 413
    assert answer(response)["error"] == "payload_too_large"


def test_preflight(zero_config: FunctionProcess) -> None:
    response = requests.options(f"{zero_config.url}/", timeout=10)
    assert response.status_code == 204


# -- what FormCall answers (every fault and error code: tests/test_faults.py) --


def test_pending_and_out_of_hours(configured: FunctionProcess, simulator: Simulator) -> None:
    simulator.set_popup(POPUP, in_service_hours=False, keep_pending=True)
    response = configured.post(json=fresh_lead())
    # 200, not 202: Elementor and Unbounce treat any other status as a failure (spec 4).
    assert response.status_code == 200
    pending = answer(response)
    assert pending == {"success": True, "pending": True, "lead_id": pending["lead_id"]}
    simulator.set_popup(POPUP, in_service_hours=False, keep_pending=False)
    response = configured.post(json=fresh_lead())
    # Kept and called later (retry covers out_of_service_hours by default).
    assert response.status_code == 200
    scheduled = answer(response)
    assert scheduled == {"success": True, "scheduled": True, "lead_id": scheduled["lead_id"]}


# -- configuration that cannot work --


def test_broken_config_answers_misconfigured_and_keeps_serving(
    processes: dict[str, FunctionProcess], logdir: Path
) -> None:
    fn = processes["broken"]
    for _ in range(3):
        response = fn.post(json=fresh_lead())
        assert response.status_code == 500
        assert answer(response)["error"] == "misconfigured"
        assert "telefono" not in response.text
    reasons = [e.get("reason", "") for e in fn.log_entries() if e.get("outcome") == "misconfigured"]
    assert len(reasons) == 3
    assert str(logdir / "broken.toml") in reasons[0]
    assert "routes.default.phone" in reasons[0]


def test_no_token_is_misconfigured(processes: dict[str, FunctionProcess]) -> None:
    fn = processes["no-token"]
    response = fn.post(json=fresh_lead())
    entries = fn.log_entries()
    assert response.status_code == 500
    assert answer(response)["error"] == "misconfigured"
    [refused] = [e for e in entries if e.get("status") == 500]
    assert "FORMCALL_SECURITY_TOKEN" in refused["reason"]


# -- the token from Secret Manager, through the real client --


def test_token_from_secret_manager_cached_and_refetched_on_error_8(
    processes: dict[str, FunctionProcess], simulator: Simulator, secret_manager: FakeSecretManager
) -> None:
    fn = processes["secret-manager"]
    secret_manager.set(SECRET_NAME, SM_TOKEN_V1)
    assert fn.post(json=fresh_lead()).status_code == 200
    assert fn.post(json=fresh_lead()).status_code == 200
    assert secret_manager.access_count(SECRET_NAME) == 1  # cached between requests
    # The token is rotated: FormCall refuses the old one (error 8), Secret Manager has the new one.
    secret_manager.set(SECRET_NAME, SM_TOKEN_V2)
    simulator.set_tokens(SM_TOKEN_V2)
    response = fn.post(json=fresh_lead())
    assert response.status_code == 200, response.text
    assert secret_manager.access_count(SECRET_NAME) == 2
    tokens = [c["payload"]["security_token"] for c in simulator.calls()]
    assert tokens == [SM_TOKEN_V1, SM_TOKEN_V1, SM_TOKEN_V1, SM_TOKEN_V2]
    assert len(simulator.placed()) == 3


def test_secret_from_file_reference(processes: dict[str, FunctionProcess], simulator: Simulator) -> None:
    assert processes["file-ref"].post(json=fresh_lead()).status_code == 200
    [placed] = simulator.placed()
    assert placed["payload"]["security_token"] == TOKEN


# -- logs --


def wait_for_log_entries(fn: FunctionProcess, before: int, deadline: float = 30.0) -> list[dict[str, Any]]:
    """The log lines written after the first `before`, once there is at least one (polled, not slept)."""
    until = time.monotonic() + deadline
    while True:
        entries = fn.log_entries()[before:]
        if entries or time.monotonic() > until:
            return entries
        time.sleep(0.05)


def test_one_structured_line_per_request(zero_config: FunctionProcess) -> None:
    before = len(zero_config.log_entries())
    trace = "105445aa7843bc8bf206b12000100000/1;o=1"
    lead = fresh_lead()
    zero_config.post(json=lead, headers={"X-Cloud-Trace-Context": trace})
    entries = wait_for_log_entries(zero_config, before)
    assert len(entries) == 1
    entry = entries[0]
    assert entry["severity"] == "INFO"
    assert entry["logging.googleapis.com/trace"] == "projects/acme-prod/traces/105445aa7843bc8bf206b12000100000"
    assert entry["route"] == "default"
    assert entry["outcome"] == "placed"
    assert entry["status"] == 200
    assert len(entry["uuid"]) == 32
    assert entry["phone"] == "+56*****" + lead["telefono"][-3:]
    assert entry["adicional_keys"] == ["Email", "Nombre"]
    assert isinstance(entry["duration_ms"], float)


def test_logs_never_hold_tokens_numbers_bodies_or_adicional_values() -> None:
    """Runs last in this module: scans everything every process above wrote."""
    assert LOG_FILES, "no function process ran"
    text = "\n".join(p.read_text(encoding="utf-8", errors="replace") for p in LOG_FILES if p.exists())
    forbidden = {
        TOKEN,
        SM_TOKEN_V1,
        SM_TOKEN_V2,
        HUBSPOT_SECRET,
        *WHOLE_NUMBERS,
        "ana.perez@example.cl",
        "Pérez Cotapos",
    }
    forbidden |= {"+56 2 2123 4567", "2123 4567", "+54 9 11 2345 6789", "camila.rojas@example.cl", "Landing verano"}
    assert forbidden_in_logs(text, forbidden) == []
    assert "Traceback" not in text
