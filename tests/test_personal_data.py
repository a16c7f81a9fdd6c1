"""Personal data by Chile's law 21.719 (spec 10), with each store: consent, opposition, minimal records,
the person's copy. The `leads` commands run in-process here so memory:// is the function's own store;
tests/test_leads_cli.py runs them as subprocesses against the shared stores."""

from __future__ import annotations

import contextlib
import io
import json
import time
from pathlib import Path
from typing import Any

import pytest

from formcall_webhook.app import App, Request, read_stream
from formcall_webhook.cli import build_parser
from formcall_webhook.cli.context import Context
from formcall_webhook.consent import GIVEN_WORDS
from formcall_webhook.simulator import Simulator
from formcall_webhook.sweep import Sweeper
from tests.harness import forbidden_in_logs

POPUP = "e5c98214-d0f6-11e1-8c30-001d09ef4a24"
TOKEN = "personal-token-4a1"
SIMULATOR_TOKENS = (TOKEN,)
NUMBER = "+56962300001"
WAYS = ("+56 9 6230 0001", "56962300001", "09 6230 0001", "(9) 6230-0001", "+56-9-6230-0001")


def make_app(tmp_path: Path, simulator: Simulator, url: str, *, keep: str = "until_done") -> App:
    path = tmp_path / "f.toml"
    path.write_text(
        "[formcall]\ntimeout_seconds = 2\n"
        f'[leads]\nkeep_fields = "{keep}"\nhash_key = "env:HASH_KEY"\n'
        '[defaults]\nrate_limit = false\n[defaults.retry]\nschedule = ["1s"]\n'
        f"[routes.default]\npopup_uuid = '{POPUP}'\n"
        'consent = { field = "acepto", required = true, text = "v2026-12" }\n'
        f"[routes.open]\npopup_uuid = '{POPUP}'\n"
    )
    return App(
        {
            "FORMCALL_CONFIG": str(path),
            "FORMCALL_API_URL": simulator.api_url,
            "FORMCALL_SECURITY_TOKEN": TOKEN,
            "FORMCALL_STORE_URL": url,
            "HASH_KEY": "personal-hash-key-9",
        }
    )


def post(app: App, body: dict[str, Any], route: str = "", headers: dict[str, str] | None = None) -> tuple[int, Any]:
    raw = json.dumps(body).encode()
    stream = io.BytesIO(raw)
    all_headers = {"content-type": "application/json", **(headers or {})}
    req = Request("POST", f"/{route}", all_headers, b"", lambda n, *_: read_stream(stream, n), len(raw))
    response = app.handle(req)
    return response.status, json.loads(response.body)


def leads(app: App, *argv: str) -> tuple[int, str]:
    """`python -m formcall_webhook leads ...` against the app's own store."""
    ctx = Context(app.environ)
    ctx._runtime = app.runtime
    args = build_parser().parse_args(["leads", *argv])
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = args.run(args, ctx)
    return code, out.getvalue()


