"""The naive baseline: what a function written in ten minutes does with a form post.

It reads the JSON body (and ignores it), posts one fixed FormCall payload with a bare
``requests.post`` (no session, so a new TCP connection per call) and returns FormCall's JSON.
No phone parsing, no mapping, no dedupe, no logging: the floor that the real function is
compared against under the same functions-framework server settings.
"""

from __future__ import annotations

import os
from typing import Any

import flask
import functions_framework
import requests

API_URL = os.environ["FORMCALL_API_URL"]
PAYLOAD: dict[str, Any] = {
    "popup_uuid": os.environ.get("FORMCALL_POPUP_UUID", "e5c98214-d0f6-11e1-8c30-001d09ef4a24"),
    "country_code": "56",
    "areacode": "9",
    "phonenumber": "51234567",
    "security_token": os.environ["FORMCALL_SECURITY_TOKEN"],
    "adicional": {"Nombre": "Ana", "Email": "ana@example.cl"},
}


@functions_framework.http
def baseline(request: flask.Request) -> flask.Response:
    request.get_json(silent=True)
    answer = requests.post(API_URL, json=PAYLOAD, timeout=8)
    return flask.jsonify(answer.json())
