"""The bundled FormCall simulator and the Secret Manager fake, exercised through real HTTP clients."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import requests

from formcall_webhook.simulator import (
    DOCUMENTED_ROW_FIELDS,
    ERROR_MESSAGES,
    RICH_ROWS_ENV,
    STATUS_BUSY,
    STATUS_CONNECTED,
    STATUS_FAILED,
    STATUS_NO_ANSWER,
    STATUS_QUEUED,
    STATUS_RINGING,
    Simulator,
)
from tests.fakes.secret_manager import FakeSecretManager, crc32c

POPUP = "e5c98214-d0f6-11e1-8c30-001d09ef4a24"
OTHER_POPUP = "f0e1d2c3-0000-4000-8000-000000000001"
TOKEN = "dev-token"
HEX32 = re.compile(r"[0-9a-f]{32}")
# formcall-api.md's example row, as documented: the simulator's rows have its fields and its types.
DOC_ROW: dict[str, Any] = json.loads(
    '{"uuid": "a93460bbf8402e15b9b0afddc05d5e8d", "status": "Conectada", "call_number_company": "56223456789",'
    ' "retry": "3", "duration_company": "117", "duration_customer": "95", "call_at": "2019/04/02 10:05:03 -0300",'
    ' "enqueued": false, "popup_uuid": "14f1cc88-6ce8-11e9-b8f9-001d09ef4aa0"}'
)
TIMEOUT = 5.0
ROOT = Path(__file__).resolve().parent.parent


def body(**changes: Any) -> dict[str, Any]:
    """A valid place-call body (the documented +56 9 5631 1283), with changes; None removes a key."""
    data: dict[str, Any] = {
        "popup_uuid": POPUP,
        "country_code": "56",
        "areacode": "9",
        "phonenumber": "56311283",
        "security_token": TOKEN,
        "adicional": {"Nombre": "Juan", "Email": "juan@example.cl"},
    }
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


def error(code: int) -> dict[str, Any]:
    return {"success": False, "error_code": code, "error_msg": ERROR_MESSAGES[code]}


@pytest.fixture(scope="module")
def shared_sim() -> Iterator[Simulator]:
    with Simulator(quiet=True) as sim:
        yield sim


@pytest.fixture
def sim(shared_sim: Simulator) -> Simulator:
    shared_sim.reset()
    return shared_sim


def post(sim: Simulator, data: Any, **kwargs: Any) -> requests.Response:
    kwargs.setdefault("timeout", TIMEOUT)
    return requests.post(sim.api_url, json=data, **kwargs)


# ---- placing calls ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("areacode", "number"),
    [("9", "56311283"), ("9", "74766123"), ("2", "21234567"), ("32", "2123456")],
    ids=["mobile-doc-1", "mobile-doc-2", "santiago-landline", "regional-landline"],
)
def test_places_a_call_for_documented_chilean_numbers(sim: Simulator, areacode: str, number: str) -> None:
    sent = body(areacode=areacode, phonenumber=number)
    answer = post(sim, sent)
    assert answer.status_code == 200
    assert answer.headers["Content-Type"] == "application/json"
    data = answer.json()
    assert set(data) == {"success", "uuid"}
    assert data["success"] is True
    assert HEX32.fullmatch(data["uuid"])
    [call] = sim.placed()
    assert call["payload"] == sent  # as sent, token included
    assert call["uuid"] == data["uuid"]
    assert call["outcome"] == "placed"
    assert call["fault"] is None
    assert call["response"] == data


def test_each_call_gets_a_new_uuid(sim: Simulator) -> None:
    uuids = {post(sim, body()).json()["uuid"] for _ in range(3)}
    assert len(uuids) == 3
    assert [c["seq"] for c in sim.calls()] == [1, 2, 3]


def test_a_body_without_adicional_and_with_scalar_adicional_values_is_fine(sim: Simulator) -> None:
    assert post(sim, body(adicional=None)).json()["success"] is True
    assert post(sim, body(adicional={"Edad": 40, "Cliente": True, "Nota": None})).json()["success"] is True


def test_areacode_may_be_empty_when_the_number_holds_it(sim: Simulator) -> None:
    assert post(sim, body(areacode="", phonenumber="956311283")).json()["success"] is True


# ---- error codes -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "sent"),
    [
        (1, body(phonenumber="1234")),
        (1, body(phonenumber="563112834")),
        (1, body(phonenumber="5631-1283")),
        (1, body(areacode="1", phonenumber="56311283")),
        (4, body(popup_uuid="not-a-uuid")),
        (4, body(popup_uuid="e5c98214d0f611e18c30001d09ef4a24")),
        (5, body(country_code="999")),
        (5, body(country_code="0")),
        (5, body(country_code="056")),
        (5, body(country_code="+56")),
        (5, body(country_code="")),
        (6, ["not", "an", "object"]),
        (6, "just a string"),
        (6, body(popup_uuid=None)),
        (6, body(country_code=None)),
        (6, body(areacode=None)),
        (6, body(phonenumber=None)),
        (6, body(country_code=56)),
        (6, body(phonenumber=56311283)),
        (6, body(adicional="Juan")),
        (6, body(adicional=["Juan"])),
        (6, body(adicional={"Contacto": {"Nombre": "Juan"}})),
        (6, body(adicional={"Tags": ["a", "b"]})),
        (7, body(security_token=None)),
        (7, body(security_token="")),
        (8, body(security_token="wrong-token")),
        (8, body(security_token=12345)),
    ],
)
def test_error_codes(sim: Simulator, code: int, sent: Any) -> None:
    answer = post(sim, sent)
    assert answer.status_code == 200
    assert answer.headers["Content-Type"] == "application/json"
    assert answer.json() == error(code)
    assert sim.placed() == []
    [call] = sim.calls()
    assert (call["outcome"], call["error_code"], call["uuid"]) == ("error", code, None)


def test_a_body_that_is_not_json_is_error_6_and_kept_raw(sim: Simulator) -> None:
    answer = requests.post(
        sim.api_url, data=b"{not json", headers={"Content-Type": "application/json"}, timeout=TIMEOUT
    )
    assert answer.json() == error(6)
    [call] = sim.calls()
    assert call["payload"] is None
    assert call["raw"] == "{not json"


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_json_sent_without_a_json_content_type_is_error_6(sim: Simulator, content_type: str | None) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    answer = requests.post(sim.api_url, data=json.dumps(body()), headers=headers, timeout=TIMEOUT)
    assert answer.json() == error(6)


def test_json_content_type_with_charset_is_accepted(sim: Simulator) -> None:
    answer = requests.post(
        sim.api_url,
        data=json.dumps(body()).encode(),
        headers={"Content-Type": "application/json; charset=utf-8"},
        timeout=TIMEOUT,
    )
    assert answer.json()["success"] is True


def test_unknown_popup_and_out_of_hours_popup(sim: Simulator) -> None:
    sim.set_popup(POPUP, exists=False)
    assert post(sim, body()).json() == error(4)
    sim.set_popup(POPUP.upper(), in_service_hours=False)
    assert post(sim, body()).json() == error(2)
    assert post(sim, body(popup_uuid=OTHER_POPUP)).json()["success"] is True
    assert len(sim.placed()) == 1


def test_pending_mode(sim: Simulator) -> None:
    sim.set_popup(POPUP, in_service_hours=False, keep_pending=True)
    answer = post(sim, body())
    assert answer.json() == {"success": True, "pending": True}
    assert sim.placed() == []
    [call] = sim.calls()
    assert (call["outcome"], call["uuid"]) == ("pending", None)


def test_keep_pending_changes_nothing_within_service_hours(sim: Simulator) -> None:
    sim.set_popup(POPUP, keep_pending=True)
    assert HEX32.fullmatch(post(sim, body()).json()["uuid"])


@pytest.mark.parametrize(
    ("code", "sent"),
    [
        (6, body(security_token=None, phonenumber=None)),
        (7, body(security_token="", popup_uuid="nope")),
        (8, body(security_token="wrong", country_code="999", phonenumber="1")),
        (4, body(popup_uuid="nope", country_code="999")),
        (5, body(country_code="999", phonenumber="1")),
        (1, body(popup_uuid=OTHER_POPUP, phonenumber="1")),
    ],
)
def test_checks_run_in_the_documented_order(sim: Simulator, code: int, sent: dict[str, Any]) -> None:
    sim.set_popup(OTHER_POPUP, in_service_hours=False)  # error 1 must win over error 2
    assert post(sim, sent).json() == error(code)


def test_token_rotation_and_reset(sim: Simulator) -> None:
    sim.set_tokens("new-token", "other-token")
    assert post(sim, body()).json() == error(8)
    assert post(sim, body(security_token="new-token")).json()["success"] is True
    sim.set_popup(POPUP, exists=False)
    sim.inject({"kind": "reset"})
    sim.reset()
    assert sim.calls() == []
    assert post(sim, body()).json()["success"] is True  # dev-token again, popup known, fault gone


# ---- GET /calls/list -------------------------------------------------------------------------------


def list_calls(sim: Simulator, token: str | None = TOKEN, **params: str) -> Any:
    headers = {"security-token": token} if token is not None else {}
    answer = requests.get(sim.url + "/calls/list", params=params, headers=headers, timeout=TIMEOUT)
    assert answer.status_code == 200
    assert answer.headers["Content-Type"] == "application/json"
    return answer.json()


def test_list_shows_placed_calls_shaped_like_the_documentation(sim: Simulator) -> None:
    first = post(sim, body()).json()["uuid"]
    second = post(sim, body(areacode="2", phonenumber="21234567")).json()["uuid"]
    third = post(sim, body(popup_uuid=OTHER_POPUP)).json()["uuid"]
    post(sim, body(phonenumber="1"))  # an error: not a call
    sim.set_popup(POPUP, in_service_hours=False, keep_pending=True)
    post(sim, body())  # pending: not a call yet

    rows = list_calls(sim)
    assert [r["uuid"] for r in rows] == [first, second, third]
    # Exactly the documented row (formcall-api.md's example), each value of the example's type: no
    # customer number, so nothing may lean on one.
    for row in rows:
        assert list(row) == list(DOCUMENTED_ROW_FIELDS)
        assert {k: type(v) for k, v in row.items()} == {k: type(v) for k, v in DOC_ROW.items()}
    row = rows[0]
    assert row["status"] == "Conectada"
    assert row["enqueued"] is False
    assert row["popup_uuid"] == POPUP
    assert row["call_number_company"] == DOC_ROW["call_number_company"]
    for key in ("call_number_company", "retry", "duration_company", "duration_customer"):
        assert row[key].isdigit(), key
    assert int(row["duration_customer"]) >= 25  # a successful call, by the glossary's definition
    assert re.fullmatch(r"\d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2} [+-]\d{4}", row["call_at"])
    assert list_calls(sim) == rows  # stable between reads


def test_rich_rows_name_the_customer_only_when_a_test_turns_them_on(sim: Simulator) -> None:
    """The one test of the richer row: off by default, on by method or control, off again at reset."""
    post(sim, body())
    post(sim, body(areacode="2", phonenumber="21234567"))
    assert sim.rows() == {"rich": False}
    assert all("call_number_customer" not in r for r in list_calls(sim))
    sim.set_rich_rows()
    rich = list_calls(sim)
    assert [list(r) for r in rich] == [[*DOCUMENTED_ROW_FIELDS, "call_number_customer"]] * 2
    assert [r["call_number_customer"] for r in rich] == ["56956311283", "56221234567"]
    assert control(sim, "rows", {"rich": False}).json() == {"ok": True}
    assert requests.get(f"{sim.url}/_sim/rows", timeout=TIMEOUT).json() == {"rich": False}
    assert [list(r) for r in list_calls(sim)] == [list(DOCUMENTED_ROW_FIELDS)] * 2
    assert control(sim, "rows", {"rich": True}).status_code == 200
    assert "call_number_customer" in list_calls(sim)[0]
    sim.reset()  # back to the shape the simulator was made with: documented
    post(sim, body())
    assert list(list_calls(sim)[0]) == list(DOCUMENTED_ROW_FIELDS)
    with Simulator(quiet=True, rich_rows=True) as rich_sim:
        post(rich_sim, body())
        rich_sim.reset()  # a simulator made rich stays rich
        post(rich_sim, body())
        assert list_calls(rich_sim)[0]["call_number_customer"] == "56956311283"


def test_list_filters_by_popup_and_date(sim: Simulator) -> None:
    post(sim, body())
    post(sim, body(popup_uuid=OTHER_POPUP))
    today = dt.datetime.now(ZoneInfo("America/Santiago")).date()  # the platform lists by Chile's date
    assert len(list_calls(sim, date=today.isoformat())) == 2
    assert list_calls(sim, date=(today - dt.timedelta(days=1)).isoformat()) == []
    assert [r["popup_uuid"] for r in list_calls(sim, popup_uuid=OTHER_POPUP)] == [OTHER_POPUP]
    assert list_calls(sim, popup_uuid=OTHER_POPUP.upper(), date=today.isoformat())[0]["popup_uuid"] == OTHER_POPUP
    assert list_calls(sim, popup_uuid="11111111-2222-3333-4444-555555555555") == []


def test_list_token_errors(sim: Simulator) -> None:
    post(sim, body())
    assert list_calls(sim, token=None) == error(7)
    assert list_calls(sim, token="") == error(7)
    assert list_calls(sim, token="wrong") == error(8)
    assert list_calls(sim, date="02/04/2019") == error(6)


def test_list_requests_do_not_consume_faults(sim: Simulator) -> None:
    sim.inject({"kind": "reset"})
    assert list_calls(sim) == []
    with pytest.raises(requests.ConnectionError):
        post(sim, body())


# ---- GET /calls/list: each call's life, on the simulator's clock ---------------------------------

SANTIAGO = ZoneInfo("America/Santiago")
CALL_AT = re.compile(r"\d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2} [+-]\d{4}")


def row_of(sim: Simulator, call_uuid: str) -> dict[str, Any]:
    """The call's row, read from the listing of its day (today or, after the clock moved, up to 2 days before)."""
    days = [sim.today() - dt.timedelta(days=n) for n in range(3)]
    [row] = [r for day in days for r in list_calls(sim, date=day.isoformat()) if r["uuid"] == call_uuid]
    return row


