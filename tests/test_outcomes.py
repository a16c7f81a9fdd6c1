"""Call outcomes from /calls/list rows: parsing, settling, the webhook body and the HubSpot note."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from formcall_webhook import outcomes
from formcall_webhook.clients.formcall import FormCallClient, ListUnavailable
from formcall_webhook.outcomes import CallResult, call_at_iso, note_text, outcome_payload, parse_rows, settled
from formcall_webhook.simulator import Simulator

TOKEN = "outcomes-token-7c1"
SIMULATOR_TOKENS = (TOKEN,)
POPUP = "14f1cc88-6ce8-11e9-b8f9-001d09ef4aa0"
# The documentation's own example row.
DOC_ROW: dict[str, Any] = {
    "uuid": "A93460BBF8402E15B9B0AFDDC05D5E8D",
    "status": "Conectada",
    "call_number_company": "56223456789",
    "retry": "3",
    "duration_company": "117",
    "duration_customer": "95",
    "call_at": "2019/04/02 10:05:03 -0300",
    "enqueued": False,
    "popup_uuid": POPUP,
}


def row(**changes: Any) -> dict[str, Any]:
    return {**DOC_ROW, **changes}


def test_the_documented_row() -> None:
    results, skipped = parse_rows([DOC_ROW])
    assert skipped == 0
    assert results == {
        "a93460bbf8402e15b9b0afddc05d5e8d": CallResult(
            uuid="a93460bbf8402e15b9b0afddc05d5e8d",
            call_status="Conectada",
            connected=True,
            successful=True,
            duration_customer=95,
            duration_company=117,
            call_at="2019-04-02T10:05:03-03:00",
        )
    }


@pytest.mark.parametrize(
    ("seconds", "successful"), [("24", False), ("25", True), (24, False), (25, True), ("0", False), ("24.9", False)]
)
def test_successful_from_25_seconds_with_the_customer(seconds: Any, successful: bool) -> None:
    (result,) = parse_rows([row(duration_customer=seconds)])[0].values()
    assert result.successful is successful
    assert result.connected is True


def test_not_connected_and_unknown_statuses_are_kept_as_given() -> None:
    results, _ = parse_rows([row(uuid="b" * 32, status="No contesta", duration_customer="0")])
    result = results["b" * 32]
    assert (result.call_status, result.connected, result.successful) == ("No contesta", False, False)
    assert not outcomes.is_known("No contesta")
    assert outcomes.is_known("Conectada")
    assert frozenset({"Conectada"}) == outcomes.KNOWN_STATUSES


@pytest.mark.parametrize(
    "bad",
    [
        None,
        "text",
        42,
        [],
        {},
        {"uuid": "a" * 32},  # no status
        {"status": "Conectada"},  # no uuid
        {"uuid": 12345, "status": "Conectada"},
        {"uuid": "not a uuid!", "status": "Conectada"},
        {"uuid": "a" * 32, "status": ["Conectada"]},
        {"uuid": "a" * 32, "status": "   "},
    ],
)
def test_malformed_rows_are_skipped_and_counted(bad: Any) -> None:
    results, skipped = parse_rows([bad, DOC_ROW])
    assert list(results) == ["a93460bbf8402e15b9b0afddc05d5e8d"]
    assert skipped == 1


@pytest.mark.parametrize("listing", [None, {"success": False, "error_code": 8}, "[]", 3])
def test_a_listing_that_is_not_a_list_gives_nothing(listing: Any) -> None:
    assert parse_rows(listing) == ({}, 0)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("95", 95),
        (95, 95),
        ("", None),
        (None, None),
        ("-3", None),
        (-3, None),
        (True, None),
        ("1e9", None),
        ("9" * 5000, None),
        (float("nan"), None),
        (float("inf"), None),
        ("٣", None),  # a digit, but not an ASCII one
    ],
)
def test_durations_that_cannot_be_read_are_none(value: Any, expected: int | None) -> None:
    (result,) = parse_rows([row(duration_customer=value, duration_company=value)])[0].values()
    assert result.duration_customer == expected
    assert result.duration_company == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2019/04/02 10:05:03 -0300", "2019-04-02T10:05:03-03:00"),
        (" 2026/12/01 23:59:59 -0400 ", "2026-12-01T23:59:59-04:00"),
        ("2026/01/15 08:00:00 +0000", "2026-01-15T08:00:00+00:00"),
        ("2019-04-02 10:05:03", None),
        ("2019/04/02 10:05:03", None),  # no offset: the moment is unknown
        ("2019/13/02 10:05:03 -0300", None),
        (1554210303, None),
        (None, None),
    ],
)
def test_call_at_in_iso_8601_with_its_offset(value: Any, expected: str | None) -> None:
    assert call_at_iso(value) == expected
    (result,) = parse_rows([row(call_at=value)])[0].values()
    assert result.call_at == expected


def test_a_status_is_cut_and_stripped_of_control_characters() -> None:
    (result,) = parse_rows([row(status="Con\x00ectada\n" + "x" * 200)])[0].values()
    assert "\x00" not in result.call_status
    assert "\n" not in result.call_status
    assert len(result.call_status) == 64


def test_settled_when_two_lookups_agree() -> None:
    first = parse_rows([row(status="En curso", duration_customer="10")])[0]["a93460bbf8402e15b9b0afddc05d5e8d"]
    second = parse_rows([row(duration_customer="95")])[0]["a93460bbf8402e15b9b0afddc05d5e8d"]
    third = parse_rows([row(duration_customer="95")])[0]["a93460bbf8402e15b9b0afddc05d5e8d"]
    assert not settled(None, first)
    assert not settled(first, second)
    assert settled(second, third)
    changed_company_leg = parse_rows([row(duration_company="118")])[0]["a93460bbf8402e15b9b0afddc05d5e8d"]
    assert not settled(third, changed_company_leg)


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40),
        lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=20), children, max_size=8),
        max_leaves=30,
    )
)
def test_parse_rows_never_raises(listing: Any) -> None:
    results, skipped = parse_rows(listing)
    assert skipped + len(results) <= (len(listing) if isinstance(listing, list) else 0)


@given(
    st.lists(
        st.fixed_dictionaries(
            {},
            optional={
                "uuid": st.text(max_size=40) | st.just("c" * 32),
                "status": st.text(max_size=20) | st.just("Conectada"),
                "duration_customer": st.text(max_size=12) | st.integers() | st.floats() | st.none(),
                "duration_company": st.text(max_size=12) | st.integers(),
                "call_at": st.text(max_size=30),
            },
        ),
        max_size=6,
    )
)
def test_rows_with_any_field_values_never_raise(rows: list[dict[str, Any]]) -> None:
    results, skipped = parse_rows(rows)
    readable = [r for r in rows if outcomes.parse_row(r) is not None]
    assert skipped == len(rows) - len(readable)
    assert set(results) == {str(r["uuid"]).strip().lower() for r in readable}
    for result in results.values():
        assert result.successful == (result.duration_customer is not None and result.duration_customer >= 25)


LEAD = {
    "lead_id": "ld_01JDXYZ",
    "route": "hubspot",
    "uuid": "a93460bbf8402e15b9b0afddc05d5e8d",
    "call_status": "Conectada",
    "connected": True,
    "successful": True,
    "duration_customer": 95,
    "duration_company": 117,
    "call_at": "2019-04-02T10:05:03-03:00",
    "received_at": "2019-04-02T13:04:40Z",
    # Fields of the record that must never reach the webhook or the note.
    "phone": "+56961234567",
    "number": "+56*****567",
    "adicional": {"Nombre": "Juan Pérez", "Email": "juan@example.cl"},
    "payload": {"security_token": "never"},
}


def test_outcome_payload_is_exactly_the_spec_body() -> None:
    payload = outcome_payload(LEAD)
    assert payload == {
        "type": "call.outcome",
        "lead_id": "ld_01JDXYZ",
        "route": "hubspot",
        "uuid": "a93460bbf8402e15b9b0afddc05d5e8d",
        "call_number": 1,
        "call_status": "Conectada",
        "connected": True,
        "successful": True,
        "duration_customer": 95,
        "call_at": "2019-04-02T10:05:03-03:00",
        "received_at": "2019-04-02T13:04:40Z",
    }
    assert list(payload) == ["type", *outcomes.PAYLOAD_KEYS]
    json.dumps(payload)


def test_outcome_payload_of_a_sparse_record_keeps_every_key() -> None:
    payload = outcome_payload({"lead_id": "ld_1", "connected": "yes"})
    assert set(payload) == {"type", *outcomes.PAYLOAD_KEYS}
    assert payload["connected"] is False
    assert payload["uuid"] is None


def test_note_of_a_successful_call() -> None:
    text = note_text(LEAD)
    assert text.splitlines() == [
        "Llamada FormCall: Conectada",
        "Resultado: conectada y exitosa (25 s o más con el cliente)",
        "Duración con el cliente: 1 min 35 s (95 s)",
        "Hora de la llamada: 2019-04-02T10:05:03-03:00",
        "FormCall uuid: a93460bbf8402e15b9b0afddc05d5e8d",
        "lead_id: ld_01JDXYZ",
    ]
    for secret in ("961234567", "*****", "Juan", "juan@", "never"):
        assert secret not in text


def test_note_of_short_and_missed_calls() -> None:
    short = note_text({**LEAD, "successful": False, "duration_customer": 12})
    assert "Resultado: conectada, pero menos de 25 s con el cliente" in short
    assert "Duración con el cliente: 12 s" in short
    missed = note_text({"lead_id": "ld_2", "call_status": "No contesta", "connected": False, "successful": False})
    assert missed.splitlines() == ["Llamada FormCall: No contesta", "Resultado: no conectada", "lead_id: ld_2"]


def test_note_from_a_call_result() -> None:
    (result,) = parse_rows([DOC_ROW])[0].values()
    text = note_text(result)
    assert "Llamada FormCall: Conectada" in text
    assert "FormCall uuid: a93460bbf8402e15b9b0afddc05d5e8d" in text


# ---- /calls/list through FormCallClient.list_calls, against the simulator -------------------


def test_list_calls_reads_the_simulators_listing(simulator: Simulator) -> None:
    client = FormCallClient(simulator.api_url, 2)
    placed = client.place_call(
        {"popup_uuid": POPUP, "country_code": "56", "areacode": "9", "phonenumber": "61000071", "security_token": TOKEN}
    )
    day = simulator.placed()[0]["received_at"][:10]
    results, skipped = parse_rows(client.list_calls(TOKEN, POPUP, day))
    assert skipped == 0
    result = results[str(placed.uuid)]
    assert result.connected
    assert result.successful == (result.duration_customer is not None and result.duration_customer >= 25)
    assert result.call_at is not None and result.call_at.startswith(day)
    # Two reads of a finished call agree: the outcome is settled.
    again, _ = parse_rows(client.list_calls(TOKEN, POPUP, day))
    assert settled(result, again[str(placed.uuid)])
    # Another popup's listing does not hold it.
    assert parse_rows(client.list_calls(TOKEN, "f0e1d2c3-0000-4000-8000-000000000001", day)) == ({}, 0)


def test_list_calls_with_a_refused_token_answers_what_formcall_said(simulator: Simulator) -> None:
    answer = FormCallClient(simulator.api_url, 2).list_calls("wrong", POPUP, "2026-12-01")
    assert answer == {"success": False, "error_code": 8, "error_msg": "Invalid Security Token"}
    assert parse_rows(answer) == ({}, 0)


def test_list_calls_unavailable(simulator: Simulator) -> None:
    # Nothing listens on port 9 of loopback on a test machine: refused at once.
    with pytest.raises(ListUnavailable, match="/calls/list failed"):
        FormCallClient("http://127.0.0.1:9/calls/manage/api", 1).list_calls(TOKEN, POPUP, "2026-12-01")
    with pytest.raises(ListUnavailable, match="HTTP 404"):
        FormCallClient(simulator.url + "/nowhere/calls/manage/api", 1).list_calls(TOKEN, POPUP, "2026-12-01")
