"""The request pipeline: parse, authenticate, normalize, validate, deliver, answer."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
import traceback
from collections.abc import Callable, Mapping
from typing import IO, Any, NamedTuple

from werkzeug.exceptions import ClientDisconnected

from . import attribution, consent, guards, keys, once, phones, records
from .answers import Response, failure, success
from .attempt import Attempted
from .clients.http import Pool, make_pool
from .config import Config, Route
from .delivery import Submission
from .errors import (
    MISCONFIGURED,
    BadRequest,
    GraphAPIUnavailable,
    MethodNotAllowed,
    Misconfigured,
    PayloadTooLarge,
    RateLimited,
    RequestTimeout,
    Unauthorized,
    UnknownRoute,
    WebhookError,
    clip,
)
from .logs import severity_for
from .records import Unread
from .runtime import Runtime
from .senders import VouchedDelivery, authenticate, meta
from .senders.base import secret
from .stores import Backend
from .submission import MASKED_TOKEN, map_submission, parse_submission

UNKNOWN_ROUTE = "(unknown)"  # the request line's route for a path that names no route


class Request(NamedTuple):
    """What the pipeline needs of an HTTP request; the body is read through `read_body(limit[, timeout])`."""

    method: str
    path: str
    headers: Mapping[str, str]  # lower-case names
    query_string: bytes
    read_body: Callable[..., bytes]
    content_length: int | None = None
    remote_addr: str = ""
    # The full URL as received (HubSpot signs it when auth.public_url is not set).
    url: str = ""

    def __repr__(self) -> str:  # the object's own: a tuple's repr would print the headers
        return object.__repr__(self)


class RequestLine:
    """What the request's log line will say; filled in as the pipeline goes (a plain class: it is the one
    mutable record of the request path, and a dataclass would cost the cold start more than it gives)."""

    def __init__(self, route: str = "", route_config: Route | None = None) -> None:
        self.route = route
        self.result = ""  # the log line's `outcome` word
        self.phone: str | None = None
        self.popup_uuid: str | None = None
        self.formcall_error_code: int | None = None
        self.reason: str | None = None
        self.adicional_keys: list[str] = []
        self.route_config = route_config
        # What delivering the lead came to (the lead's id, FormCall's timing, ...): set once, by the Deliverer.
        self.delivered = Attempted("")
        # A Meta delivery's leads, each logged on its own line: (its line, its own answer, when it started).
        self.leads: list[tuple[RequestLine, Response, float]] = []
        # Every lead of the delivery answered: their lines say it all, no line for the request itself.
        self.per_lead = False


def route_name(path: str) -> str:
    """The route a path names, cut to 64 characters for logs and answers (spec 6): a cut name ends
    with an ellipsis, which no configured route name holds, so it can only be unknown."""
    name = path.strip("/")
    return clip(name) if name else "default"


class App:
    """The HTTP pipeline only; what it needs lives in one Runtime per process."""

    def __init__(self, environ: Mapping[str, str] | None = None, runtime: Runtime | None = None) -> None:
        self.runtime = runtime or Runtime(environ)
        self.environ = self.runtime.environ
        self.secrets = self.runtime.secrets
        self.logger = self.runtime.logger
        self._captcha_pool: Pool | None = None

    def config(self) -> Config:
        return self.runtime.config()

    def warm(self) -> None:
        self.runtime.warm()

    @property
    def store(self) -> Backend:
        return self.runtime.store

    # -- the pipeline --

    def handle(self, request: Request) -> Response:
        started = time.perf_counter()
        line = RequestLine(route=route_name(request.path))
        try:
            response = self._handle(request, line)
        except WebhookError as err:
            line.result = err.error
            line.formcall_error_code = err.formcall_error_code
            line.reason = err.reason
            response = failure(err)
        except Exception as err:  # a bug: answer like the table's 500, log where, never the data
            frame = traceback.extract_tb(err.__traceback__)[-1]
            line.result = "misconfigured"
            line.reason = f"internal error {type(err).__name__} at {os.path.basename(frame.filename)}:{frame.lineno}"
            response = failure(Misconfigured(MISCONFIGURED))
        if line.route_config is not None:
            response = self._dress(request, line.route_config, response, line)
        for lead_line, answer, lead_started in line.leads:
            self._log(request, answer, lead_line, lead_started)
        if not line.per_lead:
            self._log(request, response, line, started)
        return response

    def _dress(self, request: Request, route: Route, response: Response, line: RequestLine) -> Response:
        """CORS headers on every answer of a route; a 303 for browsers' plain form posts."""
        preflight = request.method.upper() == "OPTIONS"
        headers = {**response.headers, **guards.cors_headers(route, request.headers.get("origin"), preflight)}
        wait = headers.get("Retry-After", "")
        if route.auth.type == "hubspot" and response.status == 429 and wait.isdigit():
            # HubSpot's workflows retry a 429 after its Retry-After "recorded in milliseconds"
            # (knowledge.hubspot.com, "How to trigger webhooks in HubSpot contact-based workflows").
            headers["Retry-After"] = str(int(wait) * 1000)
        response = response._replace(headers=headers)
        if preflight or not guards.prefers_html(request.headers.get("accept")):
            return response
        ok = response.status < 300
        target = route.redirect_success if ok else route.redirect_failure
        if target is None:
            return response
        location = guards.redirect_url(target, None if ok else line.result)
        return Response(303, b"", {**response.headers, "Location": location, "Content-Type": "text/plain"})

    def _handle(self, request: Request, line: RequestLine) -> Response:
        config = self.config()
        route = config.routes.get(line.route)
        if route is None:
            raise UnknownRoute(f"There is no route named {line.route!r}.")
        line.route_config = route
        method = request.method.upper()
        if method == "OPTIONS":
            line.result = "preflight"
            return Response(204, b"", {"Allow": _allowed_methods(route)})
        # The client's address is read only where something uses it: per_ip limits and captchas.
        needs_ip = route.rate_per_ip is not None or route.captcha is not None
        ip = guards.client_ip(request.headers, request.remote_addr, config.trusted_proxy_hops) if needs_ip else ""
        if method == "GET" and route.auth.type == "meta":
            return self._meta_handshake(route, request, ip, line)
        if method not in ("POST", "GET") or (method == "GET" and not route.allow_get):
            raise MethodNotAllowed(f"{method} is not accepted here; use {_allowed_methods(route)}.")

        raw = _read_limited(request, route.max_body_bytes, route.body_timeout_seconds)
        try:
            trusted = authenticate(
                route.auth,
                method=method,
                url=request.url,
                query_string=request.query_string,
                headers=request.headers,
                body=raw,
                resolve=self.secrets.resolve,
            )
        except Unauthorized:
            # Failed authentications count toward per_ip, so a token cannot be guessed at leisure.
            self._count_failure(route, ip)
            raise

        body, query = parse_submission(route, method, request.headers, request.query_string, raw)
        if route.auth.type == "meta":
            return self._meta_delivery(route, body, request, ip, line)
        delivery_id, sender_key = self._delivery_id(request.headers, trusted)
        signer = self._signer(route) if trusted is not None else None
        return self._lead(route, body, query, request.headers, delivery_id, ip, line, signer, sender_key)

    def _lead(
        self,
        route: Route,
        body: dict[str, Any],
        query: dict[str, Any],
        headers: Mapping[str, str],
        delivery_id: tuple[str, int] | None,
        ip: str,
        line: RequestLine,
        signer: str | None = None,
        sender_key: bool = False,
    ) -> Response:
        """One lead, from the parsed submission to its answer: guards, mapping, consent, delivery.

        `signer`: whose signed ids `delivery_id` is among (shared by the routes of one secret, spec 5);
        `sender_key`: it is the sender's unsigned Idempotency-Key, tied to the number here (spec 4)."""
        if guards.honeypot_filled(route, body):
            line.result = "honeypot"
            return success()
        if route.captcha is not None:
            guards.verify_captcha(route.captcha, body, ip, self.secrets.resolve, self._captcha())

        mapped = map_submission(route, body, query, headers)
        context, lead, payload = mapped.context, mapped.lead, mapped.payload
        if route.popups:
            # Spec 11: the lead's popup, by the route's weighted round robin on this instance.
            payload["popup_uuid"] = self.runtime.deliverer.router.pick(route.name, route.popups)
        line.phone = lead.masked
        line.popup_uuid = payload["popup_uuid"]
        line.adicional_keys = sorted(payload.get("adicional", {}))

        # Spec 10: a required consent not given is refused before anything is kept.
        consent_record = (
            consent.record(route.consent, body, headers, records.iso(time.time()) or "")
            if route.consent is not None
            else None
        )
        if route.dry_run:
            line.result = "dry_run"
            return success(dry_run=True, payload={**payload, "security_token": MASKED_TOKEN})
        if sender_key and delivery_id is not None:
            # A key reused for another number is no replay of it: the key counts with the number.
            delivery_id = (f"{delivery_id[0]}|{self.runtime.attempter.phone_hash(lead.e164)}", delivery_id[1])
        submission = Submission(
            route=route,
            number=lead,
            payload={k: v for k, v in payload.items() if k != "security_token"},
            dedupe_value=route.dedupe_key.render(context) if route.dedupe_key is not None else "",
            delivery_id=delivery_id,
            delivery_scope=signer,
            ip_key=guards.rate_key(ip) if route.rate_per_ip is not None else None,
            consent=consent_record,
            contact=_contact(route, body, payload, consent_record),
            attribution=attribution.extract(body, query, headers),
            clicks=_clicks(route, body, query, consent_record),
        )
        delivered = self.runtime.deliverer.submit(submission)
        line.delivered = delivered.attempted
        if delivered.error is not None:
            raise delivered.error
        first = delivered.answer
        assert first is not None
        line.result = delivered.attempted.outcome or "placed"
        if sender_key and line.result != "duplicate":
            self._note_idempotency_key(headers, route, lead, delivered.attempted.lead_id)
        if line.result == "duplicate":
            return success(duplicate=True, lead_id=first.lead_id, uuid=first.uuid)
        if first.scheduled:
            return success(scheduled=True, lead_id=first.lead_id)
        if first.pending:
            return success(pending=True, lead_id=first.lead_id)
        return success(uuid=first.uuid, lead_id=first.lead_id)

    def _delivery_id(
        self, headers: Mapping[str, str], trusted: VouchedDelivery | None
    ) -> tuple[tuple[str, int] | None, bool]:
        """The id replays are caught by, and whether it is the sender's own unsigned key: what a signed
        scheme vouches for (every signed scheme vouches for one, so a signed route never trusts an unsigned
        header, spec 5), remembered for keep_days whatever the signature's window; else the sender's
        Idempotency-Key, which `_lead` ties to the number (spec 4)."""
        if trusted is not None:
            return (trusted.id, max(trusted.window_seconds, self.config().leads.keep_days * 86400)), False
        value = _idempotency_key(headers)
        return ((value, once.IDEMPOTENCY_SECONDS), True) if value else (None, False)

    def _signer(self, route: Route) -> str:
        """Who signs a route's deliveries: its scheme and its secret's keyed hash. Routes that share a
        secret share their signed ids (spec 5), so a delivery replayed to another of them is a duplicate."""
        ref = route.auth.secret or ""
        return f"signed-{route.auth.type}-" + self.runtime.attempter.phone_hash(self.secrets.resolve(ref))[:24]

    def _note_idempotency_key(
        self, headers: Mapping[str, str], route: Route, lead: phones.Number, lead_id: str | None
    ) -> None:
        """Spec 4: a key seen before for another number was handled as new; say so (WARNING), once per such
        submission. Only a kept lead marks its key, so an abuser's fresh keys on duplicates keep nothing."""
        value = _idempotency_key(headers)
        if not value or not lead_id:
            return
        mine = self.runtime.attempter.phone_hash(lead.e164)[:24]
        first = self.store.claim(keys.idempotency_key(route.name, value), mine, once.IDEMPOTENCY_SECONDS)
        if first is None or first == mine:
            return
        fields = {
            "route": route.name,
            "outcome": "idempotency_key_reused",
            "lead_id": lead_id,
            "phone": lead.masked,
            "source": "request",
            "reason": "Idempotency-Key seen before for another number: handled as a new lead",
        }
        self.logger.write("WARNING", f"{route.name}: idempotency_key_reused", fields, headers)

    # -- Meta Lead Ads (spec 5) --

    def _meta_handshake(self, route: Route, request: Request, ip: str, line: RequestLine) -> Response:
        """Meta subscribing the URL: its hub.challenge as text/plain when the verify token matches."""
        try:
            challenge = meta.handshake(route.auth, request.query_string, self.secrets.resolve)
        except Unauthorized:
            self._count_failure(route, ip)
            raise
        line.result = "handshake"
        headers = {"Content-Type": "text/plain; charset=utf-8", "Cache-Control": "no-store",
                   "X-Content-Type-Options": "nosniff"}  # fmt: skip
        return Response(200, challenge.encode("ascii"), headers)

    def _meta_delivery(
        self, route: Route, body: dict[str, Any], request: Request, ip: str, line: RequestLine
    ) -> Response:
        """Each lead a delivery names, read from the Graph API and delivered on its own, known by its
        leadgen_id. 200 once every one is kept, refused or a duplicate; else the first 5xx or 429, and
        Meta sends the delivery again (the leads kept meanwhile then answer as duplicates)."""
        window = self.config().leads.keep_days * 86400
        results: list[dict[str, Any]] = []
        retry: Response | None = None
        for leadgen in meta.leadgens(body):
            started = time.perf_counter()
            lead_line = RequestLine(route=line.route, route_config=route)
            delivery_id = (f"meta:{leadgen.leadgen_id}", window)
            try:
                response = self._meta_lead(route, leadgen, request.headers, delivery_id, ip, lead_line)
            except WebhookError as err:
                lead_line.result, lead_line.reason = err.error, err.reason
                lead_line.formcall_error_code = err.formcall_error_code
                response = failure(err)
            line.leads.append((lead_line, response, started))
            results.append({"leadgen_id": leadgen.leadgen_id, **json.loads(response.body)})
            if retry is None and (response.status >= 500 or response.status == 429):
                retry = response
        line.per_lead = bool(results)
        if retry is not None:
            line.result = next(x.result for x, answer, _ in line.leads if answer is retry)
            return retry
        line.result = "no_leads" if not results else "placed"
        return success(leads=results)

    def _meta_lead(
        self,
        route: Route,
        leadgen: meta.Leadgen,
        headers: Mapping[str, str],
        delivery_id: tuple[str, int],
        ip: str,
        line: RequestLine,
    ) -> Response:
        from .clients.meta_graph import GraphUnavailable, flat_body  # Meta routes only

        auth = route.auth
        page_token = secret(auth, self.secrets.resolve, auth.page_token)
        try:
            lead = self.runtime.graph.read(auth.graph_url, auth.graph_version, leadgen.leadgen_id, page_token)
        except GraphUnavailable as err:
            if route.retry is None:  # retry = false: the function keeps nothing for later, Meta retries
                raise GraphAPIUnavailable(
                    "The lead could not be read from Meta's Graph API; try again later.", reason=err.reason
                ) from err
            # Kept by its id: the sweeper reads it when the Graph API answers, then calls (spec 5).
            unread = Unread("meta", leadgen.leadgen_id, leadgen.value)
            delivered = self.runtime.deliverer.keep_unread(route, delivery_id, unread, "graph_unavailable", err.reason)
            line.delivered = delivered.attempted
            line.result = delivered.attempted.outcome
            first = delivered.answer
            assert first is not None
            if line.result == "duplicate":
                return success(duplicate=True, lead_id=first.lead_id, uuid=first.uuid)
            return success(scheduled=True, lead_id=first.lead_id)
        body = flat_body(lead, leadgen.value, leadgen.leadgen_id)
        return self._lead(route, body, {}, headers, delivery_id, ip, line)

    def _count_failure(self, route: Route, ip: str) -> None:
        rate = route.rate_per_ip
        if rate is None:
            return
        ip_key = guards.rate_key(ip)
        count, seconds_left = self.store.hit(keys.rate_ip(route.name, ip_key), rate.seconds)
        if count > rate.limit:
            raise RateLimited(
                "Too many submissions; try again later.",
                retry_after=seconds_left,
                reason=f"rate limit per_ip {rate.limit}/{rate.seconds}s exceeded (failed authentications)",
            )

    def _captcha(self) -> Pool:
        if self._captcha_pool is None:
            self._captcha_pool = make_pool(maxsize=8)
        return self._captcha_pool

    def _log(self, request: Request, response: Response, line: RequestLine, started: float) -> None:
        duration_ms = round((time.perf_counter() - started) * 1000, 1)
        report = line.delivered
        fields = {
            # Unknown paths share one route value: strangers cannot add labels to the log-based metrics.
            "route": UNKNOWN_ROUTE if line.result == "unknown_route" else line.route,
            "outcome": line.result,
            "status": response.status,
            "lead_id": report.lead_id,
            "uuid": report.uuid,
            "phone": line.phone,
            "popup_uuid": line.popup_uuid,
            "formcall_error_code": line.formcall_error_code or report.formcall_error_code,
            "formcall_ms": report.formcall_ms,
            "wait_seconds": report.wait_seconds,
            "attempts": report.attempts,
            "source": "request",
            "reason": line.reason or report.reason,
            "adicional_keys": line.adicional_keys or None,
            "duration_ms": duration_ms,
            "method": request.method,
        }
        message = f"{line.route}: {line.result} ({response.status})"
        self.logger.write(severity_for(line.result, response.status), message, fields, request.headers)