def life(row: dict[str, Any]) -> tuple[Any, ...]:
    return (row["status"], row["enqueued"], row["duration_company"], row["duration_customer"], row["retry"])


def test_a_call_is_queued_then_rings_then_settles_as_the_clock_moves(sim: Simulator) -> None:
    sim.set_fate(status=STATUS_NO_ANSWER, ring_after=10, settle_after=40, retry=3)
    call_uuid = post(sim, body()).json()["uuid"]
    assert life(row_of(sim, call_uuid)) == (STATUS_QUEUED, True, "0", "0", "3")
    sim.advance_clock(10)
    assert life(row_of(sim, call_uuid)) == (STATUS_RINGING, False, "0", "0", "3")
    sim.advance_clock(20)
    # The agent's leg is up while the customer's phone rings.
    assert life(row_of(sim, call_uuid)) == (STATUS_RINGING, False, "20", "0", "3")
    sim.advance_clock(10)
    settled = row_of(sim, call_uuid)
    assert (settled["status"], settled["enqueued"], settled["duration_customer"]) == (STATUS_NO_ANSWER, False, "0")
    assert 5 <= int(settled["duration_company"]) < 35
    sim.advance_clock(3600)
    assert row_of(sim, call_uuid) == settled  # a settled call no longer changes


def test_the_default_life_is_the_documented_connected_call_at_once(sim: Simulator) -> None:
    row = row_of(sim, post(sim, body()).json()["uuid"])
    assert (row["status"], row["enqueued"], row["retry"]) == (STATUS_CONNECTED, False, "1")
    assert int(row["duration_customer"]) >= 25
    assert int(row["duration_company"]) > int(row["duration_customer"])


