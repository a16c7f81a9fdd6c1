"""The FormCall API client: one POST, never retried blind, every answer mapped (spec section 4)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any, NamedTuple
from urllib.parse import urlencode, urljoin

from ..errors import (
    FormCallMisconfigured,
    FormCallRejected,
    FormCallUnavailable,
    OriginationFailed,
    OutOfServiceHours,
    WebhookError,
)
from .http import TransportError, make_pool, send

_UUID = re.compile(r"^[0-9a-fA-F]{32}$")
# FormCall's answers are a few dozen bytes; anything this large is an error page.
_MAX_ANSWER_BYTES = 64 * 1024
_LIST_TIMEOUT = 5.0
# A day's listing of a busy popup runs to megabytes (about 300 bytes a call).
_MAX_LIST_BYTES = 16 * 1024 * 1024
_JSON_HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}
# The start of FormCall's documented answer, as far as a body cut short still shows it.
_SAYS_SUCCESS = re.compile(rb'^\s*\{\s*"success"\s*:\s*(true|false)\b')

_ERRORS: dict[int, tuple[type[WebhookError], str]] = {
    1: (FormCallRejected, "FormCall refused the phone number."),
    2: (OutOfServiceHours, "The call centre is outside its service hours."),
    3: (OriginationFailed, "FormCall could not start the call; try again later."),
    4: (FormCallMisconfigured, "The FormCall popup was not found."),
    5: (FormCallRejected, "FormCall does not call that country."),
    6: (FormCallRejected, "FormCall refused the call's parameters."),
    7: (FormCallMisconfigured, "The FormCall security token is missing."),
    8: (FormCallMisconfigured, "The FormCall security token was refused."),
}
INVALID_TOKEN = 8


class FormCallUncertain(FormCallUnavailable):
    """The request reached FormCall but its answer did not reach us: the call may exist."""


class ListUnavailable(Exception):
    """/calls/list could not be read this time; it may tell later."""


class Placed(NamedTuple):
    """FormCall accepted the call: placed (uuid) or left pending."""

    uuid: str | None
    pending: bool = False


class FormCallClient:
    """One instance per process: a connection pool, TLS verified against the CA bundle if given.

    The standard library's http.client (clients/http.py) rather than requests or urllib3: the same pool
    and TLS, less CPU per call and no HTTP library to import at cold start, both of which a lead waits for."""

    def __init__(self, api_url: str, timeout: float, ca_bundle: str | None = None) -> None:
        self.api_url = api_url
        self.timeout = timeout
        # No automatic retries: a POST that may have reached FormCall could ring a lead twice.
        self.pool = make_pool(ca_bundle)
        self.list_url = list_url_for(api_url)

    def place_call(self, payload: dict[str, Any]) -> Placed:
        """Placed or pending; a WebhookError naming the answer otherwise."""
        body = json.dumps(payload, ensure_ascii=False).encode("utf-8", "replace")
        try:
            answer = send(
                self.pool, "POST", self.api_url, headers=_JSON_HEADERS, body=body, timeout=self.timeout,
                max_bytes=_MAX_ANSWER_BYTES,
            )  # fmt: skip
        except TransportError as err:
            if not err.sent:
                raise FormCallUnavailable("FormCall could not be reached.", reason=err.cause) from err
            if said_success(err.partial) is False:
                # The answer broke off after FormCall had said the call failed: nothing was placed.
                raise FormCallUnavailable(
                    "FormCall's answer broke off after it said the call failed; try again later.",
                    reason=f"{err.cause} after FormCall answered success: false",
                ) from err
            # The request went out: FormCall may have queued the call before the answer was lost.
            raise FormCallUncertain(
                "FormCall did not answer in time." if err.timed_out else "FormCall's answer was lost.",
                reason=f"{err.cause} after the request was sent",
            ) from err
        return parse_answer(answer.status, answer.body)

    def list_calls(self, token: str, popup_uuid: str, day: str) -> Any:
        """One read of /calls/list for a day (YYYY-MM-DD) and popup: the decoded JSON, whatever its shape.

        ListUnavailable when it cannot be read: no answer, a status other than 200, or not JSON.
        """
        url = f"{self.list_url}?{urlencode({'date': day, 'popup_uuid': popup_uuid})}"
        try:
            answer = send(
                self.pool,
                "GET",
                url,
                headers={"security-token": token, "Accept": "application/json"},
                body=None,
                # Off the first submission's path: a retry or the sweep can wait for a slow listing.
                timeout=max(self.timeout, _LIST_TIMEOUT),
                max_bytes=_MAX_LIST_BYTES,
            )
        except TransportError as err:
            raise ListUnavailable(f"/calls/list failed: {err.reason}") from err
        if answer.status != 200:
            raise ListUnavailable(f"/calls/list answered HTTP {answer.status}")
        if answer.truncated:
            raise ListUnavailable(f"/calls/list answered more than {_MAX_LIST_BYTES} bytes")
        try:
            return json.loads(answer.body)
        except (ValueError, RecursionError) as err:
            raise ListUnavailable(f"/calls/list did not answer JSON: {type(err).__name__}") from err


def list_url_for(api_url: str) -> str:
    """The documented list endpoint beside the place-call one: .../calls/manage/api -> .../calls/list."""
    base = api_url.split("?", 1)[0].rstrip("/")
    if base.endswith("/calls/manage/api"):
        return base[: -len("/manage/api")] + "/list"
    return urljoin(base + "/", "/calls/list")


def list_days(since: float, now: float) -> list[str]:
    """The platform lists by its local date (Chile, UTC-3 or UTC-4): every date those can be."""
    days = set()
    for moment in (since, now):
        for hours in (-4, -3, 0):
            days.add(datetime.fromtimestamp(moment + hours * 3600, tz=UTC).date().isoformat())
    return sorted(days)


def parse_answer(status: int, raw: bytes) -> Placed:
    """FormCall's answer, judged by its body: its HTTP statuses are not documented."""
    try:
        answer = json.loads(raw)
    except (ValueError, RecursionError):
        answer = None
    if not isinstance(answer, dict) or not isinstance(answer.get("success"), bool):
        if said_success(raw):
            # FormCall's success answer, cut short: the call was placed and its uuid lost with the rest,
            # so it is settled from /calls/list like a lost answer (spec 8), never asked again blind.
            raise FormCallUncertain(
                "FormCall's answer was cut short; its call is looked up before any new attempt.",
                reason=f"success answer cut short: HTTP {status}, {len(raw)} bytes",
            )
        # An error page or another body that is not the documented JSON: an answer, not a lost one
        # (spec 4: formcall_unavailable; spec 8 settles only a timeout or a reset from the list).
        raise FormCallUnavailable(
            "FormCall answered something unexpected; try again later.",
            reason=f"undocumented answer: HTTP {status}, {len(raw)} bytes",
        )
    if answer["success"]:
        uuid = answer.get("uuid")
        if isinstance(uuid, str) and _UUID.match(uuid):
            return Placed(uuid.lower())
        if answer.get("pending") is True:
            return Placed(None, pending=True)
        # success without a uuid: the call may exist, so this must not invite a retry.
        return Placed(None)
    code = _error_code(answer.get("error_code"))
    if code not in _ERRORS:
        raise FormCallUnavailable(
            "FormCall answered an unknown error; try again later.",
            formcall_error_code=code,
            reason=f"undocumented error_code {answer.get('error_code')!r}",
        )
    error_class, message = _ERRORS[code]
    raise error_class(message, formcall_error_code=code, reason=f"FormCall error {code}")


def said_success(body: bytes) -> bool | None:
    """What the start of a body that may be cut short says of `success`: True, False, or None when it
    does not begin as FormCall's documented answer does."""
    match = _SAYS_SUCCESS.match(body)
    return None if match is None else match.group(1) == b"true"


def _error_code(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None
