"""The request pipeline: parse, authenticate, normalize, validate, deliver, answer."""

from __future__ import annotations

import math
import os
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import IO, Any

import urllib3

from . import config as config_module
from . import guards, mapping, once, parsing, phones
from .answers import Response, failure, success
from .auth import authenticate
from .config import Config, Rate, Route
from .errors import (
    BadRequest,
    ConfigError,
    FormCallMisconfigured,
    FormCallUnavailable,
    MethodNotAllowed,
    Misconfigured,
    PayloadTooLarge,
    RateLimited,
    UnknownRoute,
    WebhookError,
)
from .formcall import (
    INVALID_TOKEN,
    FormCallClient,
    FormCallUncertain,
    ListUnavailable,
    Placed,
    ReconcileUnknown,
    make_pool,
)
from .logs import RequestLogger, level_from_env, project_id, setup_library_logging, severity_for
from .secret_store import SecretStore
from .store import Store, StoreUnavailable, open_store
from .templates import TemplateFailed

MASKED_TOKEN = "***"  # noqa: S105 - the mask, not a secret
_MISCONFIGURED = "The function is not configured correctly; its log says why."
# A lost answer is settled from FormCall's list only after this many timeouts since the attempt.
SETTLE_TIMEOUTS = 2


@dataclass(frozen=True)
class Request:
    """What the pipeline needs of an HTTP request; the body is read through `read_body(limit)`."""

    method: str
    path: str
    headers: Mapping[str, str]  # lower-case names
    query_string: bytes
    read_body: Callable[[int], bytes]
    content_length: int | None = None
    remote_addr: str = ""
    # The full URL as received (HubSpot signs it when auth.public_url is not set).
    url: str = ""


@dataclass
class Outcome:
    """What the request line of the log will say; filled in as the pipeline goes."""

    route: str = ""
    outcome: str = ""
    phone: str | None = None
    uuid: str | None = None
    popup_uuid: str | None = None
    formcall_error_code: int | None = None
    reason: str | None = None
    adicional_keys: list[str] = field(default_factory=list)
    route_config: Route | None = None


def route_name(path: str) -> str:
    name = path.strip("/")
    return name or "default"