def test_fates_per_number_win_over_the_default_and_are_kept_from_placement(sim: Simulator) -> None:
    sim.set_fate(status=STATUS_BUSY)
    sim.set_fate("+56 9 7476 6123", status=STATUS_CONNECTED, duration_customer=24, duration_company=61, retry=2)
    busy = post(sim, body()).json()["uuid"]
    short = post(sim, body(phonenumber="74766123")).json()["uuid"]
    # Connected, but a customer leg under 25 s: not "successful" by the platform's glossary.
    assert life(row_of(sim, short)) == (STATUS_CONNECTED, False, "61", "24", "2")
    assert life(row_of(sim, busy))[:2] == (STATUS_BUSY, False)
    # A fate changed later applies to calls placed later, not to a call already placed.
    sim.set_fate(status=STATUS_FAILED)
    later = post(sim, body()).json()["uuid"]
    assert row_of(sim, busy)["status"] == STATUS_BUSY
    assert row_of(sim, later)["status"] == STATUS_FAILED
    sim.clear_fates()
    assert row_of(sim, post(sim, body()).json()["uuid"])["status"] == STATUS_CONNECTED


def test_a_call_that_never_settles_rings_forever(sim: Simulator) -> None:
    sim.set_fate("56956311283", ring_after=5, settle_after=None)
    call_uuid = post(sim, body()).json()["uuid"]
    sim.advance_clock(6 * 3600)
    row = row_of(sim, call_uuid)
    assert (row["status"], row["duration_customer"]) == (STATUS_RINGING, "0")
    assert row["duration_company"] == str(6 * 3600 - 5)


def test_a_placed_call_can_be_given_a_new_fate_by_uuid(sim: Simulator) -> None:
    sim.set_fate(settle_after=None)
    call_uuid = post(sim, body()).json()["uuid"]
    sim.advance_clock(100)
    assert row_of(sim, call_uuid)["status"] == STATUS_RINGING
    sim.set_fate(uuid=call_uuid.upper(), status=STATUS_CONNECTED, ring_after=0, settle_after=90, duration_customer=40)
    assert (row_of(sim, call_uuid)["status"], row_of(sim, call_uuid)["duration_customer"]) == (STATUS_CONNECTED, "40")
    with pytest.raises(ValueError, match="no placed call"):
        sim.set_fate(uuid="0" * 32)
    with pytest.raises(ValueError, match="not both"):
        sim.set_fate("56956311283", uuid=call_uuid)


