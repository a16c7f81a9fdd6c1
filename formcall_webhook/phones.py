"""Phone numbers as people type them, checked and split the way FormCall wants (spec section 3)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import NamedTuple

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumber, PhoneNumberType

from .errors import InvalidPhone, NumberTypeNotAllowed, PhoneMissing, RegionNotAllowed

DEFAULT_NUMBER_TYPES = frozenset({"MOBILE", "FIXED_LINE", "FIXED_LINE_OR_MOBILE"})
# Never called, whatever a config says: premium-rate numbers are how toll fraud pays.
FORBIDDEN_NUMBER_TYPES = frozenset({"PREMIUM_RATE"})
NUMBER_TYPE_NAMES = frozenset(name for name in vars(PhoneNumberType) if name.isupper() and name not in {"UNKNOWN"})
_TYPE_NAMES = {value: name for name, value in vars(PhoneNumberType).items() if name.isupper()}

_KEEP = re.compile(r"[^\d+]")
_NON_DIGITS = re.compile(r"\D+")
# Longest input worth handing to phonenumbers; the library itself caps at 250.
_MAX_TYPED = 64


class Number(NamedTuple):
    """A normalized number and its FormCall split."""

    e164: str
    country_code: str
    areacode: str
    phonenumber: str
    region: str
    number_type: str

    @property
    def masked(self) -> str:
        return mask(self.e164, self.country_code)

    def __repr__(self) -> str:  # the object's own: a tuple's repr would print the whole number, never logged
        return object.__repr__(self)


def mask(e164: str, country_code: str | None = None) -> str:
    """+56961234567 -> +56*****567: enough to tell leads apart in logs, not to call them."""
    if not e164:
        return ""
    cc = country_code if country_code is not None else _country_code_of(e164)
    return f"+{cc}*****{e164[-3:]}"


def _country_code_of(e164: str) -> str:
    try:
        return str(phonenumbers.parse(e164).country_code)
    except NumberParseException:
        return ""


def _candidates(typed: str, region: str) -> Iterator[PhoneNumber]:
    """Readings of what was typed, most literal first."""
    cleaned = _KEEP.sub("", typed)
    if cleaned.startswith("00"):
        cleaned = "+" + cleaned[2:]
    if not cleaned.strip("+"):
        return
    digits = cleaned.lstrip("+")
    texts = [cleaned] if cleaned.startswith("+") else [cleaned, "+" + digits]
    if not cleaned.startswith("+") and digits.startswith("0"):
        # A leftover trunk 0 ("09 6123 4567") that the region does not use.
        texts.insert(1, digits.lstrip("0"))
    for text in texts:
        try:
            number = phonenumbers.parse(text, region)
        except NumberParseException:
            continue
        yield number
        if number.italian_leading_zero:
            # "+56 09 6123 4567": a trunk 0 written after the country code.
            number = PhoneNumber(country_code=number.country_code, national_number=number.national_number)
            yield number


def _ndc_length(number: PhoneNumber, number_type: int) -> int:
    """phonenumbers.length_of_national_destination_code, given the type we already know (it would
    compute it a second time): the first digit group after the country code in international format,
    two groups for mobiles in countries with a mobile token."""
    if number.extension is not None:
        number = PhoneNumber(country_code=number.country_code, national_number=number.national_number,
                             italian_leading_zero=number.italian_leading_zero,
                             number_of_leading_zeros=number.number_of_leading_zeros)  # fmt: skip
    groups = _NON_DIGITS.split(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL))
    if len(groups) <= 3:
        return 0
    if number_type == PhoneNumberType.MOBILE and phonenumbers.country_mobile_token(number.country_code or 0):
        return len(groups[2]) + len(groups[3])
    return len(groups[2])


def parse(typed: str, region: str) -> tuple[PhoneNumber, int]:
    """The first valid reading of `typed` and its PhoneNumberType, else InvalidPhone / PhoneMissing."""
    typed = typed.strip()
    if not typed:
        raise PhoneMissing("No phone number was found in the submission.")
    if len(typed) > _MAX_TYPED:
        raise InvalidPhone("The phone number is not a valid number.")
    for number in _candidates(typed, region):
        # is_valid_number is number_type != UNKNOWN: one call gives both.
        number_type = phonenumbers.number_type(number)
        if number_type != PhoneNumberType.UNKNOWN:
            return number, number_type
    raise InvalidPhone("The phone number is not a valid number.")


def normalize(
    typed: str,
    region: str,
    allowed_regions: frozenset[str],
    allowed_types: frozenset[str],
) -> Number:
    """Parse, check region and type, and split for FormCall."""
    number, number_type = parse(typed, region)
    number_region = phonenumbers.region_code_for_number(number) or ""
    cc = str(number.country_code)
    nsn = phonenumbers.national_significant_number(number)
    e164 = f"+{cc}{nsn}"  # what format_number(E164) builds, without formatting twice
    if number_region not in allowed_regions:
        raise RegionNotAllowed(
            f"Numbers from {number_region or 'that country'} are not accepted here.",
            reason=f"region {number_region} not in allowed_regions ({mask(e164, cc)})",
        )
    type_name = _TYPE_NAMES.get(number_type, "UNKNOWN")
    if type_name in FORBIDDEN_NUMBER_TYPES or type_name not in allowed_types:
        raise NumberTypeNotAllowed(
            "This kind of phone number is not accepted here.",
            reason=f"number type {type_name} not allowed ({mask(e164, cc)})",
        )
    ndc_length = _ndc_length(number, number_type)
    return Number(
        e164=e164,
        country_code=cc,
        areacode=nsn[:ndc_length],
        phonenumber=nsn[ndc_length:],
        region=number_region,
        number_type=type_name,
    )