def test_consent_missing_given_and_each_word(
    tmp_path: Path, simulator: Simulator, store_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    app = make_app(tmp_path, simulator, store_url)
    for missing in ({}, {"acepto": ""}, {"acepto": "no"}, {"acepto": False}):
        status, body = post(app, {"phone": NUMBER, **missing})
        assert (status, body["error"]) == (422, "consent_missing"), missing
    assert simulator.calls() == []
    assert list(app.store.scan_leads()) == []  # nothing kept
    words = [*sorted(GIVEN_WORDS), "SÍ", "Acepto", "TRUE"]
    for n, word in enumerate(words):
        status, body = post(
            app,
            {"phone": f"+56 9 6231 {n:04d}", "acepto": word, "email": "ana@example.cl"},
            headers={"referer": "https://acme.cl/landing?utm_source=ads&gclid=XYZ#form"},
        )
        assert status == 200, (word, body)
        record = app.store.get_lead(body["lead_id"])
        assert record is not None
        consent = record["consent"]
        assert (consent["given"], consent["field"], consent["text"]) == (True, "acepto", "v2026-12")
        assert consent["origin"] == "https://acme.cl/landing"
        assert consent["at"] == record["received_at"]
    assert post(app, {"phone": "+56 9 6231 9999", "acepto": True})[0] == 200  # a JSON true
    log = capsys.readouterr().out
    assert forbidden_in_logs(log, {"utm_source=ads", "gclid", "ana@example.cl", "+56962310000"}) == []


def test_opt_out_however_written_then_opt_in(tmp_path: Path, simulator: Simulator, store_url: str) -> None:
    app = make_app(tmp_path, simulator, store_url)
    assert leads(app, "opt-out", WAYS[0])[0] == 0
    for way in WAYS:
        for route, extra in (("", {"acepto": "si"}), ("open", {})):
            status, body = post(app, {"phone": way, **extra}, route)
            assert (status, body["error"]) == (422, "opted_out"), (way, route)
    assert simulator.calls() == []
    assert list(app.store.scan_leads()) == []
    # The list holds keyed hashes, never the number.
    assert leads(app, "opt-in", WAYS[3])[0] == 0
    status, body = post(app, {"phone": WAYS[2], "acepto": "si"})
    assert status == 200 and body["uuid"]


def test_opt_out_of_a_scheduled_lead(tmp_path: Path, simulator: Simulator, store_url: str) -> None:
    app = make_app(tmp_path, simulator, store_url)
    simulator.inject({"kind": "error", "code": 3})
    _, body = post(app, {"phone": NUMBER, "acepto": "si"})
    assert body["scheduled"] is True
    assert leads(app, "opt-out", WAYS[1])[0] == 0
    time.sleep(1.1)
    counts = Sweeper(app.runtime).run()
    assert counts["failed"] == 1
    record = app.store.get_lead(body["lead_id"])
    assert record is not None and (record["state"], record["last_error"]) == ("failed", "opted_out")
    assert len(simulator.calls()) == 1  # the first attempt only: nobody rang


def test_fields_gone_once_the_call_is_placed(tmp_path: Path, simulator: Simulator, store_url: str) -> None:
    app = make_app(tmp_path, simulator, store_url)
    _, body = post(app, {"phone": NUMBER, "acepto": "si", "nombre": "Ana Pérez", "email": "ana@example.cl"})
    record = app.store.get_lead(body["lead_id"])
    assert record is not None
    assert record["payload"] is None and record["minimized"] is True
    text = json.dumps(record, ensure_ascii=False)
    assert "Ana" not in text and "ana@example.cl" not in text and "62300001" not in text
    assert (record["phone"], record["uuid"], record["consent"]["given"]) == ("+56*****001", body["uuid"], True)
    # "keep" keeps them for keep_days.
    (tmp_path / "keep").mkdir()
    kept = make_app(tmp_path / "keep", simulator, store_url, keep="keep")
    _, body = post(kept, {"phone": "+56962300002", "acepto": "si", "nombre": "Ana Pérez"})
    record = kept.store.get_lead(body["lead_id"])
    assert record is not None and record["payload"]["adicional"]["Nombre"] == "Ana Pérez"


def test_export_one_number_among_many_then_forget(tmp_path: Path, simulator: Simulator, store_url: str) -> None:
    app = make_app(tmp_path, simulator, store_url, keep="keep")
    simulator.inject({"kind": "error", "code": 1})  # refused for good: a failed record of the number
    assert post(app, {"phone": NUMBER, "nombre": "Ana"}, "open")[0] == 422
    assert post(app, {"phone": WAYS[0], "acepto": "si", "nombre": "Ana"})[0] == 200
    others = [post(app, {"phone": f"+56 9 6232 {n:04d}", "acepto": "si"})[1]["lead_id"] for n in range(4)]
    code, out = leads(app, "export", "--phone", WAYS[4])
    assert code == 0
    exported = json.loads(out)
    assert len(exported) == 2
    assert {r["phone"] for r in exported} == {NUMBER}  # the person's copy shows the number
    assert not set(others) & {r["lead_id"] for r in exported}
    assert leads(app, "opt-out", NUMBER)[0] == 0
    code, out = leads(app, "forget", WAYS[3])
    assert code == 0 and "2" in out
    assert NUMBER not in out
    assert json.loads(leads(app, "export", "--phone", NUMBER)[1]) == []
    assert len(list(app.store.scan_leads())) == 4
    # Only the opt-out entry is left of that number: it still stops calls.
    assert post(app, {"phone": NUMBER, "acepto": "si"})[1]["error"] == "opted_out"
