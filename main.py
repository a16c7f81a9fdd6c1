"""Cloud Functions entry point: adapts the Flask request to the pipeline in formcall_webhook.app."""

from __future__ import annotations

import flask
import functions_framework

from formcall_webhook.app import App, Request, read_stream
from formcall_webhook.senders import raw_url

# One per instance: the config, secret cache and FormCall connection pool outlive requests.
app = App()
app.warm()


@functions_framework.http
def formcall_webhook(request: flask.Request) -> flask.Response:
    answer = app.handle(
        Request(
            method=request.method,
            path=request.path,
            headers={name.lower(): value for name, value in request.headers.items()},
            query_string=request.query_string,
            read_body=lambda limit: read_stream(request.stream, limit),
            content_length=request.content_length,
            remote_addr=request.remote_addr or "",
            url=raw_url(request.environ),
        )
    )
    return flask.Response(answer.body, status=answer.status, headers=answer.headers)