class App:
    """One per process: the config, the secret cache, the store and the HTTP sessions live here."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self.environ = os.environ if environ is None else environ
        self._lock = threading.Lock()
        self._config: Config | None = None
        self._config_error: ConfigError | None = None
        self._loaded = False
        self.secrets = SecretStore(self.environ)
        self._client: FormCallClient | None = None
        self._store: Store | None = None
        self._captcha_pool: urllib3.PoolManager | None = None
        level = level_from_env(self.environ)
        self.logger = RequestLogger(level, project_id(self.environ))
        setup_library_logging(level)

    # -- configuration, loaded once; a broken one answers 500 to every request, never crashes --

    def config(self) -> Config:
        if not self._loaded:
            with self._lock:
                if not self._loaded:
                    try:
                        self._config = config_module.load(self.environ)
                        self.secrets.ttl = self._config.secret_ttl_seconds
                        self.secrets.timeout = self._config.timeout_seconds
                        self._client = FormCallClient(
                            self._config.api_url, self._config.timeout_seconds, self._config.ca_bundle
                        )
                        self._store = open_store(self._config.store_url, self._config.timeout_seconds)
                    except ConfigError as err:
                        self._config_error = err
                    self._loaded = True
        if self._config is None:
            raise Misconfigured(_MISCONFIGURED, reason=f"config error: {self._config_error}")
        return self._config

    def warm(self) -> None:
        """Load the config and the heavy libraries it needs before the first request (cold start),
        so no lead waits for them. A broken config is kept for the requests to report, not raised."""
        try:
            config = self.config()
        except Misconfigured:
            return
        refs = [config.security_token]
        for route in config.routes.values():
            refs += [route.auth.secret, route.auth.password, route.captcha.secret if route.captcha else None]
        if any(ref and ref.startswith("secret:") for ref in refs):
            # Only the import (a second or more): the client itself is made in the worker that uses it.
            import google.cloud.secretmanager  # noqa: F401

    @property
    def store(self) -> Store:
        assert self._store is not None
        return self._store

    # -- the pipeline --

    def handle(self, request: Request) -> Response:
        started = time.perf_counter()
        outcome = Outcome(route=route_name(request.path))
        try:
            response = self._handle(request, outcome)
        except WebhookError as err:
            outcome.outcome = err.error
            outcome.formcall_error_code = err.formcall_error_code
            outcome.reason = err.reason
            response = failure(err)
        except Exception as err:  # a bug: answer like the table's 500, log where, never the data
            frame = traceback.extract_tb(err.__traceback__)[-1]
            outcome.outcome = "misconfigured"
            outcome.reason = f"internal error {type(err).__name__} at {os.path.basename(frame.filename)}:{frame.lineno}"
            response = failure(Misconfigured(_MISCONFIGURED))
        if outcome.route_config is not None:
            response = self._dress(request, outcome.route_config, response, outcome)
        self._log(request, response, outcome, started)
        return response

    def _dress(self, request: Request, route: Route, response: Response, outcome: Outcome) -> Response:
        """CORS headers on every answer of a route; a 303 for browsers' plain form posts."""
        preflight = request.method.upper() == "OPTIONS"
        response.headers.update(guards.cors_headers(route, request.headers.get("origin"), preflight))
        if preflight or not guards.prefers_html(request.headers.get("accept")):
            return response
        ok = response.status < 300
        target = route.redirect_success if ok else route.redirect_failure
        if target is None:
            return response
        location = guards.redirect_url(target, None if ok else outcome.outcome)
        return Response(303, b"", {**response.headers, "Location": location, "Content-Type": "text/plain"})

    def _handle(self, request: Request, outcome: Outcome) -> Response:
        config = self.config()
        route = config.routes.get(outcome.route)
        if route is None:
            raise UnknownRoute(f"There is no route named {outcome.route!r}.")
        outcome.route_config = route
        method = request.method.upper()
        if method == "OPTIONS":
            outcome.outcome = "preflight"
            return Response(204, b"", {"Allow": _allowed_methods(route)})
        if method not in ("POST", "GET") or (method == "GET" and not route.allow_get):
            raise MethodNotAllowed(f"{method} is not accepted here; use {_allowed_methods(route)}.")

        raw = _read_limited(request, route.max_body_bytes)
        authenticate(
            route.auth,
            method=method,
            url=request.url,
            query_string=request.query_string,
            headers=request.headers,
            body=raw,
            resolve=self.secrets.resolve,
        )
        ip = guards.client_ip(request.headers, request.remote_addr)
        if route.rate_per_ip is not None:
            self._rate_limit(route, "ip", ip, route.rate_per_ip)

        body, query = parse_submission(route, method, request.headers, request.query_string, raw)
        if guards.honeypot_filled(route, body):
            outcome.outcome = "honeypot"
            return success()
        if route.captcha is not None:
            guards.verify_captcha(route.captcha, body, ip, self.secrets.resolve, self._captcha())

        mapped = map_submission(route, body, query, request.headers)
        context, lead, payload = mapped.context, mapped.lead, mapped.payload
        outcome.phone = lead.masked
        outcome.popup_uuid = payload["popup_uuid"]
        outcome.adicional_keys = sorted(payload.get("adicional", {}))

        if route.dry_run:
            outcome.outcome = "dry_run"
            return success(dry_run=True, payload={**payload, "security_token": MASKED_TOKEN})
        return self._once(config, route, request, context, lead, payload, outcome)

    def _once(
        self,
        config: Config,
        route: Route,
        request: Request,
        context: Mapping[str, Any],
        lead: phones.Lead,
        payload: dict[str, Any],
        outcome: Outcome,
    ) -> Response:
        """Place the call unless this lead, or this delivery, was already answered."""
        keys = []
        delivery_id = request.headers.get("idempotency-key") or request.headers.get("webhook-id")
        if delivery_id:
            keys.append(
                (
                    once.key(route.name, "delivery", delivery_id),
                    max(route.dedupe_window_seconds, once.IDEMPOTENCY_SECONDS),
                )
            )
        dedupe_value = route.dedupe_key.render(context) if route.dedupe_key is not None else ""
        keys.append(
            (
                once.key(route.name, "lead", dedupe_value or f"{lead.e164}|{payload['popup_uuid']}"),
                route.dedupe_window_seconds,
            )
        )
        pending_ttl = config.timeout_seconds + 30
        marker = once.new_marker()
        held = once.acquire(self.store, keys, pending_ttl, config.timeout_seconds + 2, marker)
        if isinstance(held, once.Uncertain):
            first = self._settle(config, keys, held, lead, payload, marker, pending_ttl, outcome)
            held = first or once.acquire(self.store, keys, pending_ttl, config.timeout_seconds + 2, marker)
            if isinstance(held, once.Uncertain):
                once.release(self.store, held.claim)
                raise FormCallUnavailable(
                    "The same submission is being settled; try again shortly.", retry_after=5, reason="settle race"
                )
        if isinstance(held, once.FirstAnswer):
            outcome.outcome = "duplicate"
            outcome.uuid = held.uuid
            return success(duplicate=True, uuid=held.uuid)
        attempt_started = time.time()
        try:
            if route.rate_per_phone is not None:
                self._rate_limit(route, "phone", lead.e164, route.rate_per_phone)
            placed = self._deliver(config, payload)
        except FormCallUncertain:
            # FormCall got the request; whether it queued the call is unknown until its list says.
            once.mark_uncertain(self.store, held, attempt_started)
            raise
        except BaseException:
            once.release(self.store, held)
            raise
        try:
            once.complete(self.store, held, once.FirstAnswer(placed.uuid, placed.pending))
        except StoreUnavailable as err:
            # The call exists: answer it as placed. Its pending claim still expires on its own.
            outcome.reason = err.reason
        outcome.uuid = placed.uuid
        if placed.pending:
            outcome.outcome = "pending"
            return success(202, pending=True)
        outcome.outcome = "placed"
        return success(uuid=placed.uuid)

    def _settle(
        self,
        config: Config,
        keys: list[tuple[str, int]],
        uncertain: once.Uncertain,
        lead: phones.Lead,
        payload: dict[str, Any],
        marker: str,
        pending_ttl: float,
        outcome: Outcome,
    ) -> once.FirstAnswer | None:
        """An earlier attempt's answer was lost: find its call in FormCall's list before calling again.

        The first answer when the call exists; None when it does not (or the list cannot tell: a lost
        lead is worse than a second ring), after which this submission holds the keys.
        """
        waited = time.time() - uncertain.since
        settle_after = config.timeout_seconds * SETTLE_TIMEOUTS
        if waited < settle_after:
            # FormCall may still be working on the first request: its call would not be listed yet.
            once.release(self.store, uncertain.claim)
            raise FormCallUnavailable(
                "The previous attempt is still being confirmed; try again shortly.",
                retry_after=max(1, math.ceil(settle_after - waited)),
                reason="previous attempt's outcome not settled yet",
            )
        assert self._client is not None
        assert config.security_token is not None
        token = self.secrets.resolve(config.security_token)
        digits = lead.country_code + lead.areacode + lead.phonenumber
        try:
            uuid = self._client.find_call(token, payload["popup_uuid"], digits, uncertain.since)
        except ListUnavailable as err:
            # Ask again later rather than guess; the uncertain mark expires with the dedupe window.
            once.release(self.store, uncertain.claim)
            raise FormCallUnavailable(
                "The previous attempt could not be confirmed yet; try again later.",
                reason=f"previous attempt unconfirmed ({err})",
            ) from err
        except ReconcileUnknown as err:
            uuid = None
            outcome.reason = f"previous attempt unconfirmed ({err}); calling again"
        answer = once.FirstAnswer(uuid) if uuid else None
        once.settle(self.store, keys, uncertain, answer, marker, pending_ttl)
        if answer is None and outcome.reason is None:
            outcome.reason = "previous attempt placed no call; calling"
        return answer

    def _rate_limit(self, route: Route, kind: str, value: str, rate: Rate) -> None:
        count, seconds_left = self.store.hit(once.key(route.name, f"rate-{kind}", value), rate.seconds)
        if count > rate.count:
            raise RateLimited(
                "Too many submissions; try again later.",
                retry_after=seconds_left,
                reason=f"rate limit per_{kind} {rate.count}/{rate.seconds}s exceeded",
            )

    def _captcha(self) -> urllib3.PoolManager:
        if self._captcha_pool is None:
            self._captcha_pool = make_pool(maxsize=8)
        return self._captcha_pool

    def _deliver(self, config: Config, payload: dict[str, Any]) -> Placed:
        if config.security_token is None:
            raise Misconfigured(
                _MISCONFIGURED,
                reason="no FormCall token: set FORMCALL_SECURITY_TOKEN, FORMCALL_SECURITY_TOKEN_SECRET "
                "or formcall.security_token",
            )
        assert self._client is not None
        token = self.secrets.resolve(config.security_token)
        try:
            return self._client.place_call({**payload, "security_token": token})
        except FormCallMisconfigured as err:
            if err.formcall_error_code != INVALID_TOKEN:
                raise
            # The token may have been rotated: fetch it again and, if it changed, try once more.
            # Error 8 means nothing was queued, so this retry cannot ring anyone twice.
            self.secrets.invalidate(config.security_token)
            fresh = self.secrets.resolve(config.security_token)
            if fresh == token:
                raise
            return self._client.place_call({**payload, "security_token": fresh})

    def _log(self, request: Request, response: Response, outcome: Outcome, started: float) -> None:
        duration_ms = round((time.perf_counter() - started) * 1000, 1)
        fields = {
            "route": outcome.route,
            "outcome": outcome.outcome,
            "status": response.status,
            "uuid": outcome.uuid,
            "phone": outcome.phone,
            "popup_uuid": outcome.popup_uuid,
            "formcall_error_code": outcome.formcall_error_code,
            "reason": outcome.reason,
            "adicional_keys": outcome.adicional_keys or None,
            "duration_ms": duration_ms,
            "method": request.method,
        }
        message = f"{outcome.route}: {outcome.outcome} ({response.status})"
        self.logger.write(severity_for(outcome.outcome, response.status), message, fields, request.headers)