def test_a_popup_meets_the_fates_queued_for_its_next_calls(sim: Simulator) -> None:
    """As the platform would: not answered, busy, connected with a duration; one fate per placed call
    on that popup, in order, then the usual fates again."""
    sim.set_fate("56974766123", status=STATUS_FAILED)  # a number's fate waits behind the popup's queue
    sim.queue_fates(POPUP.upper(), "not_answered", "busy", {"status": "connected", "duration_customer": 95})
    assert [f["status"] for f in sim.queued_fates()[POPUP]] == [STATUS_NO_ANSWER, STATUS_BUSY, STATUS_CONNECTED]
    elsewhere = post(sim, body(popup_uuid=OTHER_POPUP)).json()["uuid"]  # another popup: not its queue
    sim.set_popup(POPUP, in_service_hours=False, keep_pending=True)
    assert post(sim, body()).json() == {"success": True, "pending": True}  # pending: no call, no fate used
    sim.set_popup(POPUP)
    first, second, third, fourth, fifth = (
        post(sim, body(phonenumber=number)).json()["uuid"]
        for number in ("74766123", "56311283", "56311283", "74766123", "56311283")
    )
    assert row_of(sim, elsewhere)["status"] == STATUS_CONNECTED
    assert life(row_of(sim, first))[:2] == (STATUS_NO_ANSWER, False)
    assert row_of(sim, first)["duration_customer"] == "0"
    assert row_of(sim, second)["status"] == STATUS_BUSY
    assert (row_of(sim, third)["status"], row_of(sim, third)["duration_customer"]) == (STATUS_CONNECTED, "95")
    assert sim.queued_fates() == {}
    assert row_of(sim, fourth)["status"] == STATUS_FAILED  # the queue used up: the number's fate again
    assert row_of(sim, fifth)["status"] == STATUS_CONNECTED  # and the default
    # A queued fate has the whole life of set_fate's: it rings first, and settles on the clock.
    sim.queue_fates(POPUP, {"status": "not_answered", "ring_after": 5, "settle_after": 30})
    ringing = post(sim, body()).json()["uuid"]
    assert row_of(sim, ringing)["status"] == STATUS_QUEUED
    sim.advance_clock(30)
    assert row_of(sim, ringing)["status"] == STATUS_NO_ANSWER
    sim.queue_fates(POPUP, "busy")
    sim.clear_fate_queues()
    assert row_of(sim, post(sim, body()).json()["uuid"])["status"] == STATUS_CONNECTED


def test_fates_have_names_as_well_as_listing_words(sim: Simulator) -> None:
    sim.set_fate(status="busy")
    assert row_of(sim, post(sim, body()).json()["uuid"])["status"] == STATUS_BUSY
    sim.set_fate(status="not_answered", duration_company=7)
    row = row_of(sim, post(sim, body()).json()["uuid"])
    assert (row["status"], row["duration_company"], row["duration_customer"]) == (STATUS_NO_ANSWER, "7", "0")
    with pytest.raises(ValueError, match="unknown name"):
        sim.queue_fates(POPUP, "voicemail")
    with pytest.raises(ValueError, match="popup UUID"):
        sim.queue_fates("not-a-popup", "busy")
    assert sim.queued_fates() == {}


@pytest.mark.parametrize(
    "fate",
    [
        {"status": STATUS_RINGING},
        {"status": STATUS_QUEUED},
        {"status": "Abandonada"},
        {"status": ""},
        {"ring_after": 30, "settle_after": 10},
        {"ring_after": -1},
        {"settle_after": "10"},
        {"duration_customer": -5},
        {"duration_company": 2.5},
        {"retry": True},
    ],
)
def test_invalid_fates_are_refused(sim: Simulator, fate: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="fate"):
        sim.set_fate(**fate)
    with pytest.raises(ValueError, match="fate: number"):
        sim.set_fate("12")


def test_call_at_and_dates_are_the_platforms_chile_time(sim: Simulator) -> None:
    before = dt.datetime.now(SANTIAGO).replace(microsecond=0)
    row = row_of(sim, post(sim, body()).json()["uuid"])
    after = dt.datetime.now(SANTIAGO)
    assert CALL_AT.fullmatch(row["call_at"])
    call_at = dt.datetime.strptime(row["call_at"], "%Y/%m/%d %H:%M:%S %z")
    assert before <= call_at <= after
    assert call_at.utcoffset() == after.utcoffset()  # -0300 in summer, -0400 in winter
    assert sim.today() == after.date()
    assert len(list_calls(sim, date=after.date().isoformat())) == 1


def test_the_clock_moves_call_at_and_the_listed_day(sim: Simulator) -> None:
    first = post(sim, body()).json()["uuid"]
    first_day = sim.today()
    sim.advance_clock(2 * 86400)
    assert sim.today() == first_day + dt.timedelta(days=2)
    assert sim.clock()["offset"] == 2 * 86400
    second = post(sim, body()).json()["uuid"]
    assert [r["uuid"] for r in list_calls(sim)] == [second]  # without a date: the simulator's today
    assert [r["uuid"] for r in list_calls(sim, date=first_day.isoformat())] == [first]
    call_at = dt.datetime.strptime(row_of(sim, second)["call_at"], "%Y/%m/%d %H:%M:%S %z")
    assert abs(call_at - sim.now()) < dt.timedelta(seconds=5)
    assert abs(sim.now() - dt.datetime.now(dt.UTC) - dt.timedelta(days=2)) < dt.timedelta(seconds=5)
    received = dt.datetime.fromisoformat(sim.calls()[1]["received_at"])
    assert received.date() >= (dt.datetime.now(dt.UTC) + dt.timedelta(days=2)).astimezone().date()
    with pytest.raises(ValueError, match="clock"):
        sim.advance_clock(-1)
    sim.reset()
    assert sim.clock()["offset"] == 0


# ---- /calls/list down, independently of placing calls --------------------------------------------


def test_the_listing_is_down_for_an_hour_then_back_while_calls_are_placed(sim: Simulator) -> None:
    call_uuid = post(sim, body()).json()["uuid"]
    sim.set_list_down("http500_html", seconds=3600)
    down = requests.get(sim.list_url, headers={"security-token": TOKEN}, timeout=TIMEOUT)
    assert down.status_code == 500
    assert down.headers["Content-Type"].startswith("text/html")
    # Placing calls is not affected, and injected place-call faults are not consumed by the listing.
    sim.inject({"kind": "error", "code": 3})
    requests.get(sim.list_url, headers={"security-token": TOKEN}, timeout=TIMEOUT)
    assert post(sim, body()).json() == error(3)
    assert HEX32.fullmatch(post(sim, body()).json()["uuid"])
    sim.advance_clock(3599)
    assert requests.get(sim.list_url, headers={"security-token": TOKEN}, timeout=TIMEOUT).status_code == 500
    sim.advance_clock(1)
    assert row_of(sim, call_uuid)["status"] == STATUS_CONNECTED


