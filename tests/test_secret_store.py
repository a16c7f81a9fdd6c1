"""Secret references in-process, Secret Manager through the real client against the loopback fake."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from formcall_webhook.errors import Misconfigured
from formcall_webhook.secret_store import SecretStore, is_reference, is_version_name
from tests.fakes.secret_manager import FakeSecretManager

NAME = "projects/acme/secrets/formcall-token"


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeSecretManager]:
    server = FakeSecretManager().start()
    yield server
    server.stop()


def store_for(fake: FakeSecretManager, ttl: float = 300) -> SecretStore:
    return SecretStore({"FORMCALL_SECRET_MANAGER_ENDPOINT": fake.endpoint}, ttl=ttl)


def test_reference_shapes() -> None:
    assert is_reference("env:X") and is_reference("file:/x") and is_reference("secret:projects/p/secrets/s/versions/1")
    assert not is_reference("env:") and not is_reference("plain-secret") and not is_reference("ENV:X")
    assert is_version_name("projects/p/secrets/s/versions/latest")
    assert not is_version_name("projects/p/secrets/s") and not is_version_name("projects//secrets/s/versions/1")


def test_env_and_file(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text(" from-file \n", encoding="utf-8")
    store = SecretStore({"TOKEN": "from-env"})
    assert store.resolve("env:TOKEN") == "from-env"
    assert store.resolve(f"file:{path}") == "from-file"
    for ref in ("env:MISSING", f"file:{tmp_path / 'missing'}", "nope:x"):
        with pytest.raises(Misconfigured):
            store.resolve(ref)
    (tmp_path / "empty").write_text("", encoding="utf-8")
    with pytest.raises(Misconfigured):
        store.resolve(f"file:{tmp_path / 'empty'}")


def test_secret_manager_cached_for_ttl(fake: FakeSecretManager) -> None:
    fake.set(NAME, "v1")
    store = store_for(fake, ttl=0.3)
    ref = f"secret:{NAME}/versions/latest"
    assert store.resolve(ref) == "v1"
    fake.set(NAME, "v2")
    assert store.resolve(ref) == "v1"  # cached
    time.sleep(0.35)
    assert store.resolve(ref) == "v2"  # refetched after the TTL


def test_invalidate_refetches_at_once(fake: FakeSecretManager) -> None:
    fake.set(NAME, "a")
    store = store_for(fake)
    ref = f"secret:{NAME}/versions/latest"
    assert store.resolve(ref) == "a"
    fake.set(NAME, "b")
    store.invalidate(ref)
    assert store.resolve(ref) == "b"


def test_stale_value_is_kept_when_secret_manager_fails(fake: FakeSecretManager) -> None:
    fake.set(NAME, "still-good")
    store = store_for(fake, ttl=0)
    ref = f"secret:{NAME}/versions/latest"
    assert store.resolve(ref) == "still-good"
    fake.fail_next(503)
    assert store.resolve(ref) == "still-good"


def test_missing_secret_and_unreachable_are_misconfigured(fake: FakeSecretManager) -> None:
    store = store_for(fake)
    with pytest.raises(Misconfigured) as caught:
        store.resolve("secret:projects/acme/secrets/absent/versions/1")
    assert "NotFound" in (caught.value.reason or "")
    down = SecretStore({"FORMCALL_SECRET_MANAGER_ENDPOINT": "http://127.0.0.1:9"})
    started = time.monotonic()
    with pytest.raises(Misconfigured):
        down.resolve(f"secret:{NAME}/versions/latest")
    assert time.monotonic() - started < 6
