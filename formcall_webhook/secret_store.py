"""Secret references: env:NAME, file:PATH and secret:projects/P/secrets/S/versions/V."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Mapping
from typing import Any

from .errors import Misconfigured

log = logging.getLogger(__name__)

SECRET_PREFIXES = ("env:", "file:", "secret:")
SECRET_MANAGER_ENDPOINT_ENV = "FORMCALL_SECRET_MANAGER_ENDPOINT"  # noqa: S105 - a variable name
DEFAULT_TTL_SECONDS = 300.0


def is_reference(value: str) -> bool:
    return value.startswith(SECRET_PREFIXES) and len(value.split(":", 1)[1]) > 0


def is_version_name(name: str) -> bool:
    parts = name.split("/")
    return (
        len(parts) == 6 and parts[0] == "projects" and parts[2] == "secrets" and parts[4] == "versions" and all(parts)
    )


class SecretStore:
    """Resolves references; Secret Manager values are cached for `ttl` seconds."""

    def __init__(
        self, environ: Mapping[str, str] | None = None, ttl: float = DEFAULT_TTL_SECONDS, timeout: float = 5.0
    ) -> None:
        self.environ = os.environ if environ is None else environ
        self.ttl = ttl
        # A Secret Manager that does not answer must not hold the request longer than FormCall may.
        self.timeout = timeout
        self._cache: dict[str, tuple[float, str]] = {}
        self._lock = threading.Lock()
        self._client: Any = None

    def resolve(self, ref: str) -> str:
        """The secret's value; Misconfigured (500) when it cannot be had."""
        kind, _, name = ref.partition(":")
        if kind == "env":
            value = self.environ.get(name, "")
            if not value:
                raise Misconfigured(
                    "The function is not configured correctly.",
                    reason=f"environment variable {name} is not set or empty",
                )
            return value
        if kind == "file":
            try:
                with open(name, encoding="utf-8") as handle:
                    value = handle.read().strip()
            except OSError as err:
                raise Misconfigured(
                    "The function is not configured correctly.",
                    reason=f"secret file {name} cannot be read ({err.strerror})",
                ) from err
            if not value:
                raise Misconfigured("The function is not configured correctly.", reason=f"secret file {name} is empty")
            return value
        if kind == "secret":
            return self._secret_manager(name)
        raise Misconfigured("The function is not configured correctly.", reason=f"not a secret reference: {kind}:")

    def invalidate(self, ref: str) -> None:
        """Forget a cached value, so the next resolve fetches it again (after FormCall error 8)."""
        with self._lock:
            self._cache.pop(ref.partition(":")[2], None)

    def _secret_manager(self, name: str) -> str:
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(name)
        if cached is not None and now - cached[0] < self.ttl:
            return cached[1]
        try:
            # retry=None: the client's own retry would hold a request for up to a minute on a 503.
            client = self._get_client()
            # The first fetch also imports and builds the client: the whole fetch keeps to the timeout.
            remaining = max(0.1, self.timeout - (time.monotonic() - now))
            response = client.access_secret_version(name=name, retry=None, timeout=remaining)
            value = bytes(response.payload.data).decode("utf-8").strip()
        except Exception as err:  # NotFound, PermissionDenied, transport errors: all mean no token
            if cached is not None:
                # Secret Manager down for a moment: the value we had still works better than none.
                log.warning(
                    "Secret Manager refetch of %s failed (%s); using the cached value", name, type(err).__name__
                )
                return cached[1]
            raise Misconfigured(
                "The function is not configured correctly.",
                reason=f"Secret Manager could not give {name}: {type(err).__name__}",
            ) from err
        if not value:
            raise Misconfigured("The function is not configured correctly.", reason=f"secret {name} is empty")
        with self._lock:
            # Timed from the answer, not the ask: the first fetch also pays for creating the client.
            self._cache[name] = (time.monotonic(), value)
        return value

    def _get_client(self) -> Any:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = _make_client(self.environ.get(SECRET_MANAGER_ENDPOINT_ENV, ""))
        return self._client


def _make_client(endpoint: str) -> Any:
    # Imported here: the library costs about half a second, paid only when secret: is used.
    from google.cloud import secretmanager

    if endpoint.startswith("http://"):
        # A local emulator or the tests' fake: plain HTTP, REST, no Google credentials.
        from google.auth.credentials import AnonymousCredentials

        return secretmanager.SecretManagerServiceClient(
            credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
            transport="rest",
            client_options={"api_endpoint": endpoint},
        )
    if endpoint:
        return secretmanager.SecretManagerServiceClient(client_options={"api_endpoint": endpoint})
    return secretmanager.SecretManagerServiceClient()