def test_list_down_kinds_and_back_up(sim: Simulator) -> None:
    get = lambda: requests.get(sim.list_url, headers={"security-token": TOKEN}, timeout=TIMEOUT)  # noqa: E731
    sim.set_list_down("reset")
    with pytest.raises(requests.ConnectionError):
        get()
    sim.set_list_down("html_200")
    portal = get()
    assert (portal.status_code, portal.headers["Content-Type"].split(";")[0]) == (200, "text/html")
    sim.set_list_down("malformed_json")
    with pytest.raises(requests.JSONDecodeError):
        get().json()
    sim.advance_clock(30 * 86400)  # down without seconds: until set_list_up()
    with pytest.raises(requests.JSONDecodeError):
        get().json()
    sim.set_list_up()
    assert list_calls(sim) == []
    with pytest.raises(ValueError, match="list_down"):
        sim.set_list_down("slow")
    with pytest.raises(ValueError, match="list_down"):
        sim.set_list_down("reset", seconds=0)


def test_list_reads_are_counted_per_popup_and_date(sim: Simulator) -> None:
    today = sim.today().isoformat()
    list_calls(sim, popup_uuid=POPUP.upper(), date="2026-11-30")
    list_calls(sim, popup_uuid=POPUP, date="2026-11-30")
    list_calls(sim, popup_uuid=OTHER_POPUP)
    list_calls(sim)
    list_calls(sim, token="wrong", popup_uuid=OTHER_POPUP)  # refused reads count too
    sim.set_list_down("http500_html")
    requests.get(sim.list_url, params={"popup_uuid": POPUP, "date": "2026-11-30"}, timeout=TIMEOUT)
    assert sim.list_reads() == [
        {"popup_uuid": POPUP, "date": "2026-11-30", "count": 3},
        {"popup_uuid": OTHER_POPUP, "date": today, "count": 2},
        {"popup_uuid": None, "date": today, "count": 1},
    ]
    post(sim, body())
    assert sum(r["count"] for r in sim.list_reads()) == 6  # placing calls is not a read
    sim.reset_list_reads()
    assert sim.list_reads() == []
    sim.set_list_up()
    list_calls(sim, popup_uuid=POPUP)
    assert sim.list_reads() == [{"popup_uuid": POPUP, "date": today, "count": 1}]
    sim.reset()
    assert sim.list_reads() == []


# ---- faults ----------------------------------------------------------------------------------------


def only_call(sim: Simulator) -> dict[str, Any]:
    [call] = sim.wait_for_calls(1)
    return call


def test_fault_reset(sim: Simulator) -> None:
    sim.inject({"kind": "reset"})
    with pytest.raises(requests.ConnectionError):
        post(sim, body())
    call = only_call(sim)
    assert (call["fault"], call["outcome"], call["uuid"]) == ("reset", "fault", None)
    assert call["payload"] == body()  # the request was read before the reset
    assert sim.placed() == []


def test_fault_reset_mid_answer(sim: Simulator) -> None:
    sim.inject({"kind": "reset_mid_answer"})
    with pytest.raises((requests.exceptions.ChunkedEncodingError, requests.ConnectionError)):
        post(sim, body())
    assert only_call(sim)["fault"] == "reset_mid_answer"
    assert sim.placed() == []


def test_fault_reset_mid_answer_delivers_the_headers_first(sim: Simulator) -> None:
    sim.inject({"kind": "reset_mid_answer"})
    answer = requests.post(sim.api_url, json=body(), stream=True, timeout=TIMEOUT)
    assert answer.status_code == 200
    with pytest.raises((requests.exceptions.ChunkedEncodingError, requests.ConnectionError)):
        _ = answer.content


def test_fault_http500_html(sim: Simulator) -> None:
    sim.inject({"kind": "http500_html"})
    answer = post(sim, body())
    assert answer.status_code == 500
    assert answer.headers["Content-Type"].startswith("text/html")
    assert "<html>" in answer.text
    with pytest.raises(requests.JSONDecodeError):
        answer.json()
    assert only_call(sim)["outcome"] == "fault"
    assert sim.placed() == []


def test_fault_html_200(sim: Simulator) -> None:
    sim.inject({"kind": "html_200"})
    answer = post(sim, body())
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("text/html")
    assert "<html>" in answer.text
    assert sim.placed() == []


