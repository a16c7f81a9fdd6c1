"""Cloud Functions entry point: adapts the Flask request to the pipeline in formcall_webhook.app."""

from __future__ import annotations

import flask
import functions_framework

from formcall_webhook.app import App, Request, read_stream
from formcall_webhook.config import DEFAULT_BODY_TIMEOUT_SECONDS as BODY_TIMEOUT

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
            read_body=lambda limit, timeout=BODY_TIMEOUT: read_stream(
                request.stream, limit, timeout, request.environ.get("gunicorn.socket")
            ),
            content_length=request.content_length,
            remote_addr=request.remote_addr or "",
            url=request.url,
        )
    )
    # Streamed, so functions-framework skips reading the rest of the body after the answer (its
    # read_request), which would wait on a stalled client for ever or buffer an oversized upload
    # whole; gunicorn drains what is left within its own time and size bounds, or closes.
    headers = dict(answer.headers)
    if answer.status not in (204, 304):
        headers["Content-Length"] = str(len(answer.body))
    return flask.Response(iter([answer.body]), status=answer.status, headers=headers)
