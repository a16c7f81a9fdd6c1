"""Hello world that checks the submitted number with phonenumbers, as the webhook must: the cold-start floor
of any function that validates numbers with it (its import, and the region's metadata and patterns)."""

from __future__ import annotations

import json

import flask
import functions_framework
import phonenumbers


@functions_framework.http
def hello_phones(request: flask.Request) -> str:
    typed = json.loads(request.get_data())["telefono"]
    number = phonenumbers.parse(typed, "CL")
    kind = phonenumbers.number_type(number)
    grouped = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
    return json.dumps({"valid": kind != phonenumbers.PhoneNumberType.UNKNOWN, "groups": len(grouped.split())})
