"""What a process builds once: the config, secrets, store, FormCall client and deliverer (layout.md).

memory://'s self-sweep is not here: self_sweep.py has it, and main.py starts it.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from . import config as config_module
from .attempt import Attempter
from .clients.formcall import FormCallClient
from .config import Config
from .delivery import Deliverer
from .errors import MISCONFIGURED, ConfigError, Misconfigured
from .logs import RequestLogger, level_from_env, project_id, setup_library_logging
from .secret_store import SecretStore, is_reference
from .senders import secret_refs
from .stores import Backend, open_store

if TYPE_CHECKING:
    from .clients.meta_graph import GraphClient


class Runtime:
    """One per process. A broken config is kept and reported by every request, never raised at start."""

    def __init__(self, environ: Mapping[str, str] | None = None, clock: Callable[[], float] = time.time) -> None:
        self.environ = os.environ if environ is None else environ
        # Epoch seconds now, for every lead's times: tests pass a clock they control.
        self.clock = clock
        self._lock = threading.Lock()
        self._config: Config | None = None
        self._config_error: ConfigError | None = None
        self._loaded = False
        self.secrets = SecretStore(self.environ)
        self._client: FormCallClient | None = None
        self._store: Backend | None = None
        self._attempter: Attempter | None = None
        self._deliverer: Deliverer | None = None
        self._graph: GraphClient | None = None
        level = level_from_env(self.environ)
        self.logger = RequestLogger(level, project_id(self.environ))
        setup_library_logging(level)

    def config(self) -> Config:
        if not self._loaded:
            with self._lock:
                if not self._loaded:
                    try:
                        config = config_module.load(self.environ)
                        self.secrets.ttl = config.secret_ttl_seconds
                        self.secrets.timeout = config.timeout_seconds
                        self._client = FormCallClient(config.api_url, config.timeout_seconds, config.ca_bundle)
                        self._store = open_store(config.store_url, config.timeout_seconds)
                        self._attempter = Attempter(
                            config, self._store, self._client, self.secrets, self.clock, self.logger
                        )
                        self._deliverer = Deliverer(self._attempter)
                        self._config = config
                    except ConfigError as err:
                        self._config_error = err
                    self._loaded = True
        if self._config is None:
            raise Misconfigured(MISCONFIGURED, reason=f"config error: {self._config_error}")
        return self._config

    @property
    def config_error(self) -> ConfigError | None:
        return self._config_error

    @property
    def store(self) -> Backend:
        self.config()
        assert self._store is not None
        return self._store

    @property
    def client(self) -> FormCallClient:
        self.config()
        assert self._client is not None
        return self._client

    @property
    def graph(self) -> GraphClient:
        """Meta's Graph API (routes with auth.type meta), made on first use: its own pool and timeout."""
        if self._graph is None:
            from .clients.meta_graph import GraphClient  # routes with auth.type meta only

            with self._lock:
                if self._graph is None:
                    self._graph = GraphClient()
        return self._graph

    @property
    def attempter(self) -> Attempter:
        """One attempt of a lead, shared by the request path and the sweeper."""
        self.config()
        assert self._attempter is not None
        return self._attempter

    @property
    def deliverer(self) -> Deliverer:
        self.config()
        assert self._deliverer is not None
        return self._deliverer

    def secret_refs(self) -> list[str]:
        """Every secret reference the config names (the warm-up imports what they need)."""
        config = self.config()
        refs = [config.security_token, config.leads.hash_key]
        for route in config.routes.values():
            refs += [*secret_refs(route.auth), route.captcha.secret if route.captcha else None]
            if (reporting := route.outcome_reporting) is not None:
                refs += [reporting.secret, reporting.hubspot.token if reporting.hubspot else None]
                refs += [reporting.url] if reporting.url and is_reference(reporting.url) else []
        return [ref for ref in refs if ref]

    def warm(self) -> None:
        """Load the config and the heavy libraries it needs before the first request (cold start),
        so no lead waits for them. A broken config is kept for the requests to report, not raised."""
        try:
            self.config()
        except Misconfigured:
            return
        if any(ref.startswith("secret:") for ref in self.secret_refs()):
            # Only the import (a second or more): the client itself is made in the worker that uses it.
            import google.cloud.secretmanager  # noqa: F401
