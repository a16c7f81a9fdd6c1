"""Cloud Functions entry points: the webhook, and the sweeper Cloud Scheduler calls (spec 8)."""

from __future__ import annotations

import gc
import os
import threading

import flask
import functions_framework

# A pre-fork server's import, as Python's gc docs advise for one: no collection while the package, phonenumbers
# and the config load (every object they make outlives the process), then gc.freeze() before gunicorn forks
# the worker, whose collections then leave those objects, and the memory pages they sit on, alone.
gc.disable()
from formcall_webhook.answers import failure
from formcall_webhook.app import App, Request, read_stream
from formcall_webhook.config import DEFAULT_BODY_TIMEOUT_SECONDS as BODY_TIMEOUT
from formcall_webhook.errors import WebhookError
from formcall_webhook.self_sweep import self_sweep
from formcall_webhook.senders import raw_url

# One per instance: the config, secret cache, store and FormCall connection pool outlive requests.
app = App()
try:
    app.warm()
finally:
    gc.freeze()
    gc.enable()

# The process whose memory:// self-sweep runs: a forked worker starts its own (threads do not survive a fork).
_self_sweep_pid: int | None = None
_self_sweep_lock = threading.Lock()
_pid = os.getpid()


def _forked() -> None:
    global _pid, _self_sweep_lock
    _pid = os.getpid()
    _self_sweep_lock = threading.Lock()  # another thread may have held it at the fork


os.register_at_fork(after_in_child=_forked)


def _ensure_self_sweep() -> None:
    """memory:// keeps leads in this process only, so the process sweeps itself (spec 8). Its thread
    imports the sweeper after its first wait: the first requests of a cold start never wait for it."""
    global _self_sweep_pid
    if _self_sweep_pid == _pid:
        return
    with _self_sweep_lock:
        if _self_sweep_pid != _pid:
            self_sweep(app.runtime)
            _self_sweep_pid = _pid


@functions_framework.http
def formcall_webhook(request: flask.Request) -> flask.Response:
    _ensure_self_sweep()
    answer = app.handle(
        Request(
            method=request.method,
            path=request.path,
            headers={name.lower(): value for name, value in request.headers.items()},
            query_string=request.query_string,
            # With a Content-Length, exactly that much is read (one read, no probe for the end).
            read_body=lambda limit, timeout=BODY_TIMEOUT: read_stream(
                request.stream,
                limit if request.content_length is None else min(limit, request.content_length),
                timeout,
                request.environ.get("gunicorn.socket"),
            ),
            content_length=request.content_length,
            remote_addr=request.remote_addr or "",
            url=raw_url(request.environ),
        )
    )
    # Streamed, so functions-framework skips reading the rest of the body after the answer (its
    # read_request), which would wait on a stalled client for ever or buffer an oversized upload
    # whole; gunicorn drains what is left within its own time and size bounds, or closes.
    headers = dict(answer.headers)
    if answer.status not in (204, 304):
        headers["Content-Length"] = str(len(answer.body))
    return flask.Response(iter([answer.body]), status=answer.status, headers=headers)


@functions_framework.http
def formcall_sweep(request: flask.Request) -> flask.Response:
    """Private: Cloud Scheduler calls it every minute with an OIDC token (Cloud Run checks it)."""
    # Imported on the first call: the webhook's cold start never pays for the sweeper's modules.
    from formcall_webhook.sweep import Sweeper, counts_json

    try:
        counts = Sweeper(app.runtime).run()
    except WebhookError as err:
        answer = failure(err)
        return flask.Response(answer.body, status=answer.status, headers=answer.headers)
    return flask.Response(counts_json(counts), status=200, content_type="application/json")