def _contact(
    route: Route, body: Mapping[str, Any], payload: Mapping[str, Any], consent_record: Mapping[str, Any] | None
) -> dict[str, str] | None:
    """The CRM contact an outcome is written to (spec 9): HubSpot's vid / objectId, else the email; and the
    email a conversion hashes (spec 12), for a lead who consented to ads measurement.

    An id is kept only on a route HubSpot signs: anywhere else a stranger could name any contact."""
    if route.outcome_reporting is None or route.outcome_reporting.hubspot is None:
        if route.conversions is None or not consent.ads_given(consent_record):
            return None
        return _conversion_email(body, payload)
    from .clients import hubspot  # only routes that report to HubSpot need it

    props = body.get("properties")
    nested = props.get("hs_object_id") if isinstance(props, dict) else None
    candidates = [body.get("vid"), body.get("objectId"), body.get("hs_object_id"), body.get("canonical-vid"),
                  nested.get("value") if isinstance(nested, dict) else nested]  # fmt: skip
    signed = route.auth.type == "hubspot"
    contact_id = next((c for c in map(hubspot.contact_id_of, candidates) if c), None) if signed else None
    email_prop = props.get("email") if isinstance(props, dict) else None
    emails = [body.get("email"), email_prop.get("value") if isinstance(email_prop, dict) else email_prop,
              (payload.get("adicional") or {}).get("Email")]  # fmt: skip
    email = next((e for e in map(hubspot.email_of, emails) if e), None)
    found = {k: v for k, v in (("contact_id", contact_id), ("email", email)) if v}
    return found or None