@dataclass(frozen=True)
class Mapped:
    """A submission mapped for FormCall: the template context, the lead and the payload."""

    context: dict[str, Any]
    lead: phones.Lead
    payload: dict[str, Any]


def parse_submission(
    route: Route, method: str, headers: Mapping[str, str], query_string: bytes, raw: bytes
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The submission (body with the query merged in under "query") and the query itself."""
    query = parsing.parse_query(query_string)
    if route.auth.type == "token":
        query.pop("token", None)  # a credential, not data a template could copy out
    # A GET webhook (HubSpot, Zapier) carries the submission in the query string.
    body = dict(query) if method == "GET" else parsing.parse_body(headers.get("content-type"), raw)
    body["query"] = query
    return body, query


def map_submission(
    route: Route,
    body: dict[str, Any],
    query: dict[str, Any],
    headers: Mapping[str, str],
) -> Mapped:
    """Phone, popup and adicional from the route's templates (or the built-in finder). Pure: no I/O."""
    context = mapping.template_context(body, query, headers, route.name)
    finder = mapping.Finder(body)
    typed = mapping.typed_phone(route, context, finder)
    lead = phones.normalize(typed, route.region, route.allowed_regions, route.allowed_number_types)
    context["lead"] = mapping.lead_context(lead)
    assert route.popup_uuid is not None
    try:
        popup = route.popup_uuid.render_strict(context)
    except TemplateFailed as err:
        # The data's fault, not the config's: the same submission would fail again, so no 5xx.
        raise BadRequest(
            "The submission's fields do not fit this route's popup_uuid template.",
            reason=f"routes.{route.name}.popup_uuid failed on this submission ({err})",
        ) from err
    if not config_module.is_uuid(popup):
        raise Misconfigured(
            _MISCONFIGURED, reason=f"routes.{route.name}.popup_uuid rendered to something that is not a UUID"
        )
    payload: dict[str, Any] = {
        "popup_uuid": popup,
        "country_code": lead.country_code,
        "areacode": lead.areacode,
        "phonenumber": lead.phonenumber,
        "security_token": "",
    }
    extra = mapping.adicional(route, context, finder)
    if extra:
        payload["adicional"] = extra
    return Mapped(context, lead, payload)


def _allowed_methods(route: Route) -> str:
    return "POST, GET, OPTIONS" if route.allow_get else "POST, OPTIONS"


def _read_limited(request: Request, limit: int) -> bytes:
    """The body, refused with 413 before parsing when it is over the route's limit."""
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"The body is larger than {limit} bytes.")
    raw = request.read_body(limit + 1)
    if len(raw) > limit:
        raise PayloadTooLarge(f"The body is larger than {limit} bytes.")
    return raw


def read_stream(stream: IO[bytes], limit: int) -> bytes:
    """Up to `limit` bytes; WSGI streams may return short reads before the end."""
    chunks: list[bytes] = []
    size = 0
    while size < limit:
        chunk = stream.read(min(65536, limit - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)