def test_fault_malformed_json(sim: Simulator) -> None:
    sim.inject({"kind": "malformed_json"})
    answer = post(sim, body())
    assert answer.status_code == 200
    assert answer.headers["Content-Type"] == "application/json"
    with pytest.raises(requests.JSONDecodeError):
        answer.json()
    # The answer FormCall gave, cut in its middle: the call itself was placed, its uuid lost with the rest.
    (call,) = sim.placed()
    whole = json.dumps({"success": True, "uuid": call["uuid"]}).encode()
    assert answer.content == whole[: len(whole) // 2]


@pytest.mark.parametrize("code", [1, 2, 3, 4, 5, 6, 7, 8])
def test_fault_error_answers_any_code_without_placing(sim: Simulator, code: int) -> None:
    sim.inject({"kind": "error", "code": code})
    assert post(sim, body()).json() == error(code)
    call = only_call(sim)
    assert (call["fault"], call["outcome"], call["error_code"]) == ("error", "error", code)
    assert sim.placed() == []


def test_fault_slow_outlasts_a_short_timeout_but_the_call_still_happens(sim: Simulator) -> None:
    sim.inject({"kind": "slow", "seconds": 1.0})
    # A read timeout: no byte of the answer came in 0.3 s (no clock needed to show it).
    with pytest.raises(requests.exceptions.ReadTimeout):
        post(sim, body(), timeout=(2, 0.3))
    call = only_call(sim)  # waits for the slow handler to finish
    assert (call["fault"], call["outcome"]) == ("slow", "placed")
    assert len(sim.placed()) == 1


def test_fault_slow_answers_normally_when_waited_for(sim: Simulator) -> None:
    sim.inject({"kind": "slow", "seconds": 0.3})
    started = time.monotonic()
    answer = post(sim, body(phonenumber="1"))
    assert time.monotonic() - started >= 0.3
    assert answer.json() == error(1)  # the normal flow, validation included


def test_fault_drip_defeats_a_per_read_timeout(sim: Simulator) -> None:
    sim.inject({"kind": "drip", "seconds": 1.0})
    started = time.monotonic()
    answer = post(sim, body(), timeout=(2, 0.3))
    assert time.monotonic() - started >= 0.9
    assert answer.json() == error(3)
    assert only_call(sim)["fault"] == "drip"
    assert sim.placed() == []


def test_fault_placed_then_reset_places_a_call_whose_answer_is_lost(sim: Simulator) -> None:
    sim.inject({"kind": "placed_then_reset"})
    with pytest.raises(requests.ConnectionError):
        post(sim, body())
    [call] = sim.placed()
    assert call["fault"] == "placed_then_reset"
    assert HEX32.fullmatch(call["uuid"])
    assert call["response"] == {"success": True, "uuid": call["uuid"]}
    assert [r["uuid"] for r in list_calls(sim)] == [call["uuid"]]


def test_faults_are_consumed_in_order_one_per_request_on_a_kept_alive_session(sim: Simulator) -> None:
    sim.inject({"kind": "http500_html"}, {"kind": "html_200"}, {"kind": "error", "code": 5}, {"kind": "malformed_json"})
    with requests.Session() as session:
        statuses = [session.post(sim.api_url, json=body(), timeout=TIMEOUT) for _ in range(5)]
    assert [(a.status_code, a.headers["Content-Type"].split(";")[0]) for a in statuses] == [
        (500, "text/html"),
        (200, "text/html"),
        (200, "application/json"),
        (200, "application/json"),
        (200, "application/json"),
    ]
    assert statuses[2].json() == error(5)
    assert statuses[4].json()["success"] is True
    assert [c["fault"] for c in sim.calls()] == ["http500_html", "html_200", "error", "malformed_json", None]


@pytest.mark.parametrize(
    "fault",
    [
        {"kind": "explode"},
        {},
        {"kind": "error", "code": 9},
        {"kind": "slow", "seconds": -1},
        {"kind": "slow", "seconds": "1"},
    ],
)
def test_invalid_faults_are_refused(sim: Simulator, fault: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="fault"):
        sim.inject(fault)


def test_fault_rate_is_random_but_replayable_with_a_seed(sim: Simulator) -> None:
    def run() -> list[str | None]:
        sim.reset()
        sim.set_fault_rate(0.5, ["error", {"kind": "html_200"}], seed=7)
        for _ in range(30):
            post(sim, body())
        return [c["fault"] for c in sim.calls()]

    first = run()
    assert first == run()
    assert 5 < first.count(None) < 25
    assert {"error", "html_200"} <= set(first)
    assert len(sim.placed()) == first.count(None)


def test_injected_faults_come_before_the_fault_rate(sim: Simulator) -> None:
    sim.set_fault_rate(1.0, [{"kind": "error", "code": 3}])
    sim.inject({"kind": "error", "code": 5})
    assert post(sim, body()).json() == error(5)
    assert post(sim, body()).json() == error(3)
    sim.set_fault_rate(0, [])
    assert post(sim, body()).json()["success"] is True


def test_stop_cuts_a_slow_fault_short() -> None:
    sim = Simulator(quiet=True).start()
    sim.inject({"kind": "slow", "seconds": 30})
    with pytest.raises(requests.exceptions.ReadTimeout):
        post(sim, body(), timeout=(2, 0.2))
    started = time.monotonic()
    sim.stop()
    assert time.monotonic() - started < 15  # not the fault's 30 s, with room for a busy machine
    assert sim.placed() == []


# ---- HTTP control endpoints, other paths, CLI ------------------------------------------------------


def control(sim: Simulator, action: str, value: Any = None) -> requests.Response:
    return requests.post(f"{sim.url}/_sim/{action}", json=value, timeout=TIMEOUT)


def test_control_endpoints(sim: Simulator) -> None:
    assert control(sim, "tokens", ["http-token"]).json() == {"ok": True}
    assert post(sim, body()).json() == error(8)
    assert control(sim, "popup", {"uuid": POPUP, "in_service_hours": False, "keep_pending": True}).status_code == 200
    assert post(sim, body(security_token="http-token")).json() == {"success": True, "pending": True}
    assert control(sim, "faults", [{"kind": "error", "code": 3}, {"kind": "reset"}]).status_code == 200
    assert post(sim, body(security_token="http-token")).json() == error(3)
    with pytest.raises(requests.ConnectionError):
        post(sim, body(security_token="http-token"))
    assert control(sim, "fault_rate", {"rate": 1.0, "kinds": ["html_200"], "seed": 1}).status_code == 200
    assert post(sim, body()).headers["Content-Type"].startswith("text/html")

    calls = requests.get(f"{sim.url}/_sim/calls", timeout=TIMEOUT).json()
    assert calls == sim.calls()
    assert [(c["outcome"], c["fault"]) for c in calls] == [
        ("error", None),
        ("pending", None),
        ("error", "error"),
        ("fault", "reset"),
        ("fault", "html_200"),
    ]
    assert calls[1]["payload"]["security_token"] == "http-token"

    assert control(sim, "reset").json() == {"ok": True}
    assert requests.get(f"{sim.url}/_sim/calls", timeout=TIMEOUT).json() == []
    assert post(sim, body()).json()["success"] is True


def test_control_endpoints_for_call_lives_the_listing_and_the_clock(sim: Simulator) -> None:
    assert control(sim, "fate", {"status": STATUS_BUSY, "ring_after": 5, "settle_after": 20}).json() == {"ok": True}
    assert control(sim, "fate", {"number": "56974766123", "settle_after": None}).status_code == 200
    busy = post(sim, body()).json()["uuid"]
    ringing = post(sim, body(phonenumber="74766123")).json()["uuid"]
    assert row_of(sim, busy)["status"] == STATUS_QUEUED
    assert control(sim, "clock", {"advance": 20}).status_code == 200
    clock = requests.get(f"{sim.url}/_sim/clock", timeout=TIMEOUT).json()
    assert clock["offset"] == 20
    assert abs(dt.datetime.fromisoformat(clock["now"]) - sim.now()) < dt.timedelta(seconds=5)
    assert (row_of(sim, busy)["status"], row_of(sim, ringing)["status"]) == (STATUS_BUSY, STATUS_RINGING)
    assert control(sim, "fate", {"uuid": ringing, "status": STATUS_FAILED}).status_code == 200
    assert row_of(sim, ringing)["status"] == STATUS_FAILED
    assert requests.delete(f"{sim.url}/_sim/fate", timeout=TIMEOUT).json() == {"ok": True}
    assert row_of(sim, post(sim, body()).json()["uuid"])["status"] == STATUS_CONNECTED

    assert control(sim, "list_down", {"kind": "http500_html", "seconds": 60}).status_code == 200
    assert requests.get(sim.list_url, headers={"security-token": TOKEN}, timeout=TIMEOUT).status_code == 500
    assert control(sim, "list_up").status_code == 200
    assert len(list_calls(sim)) == 3
    assert control(sim, "list_down", None).status_code == 200  # the default: HTTP 500 until list_up
    assert requests.get(sim.list_url, headers={"security-token": TOKEN}, timeout=TIMEOUT).status_code == 500
    control(sim, "list_up")

    queued = {"popup_uuid": POPUP, "fates": ["busy", {"status": "connected", "duration_customer": 40}, "busy"]}
    assert control(sim, "fates", queued).json() == {"ok": True}
    shown = requests.get(f"{sim.url}/_sim/fates", timeout=TIMEOUT).json()
    assert shown == sim.queued_fates()
    assert [f["status"] for f in shown[POPUP]] == [STATUS_BUSY, STATUS_CONNECTED, STATUS_BUSY]
    assert row_of(sim, post(sim, body()).json()["uuid"])["status"] == STATUS_BUSY
    connected = row_of(sim, post(sim, body()).json()["uuid"])
    assert (connected["status"], connected["duration_customer"]) == (STATUS_CONNECTED, "40")
    assert requests.delete(f"{sim.url}/_sim/fates", timeout=TIMEOUT).json() == {"ok": True}
    assert requests.get(f"{sim.url}/_sim/fates", timeout=TIMEOUT).json() == {}
    assert row_of(sim, post(sim, body()).json()["uuid"])["status"] == STATUS_CONNECTED

    reads = requests.get(f"{sim.url}/_sim/list_reads", timeout=TIMEOUT).json()
    assert reads == sim.list_reads()
    assert sum(r["count"] for r in reads) > 0
    assert requests.delete(f"{sim.url}/_sim/list_reads", timeout=TIMEOUT).json() == {"ok": True}
    assert requests.get(f"{sim.url}/_sim/list_reads", timeout=TIMEOUT).json() == []
    assert requests.put(f"{sim.url}/_sim/list_reads", timeout=TIMEOUT).status_code == 405
    assert requests.get(f"{sim.url}/_sim/fate", timeout=TIMEOUT).status_code == 405

    assert control(sim, "reset").json() == {"ok": True}
    assert requests.get(f"{sim.url}/_sim/clock", timeout=TIMEOUT).json()["offset"] == 0


@pytest.mark.parametrize(
    ("action", "value"),
    [
        ("faults", [{"kind": "explode"}]),
        ("faults", [42]),
        ("tokens", "dev-token"),
        ("tokens", [""]),
        ("popup", {"uuid": "not-a-uuid"}),
        ("popup", {"uuid": POPUP, "exists": "no"}),
        ("fault_rate", {"rate": 2, "kinds": ["reset"]}),
        ("fate", {"status": "Abandonada"}),
        ("fate", {"number": "56956311283", "settle_after": -1}),
        ("fate", {"uuid": "0" * 32}),
        ("fate", {"number": 56956311283}),
        ("fate", {"colour": "red"}),
        ("fate", ["SIM-Ocupada"]),
        ("fates", {"popup_uuid": POPUP, "fates": ["voicemail"]}),
        ("fates", {"popup_uuid": "not-a-uuid", "fates": ["busy"]}),
        ("fates", {"popup_uuid": POPUP, "fates": "busy"}),
        ("fates", {"popup": POPUP, "fates": ["busy"]}),
        ("fates", ["busy"]),
        ("rows", {"rich": "yes"}),
        ("rows", {"customer": True}),
        ("rows", None),
        ("list_down", {"kind": "slow"}),
        ("list_down", {"kind": "reset", "seconds": "60"}),
        ("list_down", {"kind": "reset", "for": 60}),
        ("clock", {"advance": -60}),
        ("clock", {"offset": 60}),
        ("clock", None),
    ],
)
def test_control_endpoints_refuse_bad_input(sim: Simulator, action: str, value: Any) -> None:
    answer = control(sim, action, value)
    assert answer.status_code == 400
    assert answer.json()["ok"] is False
    assert answer.json()["error"]
    # Refused whole: nothing of it applied.
    assert (sim.queued_fates(), sim.rows()) == ({}, {"rich": False})


def test_unknown_paths_and_methods_get_html_errors(sim: Simulator) -> None:
    assert requests.get(sim.url + "/nope", timeout=TIMEOUT).status_code == 404
    wrong = requests.get(sim.api_url, timeout=TIMEOUT)
    assert wrong.status_code == 405
    assert wrong.headers["Content-Type"].startswith("text/html")
    assert requests.post(sim.url + "/calls/list", timeout=TIMEOUT).status_code == 405
    assert requests.get(sim.url + "/_sim/nope", timeout=TIMEOUT).status_code == 404
    assert sim.calls() == []


def test_binds_loopback_only() -> None:
    for host in ("0.0.0.0", "192.168.1.10", "example.com", "::1"):
        with pytest.raises(ValueError, match="127"):
            Simulator(host=host)
    with Simulator(host="localhost", quiet=True) as sim:
        assert sim.url.startswith("http://127.0.0.1:")
        assert sim.api_url == sim.url + "/calls/manage/api"


def test_access_log_never_shows_the_token(capfd: pytest.CaptureFixture[str]) -> None:
    secret = "s3cr3t-token-value"
    with Simulator(tokens=(secret,)) as sim:
        post(sim, body(security_token=secret))
        post(sim, body(security_token=secret + "x"))
        sim.inject({"kind": "reset"})
        with pytest.raises(requests.ConnectionError):
            post(sim, body(security_token=secret))
        list_calls(sim, token=secret)
    out, err = capfd.readouterr()
    assert secret not in out + err
    assert "POST /calls/manage/api" in err
    assert "placed" in err
    assert "error 8" in err


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "env", "rich"),
    [([], {}, False), (["--rich-rows"], {}, True), ([], {RICH_ROWS_ENV: "1"}, True)],
    ids=["documented", "flag", "env"],
)
def test_cli_serves_until_interrupted(args: list[str], env: dict[str, str], rich: bool) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "formcall_webhook.simulator", "--port", "0", "--token", "cli-token", "--quiet", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **env},
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        match = re.search(r"(http://127\.0\.0\.1:\d+)/calls/manage/api", line)
        assert match, line
        assert "cli-token" not in line
        assert ("rich rows" in line, "documented rows" in line) == (rich, not rich)
        base = match[1]
        assert requests.post(base + "/calls/manage/api", json=body(security_token="cli-token"), timeout=30).json()[
            "success"
        ]
        assert requests.post(base + "/calls/manage/api", json=body(), timeout=30).json() == error(8)
        [row] = requests.get(base + "/calls/list", headers={"security-token": "cli-token"}, timeout=30).json()
        assert ("call_number_customer" in row) is rich
        process.send_signal(signal.SIGINT)
        # A generous deadline: a busy machine may take seconds to run the interpreter's exit.
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


