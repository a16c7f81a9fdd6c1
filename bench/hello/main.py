"""Hello world: the cold-start floor of a functions-framework function on this machine."""

from __future__ import annotations

import flask
import functions_framework


@functions_framework.http
def hello(request: flask.Request) -> str:
    return "Hello, world!"
