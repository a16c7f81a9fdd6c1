"""Submission bodies into one dict (spec section 1). Pure: bytes and headers in, data out."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl

from werkzeug.formparser import FormDataParser
from werkzeug.http import parse_options_header

from .errors import BadRequest, UnsupportedMediaType

_BRACKETS = re.compile(r"\[([^\[\]]*)\]")
# Deeper bracketed keys than this are kept flat only; no real form nests further.
_MAX_BRACKET_DEPTH = 16
_MAX_FORM_FIELDS = 1000
# A surrogate pair (kept, group 1) or a lone surrogate escape.
_SURROGATE_ESCAPE = re.compile(
    rb"\\u[dD][89abAB][0-9a-fA-F]{2}(\\u[dD][c-fC-F][0-9a-fA-F]{2})|\\u[dD][89a-fA-F][0-9a-fA-F]{2}"
)


def parse_query(query_string: bytes | str) -> dict[str, Any]:
    if isinstance(query_string, bytes):
        query_string = query_string.decode("utf-8", "replace")
    try:
        pairs = parse_qsl(query_string, keep_blank_values=True, max_num_fields=_MAX_FORM_FIELDS)
    except ValueError as err:
        raise BadRequest("The query string has too many fields.") from err
    return form_to_dict(pairs)


def parse_body(content_type: str | None, body: bytes) -> dict[str, Any]:
    """The parsed submission; BadRequest or UnsupportedMediaType when it cannot be read."""
    mimetype, options = parse_options_header(content_type or "")
    mimetype = mimetype.lower()
    if not body.strip():
        if mimetype and not _supported(mimetype):
            raise UnsupportedMediaType(f"Content type {mimetype} is not accepted.")
        return {}
    if mimetype == "application/json" or mimetype.endswith("+json"):
        return _json_object(body)
    if mimetype == "application/x-www-form-urlencoded":
        return _urlencoded(body)
    if mimetype == "multipart/form-data":
        return _multipart(body, mimetype, options)
    if mimetype == "text/plain" or not mimetype:
        # Senders that avoid a CORS preflight post JSON as text/plain.
        return _json_object(body)
    raise UnsupportedMediaType(
        f"Content type {mimetype} is not accepted; send JSON, a form, or text/plain holding JSON."
    )


def _supported(mimetype: str) -> bool:
    return mimetype in {
        "application/json",
        "application/x-www-form-urlencoded",
        "multipart/form-data",
        "text/plain",
    } or mimetype.endswith("+json")


def _json_object(body: bytes) -> dict[str, Any]:
    if b"\\u" in body:
        # JSON can spell a lone UTF-16 surrogate ("\ud800"), which no UTF-8 payload, log or store key
        # can carry: each becomes U+FFFD before decoding, as undecodable bytes do everywhere else.
        body = _SURROGATE_ESCAPE.sub(_keep_pairs, body)
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as err:
        raise BadRequest("The body is not valid JSON.") from err
    if not isinstance(data, dict):
        raise BadRequest("The body must be a JSON object.")
    return data


def _keep_pairs(match: re.Match[bytes]) -> bytes:
    """A high and low surrogate escape together are one character (an emoji): kept. Alone: U+FFFD."""
    return match.group(0) if match.group(1) else b"\\ufffd"


def _urlencoded(body: bytes) -> dict[str, Any]:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        # Old WordPress forms still send Latin-1.
        text = body.decode("latin-1")
    try:
        pairs = parse_qsl(text, keep_blank_values=True, max_num_fields=_MAX_FORM_FIELDS)
    except ValueError as err:
        raise BadRequest("The form has too many fields.") from err
    return form_to_dict(pairs)


def _multipart(body: bytes, mimetype: str, options: Mapping[str, str]) -> dict[str, Any]:
    if not options.get("boundary"):
        raise BadRequest("The multipart body has no boundary.")
    parser = FormDataParser(max_form_parts=_MAX_FORM_FIELDS)
    try:
        _, form, _files = parser.parse(io.BytesIO(body), mimetype, len(body), dict(options))
    except Exception as err:  # werkzeug raises several types for malformed multipart
        raise BadRequest("The multipart body could not be read.") from err
    return form_to_dict(form.items(multi=True))


def form_to_dict(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Repeated keys become lists; bracketed keys are also expanded into nested objects."""
    flat: dict[str, Any] = {}
    for key, value in pairs:
        if not isinstance(key, str):
            continue  # a multipart part without a usable name
        if key in flat:
            existing = flat[key]
            if isinstance(existing, list):
                existing.append(value)
            else:
                flat[key] = [existing, value]
        else:
            flat[key] = value
    result: dict[str, Any] = dict(flat)
    for key, value in flat.items():
        if "[" in key:
            _expand(result, key, value)
    return result


def _expand(result: dict[str, Any], key: str, value: Any) -> None:
    """fields[phone][value]=x also as result["fields"]["phone"]["value"]; a[]=1&a[]=2 as a list."""
    head, _, rest = key.partition("[")
    parts = _BRACKETS.findall("[" + rest)
    if not head or len(parts) > _MAX_BRACKET_DEPTH or "".join(f"[{p}]" for p in parts) != "[" + rest:
        return
    path = [head, *parts]
    if path[-1] == "":
        # "a[]": the flat key already holds every value, in order.
        path.pop()
        value = value if isinstance(value, list) else [value]
    node = result
    for part in path[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            return  # a plain field of that name was sent too; keep it as sent
        node = child
    node.setdefault(path[-1], value)
