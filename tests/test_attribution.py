"""Attribution (spec 10): a lead's utm_* fields, from the submission, else the page's query string, kept
on its record for keep_days whatever keep_fields says."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from formcall_webhook import attribution
from formcall_webhook.app import App, Request, read_stream
from formcall_webhook.simulator import Simulator

POPUP = "e5c98214-d0f6-11e1-8c30-001d09ef4a24"
TOKEN = "attribution-token-41c"
SIMULATOR_TOKENS = (TOKEN,)
PAGE = "https://acme.cl/seguros?utm_source=meta&utm_campaign=page-campaign&gclid=abc"
UTM = {"utm_source": "google", "utm_medium": "cpc", "utm_campaign": "verano-2026", "utm_term": "seguro auto",
       "utm_content": "banner-a"}  # fmt: skip


def test_from_the_fields_else_the_query_else_the_page() -> None:
    assert attribution.extract({**UTM, "gclid": "x", "nombre": "Ana"}, {}, {"referer": PAGE}) == UTM
    assert attribution.extract({"nombre": "Ana"}, {"utm_source": "tiktok"}, {"referer": PAGE}) == {
        "utm_source": "tiktok"}  # fmt: skip
    assert attribution.extract({"utm_source": ""}, {}, {"referer": PAGE}) == {
        "utm_source": "meta", "utm_campaign": "page-campaign"}  # fmt: skip
    # One source only: a click's values are never mixed with another's.
    assert attribution.extract({"utm_campaign": "form"}, {"utm_source": "query"}, {}) == {"utm_campaign": "form"}
    assert attribution.extract({}, {}, {"origin": "https://acme.cl"}) == {}
    assert attribution.extract({}, {}, {"referer": "http://[::1"}) == {}


def test_values_are_cleaned_and_bounded() -> None:
    found = attribution.extract({"UTM_Source": ["", " google\n"], "utm_medium": {"a": 1}, "utm_term": 7,
                                 "utm_campaign": "x" * 500, "utm_content": True}, {}, {})  # fmt: skip
    assert found == {"utm_source": "google", "utm_term": "7", "utm_campaign": "x" * attribution.MAX_LENGTH}


@pytest.mark.parametrize("keep_fields", ["until_done", "keep"])
def test_the_record_keeps_them_whatever_keep_fields_says(
    tmp_path: Path, simulator: Simulator, keep_fields: str
) -> None:
    config = tmp_path / "formcall.toml"
    config.write_text(f'[leads]\nkeep_fields = "{keep_fields}"\n[routes.default]\npopup_uuid = "{POPUP}"\n',
                      encoding="utf-8")  # fmt: skip
    app = App({"FORMCALL_CONFIG": str(config), "FORMCALL_API_URL": simulator.api_url,
               "FORMCALL_SECURITY_TOKEN": TOKEN, "FORMCALL_STORE_URL": "memory://"})  # fmt: skip
    answers = [
        _post(app, {"telefono": "+56 9 6123 4567", "email": "ana@example.cl", **UTM}),
        _post(app, {"telefono": "+56 9 6234 5678"}, referer=PAGE),
        _post(app, {"telefono": "+56 9 6345 6789"}, query=b"utm_source=qr&utm_campaign=feria"),
        _post(app, {"telefono": "+56 9 6456 7890"}),
    ]
    assert all(body.get("uuid") for body in answers), answers
    kept = {r["lead_id"]: r for r in app.store.scan_leads()}
    assert [r["state"] for r in kept.values()] == ["placed"] * 4
    found = [{k: v for k, v in kept[body["lead_id"]].items() if k.startswith("utm_")} for body in answers]
    assert found == [UTM, {"utm_source": "meta", "utm_campaign": "page-campaign"},
                     {"utm_source": "qr", "utm_campaign": "feria"}, {}]  # fmt: skip
    first = kept[answers[0]["lead_id"]]
    # The person's data left (until_done) or stayed (keep); the campaign stays either way.
    assert (first["payload"] is None) == (keep_fields == "until_done")
    assert "gclid" not in json.dumps(list(kept.values()))


def _post(app: App, fields: dict[str, Any], referer: str = "", query: bytes = b"") -> dict[str, Any]:
    raw = json.dumps(fields).encode()
    stream = io.BytesIO(raw)
    headers = {"content-type": "application/json", **({"referer": referer} if referer else {})}
    req = Request("POST", "/", headers, query, lambda n, *_: read_stream(stream, n), len(raw),
                  remote_addr="203.0.113.9")  # fmt: skip
    response = app.handle(req)
    assert response.status == 200, response.body
    answer: dict[str, Any] = json.loads(response.body)
    return answer
