"""One case per fault, through a real functions-framework process: each ends in the answer the
spec's table names, in FormCall's (or the store's, or Secret Manager's) timeout and not in the fault's own
time. The faults last far longer than the bound the answers are held to (BOUND), and the bound is far
longer than the timeouts, so a busy machine can neither fail these tests nor hide a missed timeout."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from formcall_webhook.simulator import Simulator
from tests.fakes.loopback import LoopbackTCP, refusing_port
from tests.fakes.secret_manager import FakeSecretManager
from tests.harness import FunctionProcess, forbidden_in_logs, start_all, stop_all

# Every test here talks to a functions-framework process.
pytestmark = pytest.mark.slow

POPUP = "e5c98214-d0f6-11e1-8c30-001d09ef4a24"
TOKEN = "faults-token-0b3e"
SM_TOKEN = "faults-sm-token-71ac"
SIMULATOR_TOKENS = (TOKEN, SM_TOKEN)  # the tokens the module's simulator accepts (tests/conftest.py)
SECRET = "projects/acme/secrets/faults-token"
TIMEOUT = 1.5
# The answer comes from a timeout, not from the fault ending: every fault that holds an answer back
# lasts FAULT_SECONDS, and BOUND leaves a loaded machine ample room above the timeouts.
BOUND = TIMEOUT + 10
FAULT_SECONDS = BOUND + 20
LOG_FILES: list[Path] = []
NUMBERS: set[str] = set()
_serial = itertools.count()


def lead() -> dict[str, str]:
    local = str(53000000 + next(_serial) * 4099)
    NUMBERS.update({local, f"9{local}", f"+569{local}"})
    return {"telefono": f"9 {local}", "nombre": "Fault Test"}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("faults")
    (path / "formcall.toml").write_text(
        f'[formcall]\ntimeout_seconds = {TIMEOUT}\n[defaults]\nrate_limit = false\npopup_uuid = "{POPUP}"\n'
        # The same route with retry off: FormCall's own answer goes back to the sender (spec 4).
        "[routes.default]\n[routes.noretry]\nretry = false\n",
        encoding="utf-8",
    )
    return path


@pytest.fixture(scope="module")
def hung() -> Iterator[int]:
    """A port that accepts connections and never answers: a FormCall, Redis or Secret Manager hung."""
    server = LoopbackTCP(lambda conn: server.hold(conn), read_request=False)
    with server:
        yield server.port


@pytest.fixture(scope="module")
def refused() -> Iterator[int]:
    """A port that refuses connections: a FormCall, Redis or Secret Manager down."""
    with refusing_port() as port:
        yield port


@pytest.fixture(scope="module")
def secret_manager() -> Iterator[FakeSecretManager]:
    fake = FakeSecretManager().start()
    fake.set(SECRET, SM_TOKEN)
    yield fake
    fake.stop()


def sm_env(simulator: Simulator, endpoint: str, name: str) -> dict[str, str]:
    return {
        "FORMCALL_API_URL": simulator.api_url,
        "FORMCALL_SECURITY_TOKEN_SECRET": f"{name}/versions/latest",
        "FORMCALL_SECRET_MANAGER_ENDPOINT": endpoint,
    }


@pytest.fixture(scope="module")
def processes(
    workdir: Path, simulator: Simulator, secret_manager: FakeSecretManager, hung: int, refused: int
) -> Iterator[dict[str, FunctionProcess]]:
    """Every process this module uses, one per environment, started at once: their start-ups overlap
    instead of adding up. Each test but the first two has its process to itself."""
    formcall = {"FORMCALL_API_URL": simulator.api_url, "FORMCALL_SECURITY_TOKEN": TOKEN}
    envs: dict[str, dict[str, str]] = {
        "fn": formcall,
        # Asks for a secret that is not there, so it never holds a token (a cached one would stand in for
        # a failed fetch): each Secret Manager fault shows by the reason its request line gives.
        "sm-never-served": sm_env(simulator, secret_manager.endpoint, "projects/acme/secrets/absent"),
        "sm-recovers": sm_env(simulator, secret_manager.endpoint, SECRET),
        "formcall-refused": {**formcall, "FORMCALL_API_URL": f"http://127.0.0.1:{refused}/calls/manage/api"},
        "formcall-hung": {**formcall, "FORMCALL_API_URL": f"http://127.0.0.1:{hung}/calls/manage/api"},
        "sm-refused": sm_env(simulator, f"http://127.0.0.1:{refused}", SECRET),
        "sm-hung": sm_env(simulator, f"http://127.0.0.1:{hung}", SECRET),
        "redis-refused": {**formcall, "FORMCALL_STORE_URL": f"redis://127.0.0.1:{refused}/0"},
        "redis-hung": {**formcall, "FORMCALL_STORE_URL": f"redis://127.0.0.1:{hung}/0"},
    }
    started = {}
    for name, env in envs.items():
        log = workdir / f"{name}.log"
        LOG_FILES.append(log)
        started[name] = FunctionProcess({"FORMCALL_CONFIG": str(workdir / "formcall.toml"), **env}, log)
    start_all(started.values())
    yield started
    stop_all(started.values())


@pytest.fixture(scope="module")
def fn(processes: dict[str, FunctionProcess]) -> FunctionProcess:
    return processes["fn"]


def timed_post(fn: FunctionProcess, route: str = "noretry") -> tuple[requests.Response, float]:
    started = time.monotonic()
    response = fn.post(route, json=lead())
    return response, time.monotonic() - started


def expect_kept(response: requests.Response, elapsed: float) -> None:
    """retry on (the default): FormCall could not take it now, so the lead is kept and called later."""
    body = response.json()
    assert (response.status_code, body.get("scheduled")) == (200, True), body
    assert body["lead_id"].startswith("ld_")
    assert elapsed < BOUND, f"{elapsed:.2f} s"


def expect(response: requests.Response, elapsed: float, status: int, word: str) -> dict[str, Any]:
    body: dict[str, Any] = response.json()
    assert (response.status_code, body.get("error")) == (status, word), body
    assert body["success"] is False
    assert body["message"]
    assert elapsed < BOUND, f"{elapsed:.2f} s"
    if status in (502, 503):
        assert int(response.headers["Retry-After"]) > 0
    return body


# -- FormCall misbehaving --


@pytest.mark.parametrize(
    "fault",
    [
        {"kind": "slow", "seconds": FAULT_SECONDS},
        {"kind": "drip", "seconds": FAULT_SECONDS},
        {"kind": "reset"},
        {"kind": "reset_mid_answer"},
        {"kind": "placed_then_reset"},
        {"kind": "http500_html"},
        {"kind": "html_200"},
        {"kind": "malformed_json"},
    ],
    ids=lambda f: f["kind"],
)
def test_formcall_fault(fn: FunctionProcess, simulator: Simulator, fault: dict[str, Any]) -> None:
    simulator.inject(fault)
    response, elapsed = timed_post(fn)
    expect(response, elapsed, 503, "formcall_unavailable")
    # Never retried by the function: a POST that may have reached FormCall could ring the lead twice.
    assert len(simulator.calls()) == 1
    simulator.inject(fault)
    response, elapsed = timed_post(fn, "")
    expect_kept(response, elapsed)
    assert len(simulator.calls()) == 2


@pytest.mark.parametrize(
    ("code", "status", "word"),
    [
        (1, 422, "formcall_rejected"),
        (2, 409, "out_of_service_hours"),
        (3, 502, "origination_failed"),
        (4, 502, "formcall_misconfigured"),
        (5, 422, "formcall_rejected"),
        (6, 422, "formcall_rejected"),
        (7, 502, "formcall_misconfigured"),
        (8, 502, "formcall_misconfigured"),
    ],
)
def test_formcall_error_code(fn: FunctionProcess, simulator: Simulator, code: int, status: int, word: str) -> None:
    simulator.inject({"kind": "error", "code": code})
    response, elapsed = timed_post(fn)
    body = expect(response, elapsed, status, word)
    assert body["formcall_error_code"] == code
    # Error 8 is retried only with a token that changed; an environment token cannot change.
    assert len(simulator.calls()) == 1
    simulator.inject({"kind": "error", "code": code})
    response, elapsed = timed_post(fn, "")
    if word in ("origination_failed", "out_of_service_hours"):
        expect_kept(response, elapsed)  # covered by the default retry.on
    else:
        assert expect(response, elapsed, status, word)["formcall_error_code"] == code


@pytest.mark.parametrize("how", ["refused", "hung"])
def test_formcall_down(processes: dict[str, FunctionProcess], simulator: Simulator, how: str) -> None:
    response, elapsed = timed_post(processes[f"formcall-{how}"])
    expect(response, elapsed, 503, "formcall_unavailable")
    assert simulator.calls() == []  # it went to the port that is down


# -- Secret Manager misbehaving --


def last_reason(process: FunctionProcess) -> str:
    return str([e for e in process.log_entries() if e.get("status") == 500][-1].get("reason", ""))


@pytest.mark.parametrize(
    ("how", "reason"),
    [(None, "NotFound"), ("unreachable", "ConnectionError"), ("503", "ServiceUnavailable")],
    ids=["404", "unreachable", "503"],
)
def test_secret_manager_fails(
    processes: dict[str, FunctionProcess],
    simulator: Simulator,
    secret_manager: FakeSecretManager,
    how: str | None,
    reason: str,
) -> None:
    sm_never_served = processes["sm-never-served"]
    if how == "unreachable":
        secret_manager.set_unreachable(True)
    if how == "503":
        secret_manager.fail_next(503)
    try:
        response, elapsed = timed_post(sm_never_served)
    finally:
        secret_manager.set_unreachable(False)
    expect(response, elapsed, 500, "misconfigured")
    assert reason in last_reason(sm_never_served)
    assert simulator.calls() == []


@pytest.mark.parametrize("how", ["refused", "hung"])
def test_secret_manager_down(processes: dict[str, FunctionProcess], simulator: Simulator, how: str) -> None:
    process = processes[f"sm-{how}"]
    response, elapsed = timed_post(process)
    reason = last_reason(process)
    expect(response, elapsed, 500, "misconfigured")
    assert reason.startswith("Secret Manager could not give"), reason
    assert simulator.calls() == []


def test_secret_manager_recovers(
    processes: dict[str, FunctionProcess], simulator: Simulator, secret_manager: FakeSecretManager
) -> None:
    """A failed fetch is not cached: once Secret Manager answers, leads go through."""
    process = processes["sm-recovers"]
    secret_manager.fail_next(503)
    assert process.post(json=lead()).status_code == 500
    assert process.post(json=lead()).status_code == 200
    [placed] = simulator.placed()
    assert placed["payload"]["security_token"] == SM_TOKEN


# -- the shared store misbehaving --


@pytest.mark.parametrize("how", ["refused", "hung"])
def test_redis_store_down(processes: dict[str, FunctionProcess], simulator: Simulator, how: str) -> None:
    response, elapsed = timed_post(processes[f"redis-{how}"])
    expect(response, elapsed, 503, "store_unavailable")
    # Never a call without the guard.
    assert simulator.calls() == []


def test_logs_under_fire_leak_nothing() -> None:
    text = "\n".join(p.read_text(encoding="utf-8", errors="replace") for p in LOG_FILES if p.exists())
    assert text
    assert forbidden_in_logs(text, {TOKEN, SM_TOKEN, *NUMBERS}) == []
    assert "Traceback" not in text
