from __future__ import annotations

import phonenumbers
import pytest

from formcall_webhook import phones
from formcall_webhook.errors import InvalidPhone, NumberTypeNotAllowed, PhoneMissing, RegionNotAllowed

CL = frozenset({"CL"})
TYPES = phones.DEFAULT_NUMBER_TYPES


def split(typed: str, region: str = "CL", allowed: frozenset[str] = CL) -> tuple[str, str, str]:
    lead = phones.normalize(typed, region, allowed, TYPES)
    return lead.country_code, lead.areacode, lead.phonenumber


@pytest.mark.parametrize(
    "typed",
    [
        "+56 9 6123 4567",
        "+56961234567",
        "9 6123 4567",
        "961234567",
        "(+56) 9-6123.4567",
        "56 9 6123 4567",
        "56961234567",
        "0056 9 6123 4567",
        "09 6123 4567",
        "+56 09 6123 4567",
        "  +56 (9) 6123-4567  ",
    ],
)
def test_what_people_type_is_forgiven(typed: str) -> None:
    assert split(typed) == ("56", "9", "61234567")


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("+56 2 2123 4567", ("56", "2", "21234567")),
        ("+56 32 212 3456", ("56", "32", "2123456")),
        ("2 2123 4567", ("56", "2", "21234567")),
        ("+56 9 5631 1283", ("56", "9", "56311283")),
        ("+56 9 7476 6123", ("56", "9", "74766123")),
    ],
)
def test_split_by_national_destination_code(typed: str, expected: tuple[str, str, str]) -> None:
    assert split(typed) == expected


def test_other_regions_parse_with_their_own_region() -> None:
    assert split("(201) 555-0123", "US", frozenset({"US"})) == ("1", "201", "5550123")
    assert split("+39 06 1234 5678", "CL", frozenset({"IT"})) == ("39", "06", "12345678")


def test_e164_and_mask() -> None:
    lead = phones.normalize("9 6123 4567", "CL", CL, TYPES)
    assert lead.e164 == "+56961234567"
    assert lead.masked == "+56*****567"
    assert lead.region == "CL"


@pytest.mark.parametrize("typed", ["", "   "])
def test_missing(typed: str) -> None:
    with pytest.raises(PhoneMissing):
        phones.normalize(typed, "CL", CL, TYPES)


@pytest.mark.parametrize(
    "typed", ["123", "abc", "+56 9 6123", "+999 1234 5678", "9" * 70, "+", "00", "+56 1 2345 6789"]
)
def test_invalid(typed: str) -> None:
    with pytest.raises(InvalidPhone):
        phones.normalize(typed, "CL", CL, TYPES)


def test_region_not_allowed() -> None:
    with pytest.raises(RegionNotAllowed) as caught:
        phones.normalize("+54 9 11 2345 6789", "CL", CL, TYPES)
    assert "+54*****789" in (caught.value.reason or "")


def test_premium_rate_never_called_even_when_region_allowed() -> None:
    with pytest.raises(NumberTypeNotAllowed):
        phones.normalize("+1 900 555 0100", "US", frozenset({"US"}), TYPES | {"TOLL_FREE"})


def test_type_must_be_allowed() -> None:
    toll_free = "+1 800 555 0100"
    with pytest.raises(NumberTypeNotAllowed):
        phones.normalize(toll_free, "US", frozenset({"US"}), TYPES)
    assert phones.normalize(toll_free, "US", frozenset({"US"}), TYPES | {"TOLL_FREE"}).areacode == "800"


def test_ndc_length_zero_keeps_whole_number() -> None:
    # Some numbering plans have no national destination code: the whole NSN goes in phonenumber.
    lead = phones.normalize("7 1234 567", "BO", frozenset({"BO"}), TYPES)
    assert (lead.country_code, lead.areacode, lead.phonenumber) == ("591", "", "71234567")


def test_split_matches_phonenumbers_for_every_region_and_type() -> None:
    """Our NDC length (type computed once) equals the library's for every example number it ships."""
    checked = 0
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        for number_type in range(11):
            example = phonenumbers.example_number_for_type(region, number_type)
            if example is None:
                continue
            expected = phonenumbers.length_of_national_destination_code(example)
            assert phones._ndc_length(example, phonenumbers.number_type(example)) == expected, (region, number_type)
            checked += 1
    assert checked > 1000
