"""Shared fixtures: an isolated environment, and helpers to build requests for the pipeline."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, settings

from formcall_webhook.simulator import Simulator
from formcall_webhook.stores import Backend, open_store
from tests.fakes.firestore_emulator import FirestoreEmulator
from tests.fakes.redis_server import RedisServer

SAMPLES = Path(__file__).parent / "samples"
ROOT = Path(__file__).parent.parent
POPUP = "e5c98214-d0f6-11e1-8c30-001d09ef4a24"


# -- `make test-fast`: what is not marked slow. The suites in this file's owner's care mark themselves
# (pytestmark or @pytest.mark.slow); the rest are marked here by what they start, so their files need no
# edit: modules that run the function or the CLI in processes (or gcloud, terraform, shellcheck), tests
# that use a real Redis or the Firestore emulator, and one process test of test_logs.py. Their owners may
# move the mark into their files; this hook then changes nothing.
_PROCESS_MODULES = frozenset(
    {"test_cli", "test_firestore", "test_gcloud_args", "test_infra", "test_leads_cli", "test_sweep_function"}
)
_PROCESS_TESTS = frozenset(
    {"tests/test_logs.py::test_the_deployed_function_finds_its_project_on_the_metadata_server_once_and_lazily"}
)
_SERVER_FIXTURES = frozenset({"redis_server", "firestore_emulator"})
_SERVER_PARAMS = frozenset({"redis", "firestore"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        module = item.nodeid.partition("::")[0].rpartition("/")[2].removesuffix(".py")
        callspec = getattr(item, "callspec", None)
        params = {v for v in callspec.params.values() if isinstance(v, str)} if callspec else set()
        if (
            module in _PROCESS_MODULES
            or item.nodeid in _PROCESS_TESTS
            or _SERVER_FIXTURES & set(getattr(item, "fixturenames", ()))
            or _SERVER_PARAMS & params
        ):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(autouse=True)
def _isolated_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """No FORMCALL_* or Google variable from the developer's shell leaks into a test."""
    for name in list(os.environ):
        if name.startswith(("FORMCALL_", "GOOGLE_", "GCP_", "HUBSPOT_")):
            monkeypatch.delenv(name)


@pytest.fixture(scope="module")
def simulator(request: pytest.FixtureRequest) -> Iterator[Simulator]:
    """The FormCall simulator for one test module, accepting the module's SIMULATOR_TOKENS."""
    sim = Simulator(tokens=_simulator_tokens(request), quiet=True).start()
    yield sim
    sim.stop()


@pytest.fixture(autouse=True)
def _fresh_simulator(request: pytest.FixtureRequest) -> None:
    """Each test starts with no calls, faults or token changes left by the test before it."""
    if "simulator" in request.fixturenames and hasattr(request.module, "SIMULATOR_TOKENS"):
        sim: Simulator = request.getfixturevalue("simulator")
        sim.reset()
        sim.set_tokens(*_simulator_tokens(request))


def _simulator_tokens(request: pytest.FixtureRequest) -> tuple[str, ...]:
    return tuple(getattr(request.module, "SIMULATOR_TOKENS", ("dev-token",)))


# Hypothesis profiles for tests/test_fuzz.py: "ci" (short and reproducible) unless HYPOTHESIS_PROFILE says
# otherwise; `make fuzz` runs the long "fuzz" profile. No example database: failures print a reproducer. No
# explain phase: each of its replays is an HTTP request, and it adds minutes to a failing run.
_FUZZ_HEALTH_CHECKS = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture]
_FUZZ_PHASES = [Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink]
settings.register_profile(
    "ci",
    max_examples=200,
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=True,
    suppress_health_check=_FUZZ_HEALTH_CHECKS,
    phases=_FUZZ_PHASES,
)
settings.register_profile(
    "fuzz",
    max_examples=5000,
    deadline=None,
    database=None,
    print_blob=True,
    suppress_health_check=_FUZZ_HEALTH_CHECKS,
    phases=_FUZZ_PHASES,
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


# -- the store family: one fixture over every backend (dramatiq's tests/conftest.py does the same) --


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def firestore_emulator() -> Iterator[FirestoreEmulator]:
    emulator = FirestoreEmulator().start()
    yield emulator
    emulator.stop()


def open_backend(kind: str, request: pytest.FixtureRequest) -> Backend:
    """A fresh, empty backend of this kind, against a real server where the kind has one."""
    if kind == "memory":
        return open_store("memory://")
    if kind == "sqlite":
        tmp: Path = request.getfixturevalue("tmp_path")
        return open_store(f"sqlite://{tmp / 'leads.db'}")
    if kind == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        backend = open_store(server.url)
        backend._redis.flushdb()  # type: ignore[attr-defined]
        return backend
    emulator: FirestoreEmulator = request.getfixturevalue("firestore_emulator")
    emulator.clear()
    return open_store(emulator.store_url, request_timeout=8.0)


@pytest.fixture(params=["memory", "sqlite", "redis", "firestore"])
def backend(request: pytest.FixtureRequest) -> Backend:
    return open_backend(request.param, request)


@pytest.fixture(params=["memory", "redis", "firestore"])
def store_url(request: pytest.FixtureRequest) -> str:
    """A fresh, empty store of each kind, as FORMCALL_STORE_URL names it."""
    if request.param == "memory":
        return "memory://"
    if request.param == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        import redis

        redis.Redis.from_url(server.url).flushdb()
        return server.url
    emulator: FirestoreEmulator = request.getfixturevalue("firestore_emulator")
    emulator.clear()
    return emulator.store_url