# ---- the Secret Manager fake, read by the real client ----------------------------------------------

SECRET = "projects/acme/secrets/formcall-token"


@pytest.fixture(scope="module")
def shared_sm() -> Iterator[FakeSecretManager]:
    with FakeSecretManager() as sm:
        yield sm


@pytest.fixture
def sm(shared_sm: FakeSecretManager) -> FakeSecretManager:
    shared_sm.reset()
    return shared_sm


@pytest.fixture(scope="module")
def sm_client(shared_sm: FakeSecretManager) -> Any:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import secretmanager

    return secretmanager.SecretManagerServiceClient(
        credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
        transport="rest",
        client_options={"api_endpoint": shared_sm.endpoint},
    )


def test_crc32c_matches_the_standard_check_value() -> None:
    assert crc32c(b"123456789") == 0xE3069283


def test_secret_manager_fake_serves_versions(sm: FakeSecretManager, sm_client: Any) -> None:
    assert sm.set(SECRET, "token-1") == SECRET + "/versions/1"
    answer = sm_client.access_secret_version(name=SECRET + "/versions/latest")
    assert answer.name == SECRET + "/versions/1"
    assert answer.payload.data == b"token-1"
    assert answer.payload.data_crc32c == crc32c(b"token-1")

    sm.set(SECRET + "/versions/latest", b"token-2\n")
    assert sm_client.access_secret_version(name=SECRET + "/versions/latest").payload.data == b"token-2\n"
    assert sm_client.access_secret_version(name=SECRET + "/versions/1").payload.data == b"token-1"
    assert sm_client.access_secret_version(name=SECRET + "/versions/2").name == SECRET + "/versions/2"

    assert sm.access_count(SECRET) == 4
    assert sm.access_count(SECRET + "/versions/latest") == 2
    assert sm.access_count(SECRET + "/versions/1") == 1
    request = sm.requests()[0]
    assert (request["method"], request["path"]) == ("GET", f"/v1/{SECRET}/versions/latest:access")