def _conversion_email(body: Mapping[str, Any], payload: Mapping[str, Any]) -> dict[str, str] | None:
    props = body.get("properties")
    email_prop = props.get("email") if isinstance(props, dict) else None
    for value in (body.get("email"), email_prop.get("value") if isinstance(email_prop, dict) else email_prop,
                  (payload.get("adicional") or {}).get("Email")):  # fmt: skip
        if isinstance(value, str) and 3 <= len(value.strip()) <= 254 and "@" in value:
            return {"email": value.strip()}
    return None


def _clicks(
    route: Route, body: Mapping[str, Any], query: Mapping[str, Any], consent_record: Mapping[str, Any] | None
) -> dict[str, str] | None:
    """The click ids a conversion needs (spec 12): only on a route with `conversions`, and only from a
    person who consented to ads measurement (spec 10)."""
    if route.conversions is None or not consent.ads_given(consent_record):
        return None
    from .conversions import clicks_of  # only routes with conversions load it

    return clicks_of(body, query) or None


def _idempotency_key(headers: Mapping[str, str]) -> str:
    """The sender's own, unsigned delivery id: Idempotency-Key (or an unsigned webhook-id)."""
    return headers.get("idempotency-key") or headers.get("webhook-id") or ""


def _allowed_methods(route: Route) -> str:
    return "POST, GET, OPTIONS" if route.allow_get else "POST, OPTIONS"


