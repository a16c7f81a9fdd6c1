"""The answer table of spec section 4, from FormCall's answer to the function's."""

from __future__ import annotations

import json

import pytest

from formcall_webhook import errors
from formcall_webhook.answers import failure, success
from formcall_webhook.clients.formcall import FormCallUncertain, Placed, parse_answer


def test_placed_and_pending() -> None:
    assert parse_answer(200, b'{"success": true, "uuid": "80b5fc503f24d33de4f15f908f42b279"}') == Placed(
        "80b5fc503f24d33de4f15f908f42b279"
    )
    assert parse_answer(200, b'{"success": true, "pending": true}') == Placed(None, pending=True)


def test_success_without_uuid_is_not_retried() -> None:
    # The call may exist: answering 5xx would make the sender retry and ring the lead twice.
    assert parse_answer(200, b'{"success": true}') == Placed(None)


@pytest.mark.parametrize(
    ("code", "error_class", "status", "word"),
    [
        (1, errors.FormCallRejected, 422, "formcall_rejected"),
        (2, errors.OutOfServiceHours, 409, "out_of_service_hours"),
        (3, errors.OriginationFailed, 502, "origination_failed"),
        (4, errors.FormCallMisconfigured, 502, "formcall_misconfigured"),
        (5, errors.FormCallRejected, 422, "formcall_rejected"),
        (6, errors.FormCallRejected, 422, "formcall_rejected"),
        (7, errors.FormCallMisconfigured, 502, "formcall_misconfigured"),
        (8, errors.FormCallMisconfigured, 502, "formcall_misconfigured"),
    ],
)
def test_error_codes(code: int, error_class: type[errors.WebhookError], status: int, word: str) -> None:
    body = json.dumps({"success": False, "error_code": code, "error_msg": "x"}).encode()
    with pytest.raises(error_class) as caught:
        parse_answer(200, body)
    err = caught.value
    assert (err.status, err.error, err.formcall_error_code) == (status, word, code)
    answer = json.loads(failure(err).body)
    assert answer == {"success": False, "error": word, "message": err.message, "formcall_error_code": code}
    assert ("Retry-After" in failure(err).headers) == (status >= 500)


def test_error_code_as_string() -> None:
    with pytest.raises(errors.OutOfServiceHours):
        parse_answer(500, b'{"success": false, "error_code": "2"}')


@pytest.mark.parametrize(
    "raw",
    [
        b"<html><body>502 Bad Gateway</body></html>",
        b'{"success": tru',
        b"",
        b"[]",
        b'{"ok": true}',
        b'{"success": "yes"}',
        b'{"success": false}',
        b'{"success": false, "error_code": 99}',
        b'{"success": false, "error_code": true}',
    ],
)
def test_anything_undocumented_is_unavailable(raw: bytes) -> None:
    with pytest.raises(errors.FormCallUnavailable) as caught:
        parse_answer(200, raw)
    response = failure(caught.value)
    assert response.status == 503
    assert response.headers["Retry-After"].isdigit()
    assert json.loads(response.body)["error"] == "formcall_unavailable"


@pytest.mark.parametrize(
    ("raw", "lost"),
    [
        (b'{"success": true, "uuid": "80b5fc503f', True),  # placed; the uuid went with the rest
        (b' {"success":true', True),
        (b'{"success": false, "error_co', False),  # FormCall said it failed: nothing placed
        (b"<html><body>502 Bad Gateway</body></html>", False),
        (b'{"success": tru', False),  # not even FormCall's word: an undocumented answer
    ],
)
def test_a_cut_success_is_a_lost_answer_and_anything_else_undocumented_is_not(raw: bytes, lost: bool) -> None:
    """Spec 8 settles a lost answer from the list; an answer cut after `"success": true` is one (the call
    exists), while an error page or a cut failure is an answer: formcall_unavailable, retried as such."""
    with pytest.raises(errors.FormCallUnavailable) as caught:
        parse_answer(200, raw)
    assert isinstance(caught.value, FormCallUncertain) is lost


def test_success_answer_shape() -> None:
    response = success(uuid="abc", pending=None)
    assert response.status == 200
    assert json.loads(response.body) == {"success": True, "uuid": "abc"}
    assert response.headers["Content-Type"].startswith("application/json")


@pytest.mark.parametrize(
    ("error_class", "status", "word"),
    [
        (errors.BadRequest, 400, "bad_request"),
        (errors.Unauthorized, 401, "unauthorized"),
        (errors.CaptchaFailed, 403, "captcha_failed"),
        (errors.UnknownRoute, 404, "unknown_route"),
        (errors.MethodNotAllowed, 405, "method_not_allowed"),
        (errors.PayloadTooLarge, 413, "payload_too_large"),
        (errors.UnsupportedMediaType, 415, "unsupported_media_type"),
        (errors.PhoneMissing, 422, "phone_missing"),
        (errors.InvalidPhone, 422, "invalid_phone"),
        (errors.RegionNotAllowed, 422, "region_not_allowed"),
        (errors.NumberTypeNotAllowed, 422, "number_type_not_allowed"),
        (errors.RateLimited, 429, "rate_limited"),
        (errors.Misconfigured, 500, "misconfigured"),
        (errors.FormCallUnavailable, 503, "formcall_unavailable"),
    ],
)
def test_every_row_of_the_table(error_class: type[errors.WebhookError], status: int, word: str) -> None:
    response = failure(error_class("A sentence.", reason="secret detail"))
    body = json.loads(response.body)
    assert response.status == status
    assert body == {"success": False, "error": word, "message": "A sentence."}
    assert b"secret detail" not in response.body
    assert ("Retry-After" in response.headers) == (status in (429, 502, 503))