def test_secret_manager_fake_supports_regional_secrets(sm: FakeSecretManager, sm_client: Any) -> None:
    name = "projects/acme/locations/southamerica-west1/secrets/token"
    sm.set(name, "regional")
    assert sm_client.access_secret_version(name=name + "/versions/latest").payload.data == b"regional"


def test_secret_manager_fake_not_found(sm: FakeSecretManager, sm_client: Any) -> None:
    from google.api_core import exceptions

    with pytest.raises(exceptions.NotFound, match="not found"):
        sm_client.access_secret_version(name="projects/acme/secrets/missing/versions/latest")
    sm.set(SECRET, "token-1")
    with pytest.raises(exceptions.NotFound, match="Secret Version"):
        sm_client.access_secret_version(name=SECRET + "/versions/7")
    sm.delete(SECRET)
    with pytest.raises(exceptions.NotFound):
        sm_client.access_secret_version(name=SECRET + "/versions/1")


def test_secret_manager_fake_injected_failures(sm: FakeSecretManager, sm_client: Any) -> None:
    from google.api_core import exceptions

    sm.set(SECRET, "token-1")
    latest = SECRET + "/versions/latest"
    sm.fail_next(403)
    # Over REST a 403 becomes Forbidden, the parent class of the gRPC transport's PermissionDenied.
    with pytest.raises(exceptions.Forbidden):
        sm_client.access_secret_version(name=latest)
    sm.fail_next(503)
    with pytest.raises(exceptions.ServiceUnavailable):
        sm_client.access_secret_version(name=latest, retry=None)
    sm.fail_next(404, message="Secret [x] not found or has no versions.")
    with pytest.raises(exceptions.NotFound):
        sm_client.access_secret_version(name=latest)
    sm.set_unreachable(True)
    # A reset is not wrapped by google.api_core: the REST transport lets requests' error through.
    with pytest.raises(requests.ConnectionError):
        sm_client.access_secret_version(name=latest, retry=None)
    sm.set_unreachable(False)
    assert sm_client.access_secret_version(name=latest).payload.data == b"token-1"
    assert sm.access_count(SECRET) == 5


def test_secret_manager_fake_answers_errors_in_googles_json_shape(sm: FakeSecretManager) -> None:
    answer = requests.get(f"{sm.endpoint}/v1/projects/p/secrets/s/versions/latest:access", timeout=TIMEOUT)
    assert answer.status_code == 404
    assert answer.json() == {
        "error": {
            "code": 404,
            "message": "Secret [projects/p/secrets/s] not found or has no versions.",
            "status": "NOT_FOUND",
        }
    }
    sm.fail_next(503)
    assert requests.get(f"{sm.endpoint}/v1/x", timeout=TIMEOUT).json()["error"]["status"] == "UNAVAILABLE"