def _read_limited(request: Request, limit: int, timeout_seconds: float | None = None) -> bytes:
    """The body, refused with 413 before parsing when it is over the route's limit, and with 408
    when it takes longer than `timeout_seconds` (the route's body_timeout_seconds) to arrive."""
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"The body is larger than {limit} bytes.")
    # Without one, the reader's own deadline (main.py's: the default body_timeout_seconds).
    timeout = () if timeout_seconds is None else (timeout_seconds,)
    raw = request.read_body(limit + 1, *timeout)
    if len(raw) > limit:
        raise PayloadTooLarge(f"The body is larger than {limit} bytes.")
    return raw


def read_stream(
    stream: IO[bytes], limit: int, timeout: float | None = None, sock: socket.socket | None = None
) -> bytes:
    """Up to `limit` bytes; WSGI streams may return short reads before the end.

    With `timeout`, RequestTimeout (408) once that many seconds have passed: a client that sends its
    headers and then stalls must not hold a worker thread. A blocking read can only be cut short
    through the connection's socket (gunicorn's environ["gunicorn.socket"]): its timeout is set to what
    is left before each read. A body read in time leaves it set, for the answer's write too (gunicorn
    makes the socket blocking again before it reads the connection's next request, and each setting is
    a system call that, under eight threads, costs a GIL hand-off); a body that failed gets the socket
    back blocking, so its 4xx answer is written whole. Without the socket the deadline is checked
    between reads only."""
    try:
        return _read_until_deadline(stream, limit, timeout, sock)
    except WebhookError:
        if sock is not None and timeout is not None:
            with contextlib.suppress(OSError):
                sock.settimeout(None)
        raise


def _read_until_deadline(stream: IO[bytes], limit: int, timeout: float | None, sock: socket.socket | None) -> bytes:
    deadline = None if timeout is None else time.monotonic() + timeout
    chunks: list[bytes] = []
    size = 0
    while size < limit:
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _body_timeout(timeout)
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.settimeout(remaining)
        try:
            chunk = stream.read(min(65536, limit - size))
        except (OSError, ValueError, ClientDisconnected) as err:
            # werkzeug turns the socket's timeout into ClientDisconnected; the cause tells them apart.
            timed_out = isinstance(err, TimeoutError) or isinstance(err.__context__, TimeoutError)
            if timed_out or (deadline is not None and time.monotonic() >= deadline):
                raise _body_timeout(timeout) from err
            raise BadRequest(
                "The body ended before it was complete.", reason=f"body read failed: {type(err).__name__}"
            ) from err
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def _body_timeout(timeout: float | None) -> RequestTimeout:
    within = f" within {timeout:g} seconds" if timeout is not None else " in time"
    return RequestTimeout(f"The body was not received{within}.", reason="body read timed out")
