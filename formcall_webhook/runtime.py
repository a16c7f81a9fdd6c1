"""What a process builds once: the config, secrets, store, FormCall client and deliverer (layout.md)."""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping

from . import config as config_module
from .clients.formcall import FormCallClient
from .clients.meta_graph import GraphClient
from .config import Config
from .delivery import MISCONFIGURED, Deliverer
from .errors import ConfigError, Misconfigured
from .logs import RequestLogger, level_from_env, project_id, setup_library_logging
from .secret_store import SecretStore
from .senders import secret_refs
from .stores import Backend, open_store

# This process's id, kept current across forks without a system call per request.
_pid = os.getpid()


def _forked() -> None:
    global _pid
    _pid = os.getpid()


os.register_at_fork(after_in_child=_forked)


class Runtime:
    """One per process. A broken config is kept and reported by every request, never raised at start."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self.environ = os.environ if environ is None else environ
        self._lock = threading.Lock()
        self._config: Config | None = None
        self._config_error: ConfigError | None = None
        self._loaded = False
        self.secrets = SecretStore(self.environ)
        self._client: FormCallClient | None = None
        self._store: Backend | None = None
        self._deliverer: Deliverer | None = None
        self._graph: GraphClient | None = None
        # The process whose self-sweep runs: a forked worker starts its own (threads do not survive a fork).
        self._self_sweep_pid: int | None = None
        self._stop = threading.Event()
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
                        self._deliverer = Deliverer(config, self._store, self._client, self.secrets)
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
            with self._lock:
                if self._graph is None:
                    self._graph = GraphClient()
        return self._graph

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

    def ensure_self_sweep(self) -> None:
        """memory:// and sqlite:// (spec 8): no Scheduler calls a local run's sweeper, so the process sweeps itself
        every FORMCALL_SWEEP_SECONDS, on a thread of this process (after a fork, the parent's is not here)."""
        if self._self_sweep_pid == _pid:
            return
        self._self_sweep_pid = _pid
        try:
            config = self.config()
        except Misconfigured:
            return
        if config.store_url.startswith(("memory://", "sqlite://")):
            threading.Thread(target=self._self_sweep, args=(config.sweep_seconds,), name="formcall-self-sweep",
                             daemon=True).start()  # fmt: skip

    def _self_sweep(self, seconds: float) -> None:
        sweeper = None
        while not self._stop.wait(seconds):
            try:
                if sweeper is None:
                    # Imported on the sweeping thread after its first wait: the first requests of a cold
                    # start never share the interpreter with the sweeper's imports.
                    from .sweep import Sweeper

                    sweeper = Sweeper(self)
                sweeper.run(budget_seconds=max(1.0, seconds * 0.8))
            except Exception as err:  # never let the thread die: say so and go on
                self.logger.write(
                    "ERROR", "sweep failed", {"outcome": "sweep", "source": "sweep", "reason": type(err).__name__}, {}
                )

    def stop(self) -> None:
        self._stop.set()
