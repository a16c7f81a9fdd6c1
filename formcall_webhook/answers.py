"""Outcomes into HTTP answers: the one place where the table of spec section 4 is written."""

from __future__ import annotations

import json
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, NamedTuple

from .errors import WebhookError


class Response(NamedTuple):
    """An HTTP answer: status, body and headers."""

    status: int
    body: bytes
    headers: Mapping[str, str] = MappingProxyType({})


def json_response(status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "replace")
    all_headers = {"Content-Type": "application/json; charset=utf-8", "Cache-Control": "no-store"}
    all_headers.update(headers or {})
    return Response(status, body, all_headers)


def success(status: int = 200, **fields: Any) -> Response:
    return json_response(status, {"success": True, **{k: v for k, v in fields.items() if v is not None}})


def failure(err: WebhookError) -> Response:
    payload: dict[str, Any] = {"success": False, "error": err.error, "message": err.message}
    if err.formcall_error_code is not None:
        payload["formcall_error_code"] = err.formcall_error_code
    headers = {"Retry-After": str(err.retry_after)} if err.retry_after is not None else {}
    headers.update(err.headers)
    return json_response(err.status, payload, headers)
