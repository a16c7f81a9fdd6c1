"""Conversions end to end (spec 12): a lead posted to the function, its call settled by the sweeper on the
simulator, and its events received by loopback fakes of Google's Data Manager API and Meta's Conversions
API that parse them with the official libraries' own models (tests/fakes/ads.py)."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from formcall_webhook.app import App, Request, read_stream
from formcall_webhook.runtime import Runtime
from formcall_webhook.simulator import Simulator
from formcall_webhook.sweep import Sweeper
from tests.clock import TestClock, clock_of
from tests.fakes.ads import META_TOKEN, FakeAds
from tests.test_conversions import service_account_file

POPUP = "e5c98214-d0f6-11e1-8c30-001d09ef4a24"
TOKEN = "conversions-token-12"
SIMULATOR_TOKENS = (TOKEN,)
EMAIL = "Ana.Perez@Example.cl"
CLICKS = {"gclid": "Cj0KCQiA-test_gclid", "fbclid": "IwAR-test_fbclid", "_fbp": "fb.1.1764590000000.1234567890"}
DAY = 86400


@pytest.fixture
def ads() -> Iterator[FakeAds]:
    fake = FakeAds()
    yield fake.start()
    fake.stop()


@pytest.fixture(autouse=True)
def google_adc(tmp_path: Path, ads: FakeAds, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(service_account_file(tmp_path, ads)))


def make_app(tmp_path: Path, simulator: Simulator, ads: FakeAds, *, platforms: str = "both") -> App:
    google = f'google = {{ account = "1234567890", conversion_action = "987654321", api_url = "{ads.url}" }}\n'
    meta = f'meta = {{ pixel_id = "123456789012345", token = "env:META_TOKEN", api_url = "{ads.url}" }}\n'
    path = tmp_path / "f.toml"
    path.write_text(
        "[formcall]\ntimeout_seconds = 2\n"
        '[defaults.retry]\nschedule = ["1s"]\n'
        f"[routes.default]\npopup_uuid = '{POPUP}'\nrate_limit = false\n"
        'consent = { field = "acepto", ads_field = "acepto_publicidad" }\n'
        'outcome = { after = "0s", give_up = "10d" }\n'
        "[routes.default.conversions]\n"
        + (google if platforms in ("both", "google") else "")
        + (meta if platforms in ("both", "meta") else "")
    )
    environ = {
        "FORMCALL_CONFIG": str(path),
        "FORMCALL_API_URL": simulator.api_url,
        "FORMCALL_SECURITY_TOKEN": TOKEN,
        "META_TOKEN": META_TOKEN,
    }
    clock = TestClock(simulator)
    ads.clock = clock.now
    return App(runtime=Runtime(environ, clock=clock.now))


def post(app: App, body: dict[str, Any]) -> dict[str, Any]:
    raw = json.dumps(body).encode()
    stream = io.BytesIO(raw)
    req = Request(
        "POST", "/", {"content-type": "application/json"}, b"", lambda n, *_: read_stream(stream, n), len(raw)
    )
    response = app.handle(req)
    assert response.status == 200, response.body
    answer: dict[str, Any] = json.loads(response.body)
    return answer


def lead_body(phone: str, *, ads_consent: bool = True, **extra: Any) -> dict[str, Any]:
    body = {"phone": phone, "nombre": "Ana Pérez", "email": EMAIL, "acepto": "si", **CLICKS, **extra}
    if ads_consent:
        body["acepto_publicidad"] = "si"
    return body


def settle(app: App, lead_id: str, passes: int = 12) -> dict[str, Any]:
    """Sweep, the clock moved on to each due time, until the lead's outcome work is done."""
    sweeper = Sweeper(app.runtime)
    for _ in range(passes):
        record = app.store.get_lead(lead_id)
        assert record is not None
        if record.get("due_at") is None:
            return record
        clock_of(app).advance_to(record["due_at"] + 0.05)
        sweeper.run()
    record = app.store.get_lead(lead_id)
    assert record is not None
    return record


def raw_data_in(ads: FakeAds, *values: str) -> list[str]:
    """Any of the person's data, as typed or in any plain form, in any body sent to the platforms."""
    bodies = b"\n".join(r.body for r in ads.requests if r.platform != "token").decode()
    return [value for value in values if value.lower() in bodies.lower()]


def test_one_event_per_platform_with_the_uuid_hashed_data_only_and_click_ids_gone(
    tmp_path: Path, simulator: Simulator, ads: FakeAds
) -> None:
    app = make_app(tmp_path, simulator, ads)
    simulator.set_fate("56962000201", status="Conectada", duration_customer=95, duration_company=117)
    answer = post(app, lead_body("+56 9 6200 0201"))
    kept = app.store.get_lead(answer["lead_id"])
    assert kept is not None
    assert kept["consent"]["ads"] is True
    assert kept["clicks"] == {"gclid": CLICKS["gclid"], "fbclid": CLICKS["fbclid"], "fbp": CLICKS["_fbp"]}

    record = settle(app, answer["lead_id"])
    assert record["conversions"] == {"google": "sent", "meta": "sent"}
    assert list(ads.google_events) == [answer["uuid"]]
    assert list(ads.meta_events) == [answer["uuid"]]
    [google] = [r.json for r in ads.of("google")]
    [meta] = [r.json for r in ads.of("meta")]
    event = google["events"][0]
    assert event["transactionId"] == answer["uuid"]
    assert event["adIdentifiers"] == {"gclid": CLICKS["gclid"]}
    assert event["consent"] == {"adUserData": "CONSENT_GRANTED", "adPersonalization": "CONSENT_GRANTED"}
    user = meta["data"][0]["user_data"]
    assert meta["data"][0]["event_id"] == answer["uuid"]
    assert meta["data"][0]["action_source"] == "phone_call"
    assert user["fbc"].startswith("fb.1.") and user["fbc"].endswith(".IwAR-test_fbclid")
    assert user["fbp"] == CLICKS["_fbp"]
    # Hashed data only: no form of the number or the email is in any body.
    assert raw_data_in(ads, "56962000201", "962000201", "6200 0201", EMAIL, "ana.perez@example.cl", "Ana") == []
    # Done: the click ids left the record, and another sweep sends nothing more.
    assert "clicks" not in record or not record["clicks"]
    sent = len(ads.requests)
    Sweeper(app.runtime).run()
    assert len(ads.requests) == sent


def test_none_without_ads_consent_and_no_click_id_kept(tmp_path: Path, simulator: Simulator, ads: FakeAds) -> None:
    app = make_app(tmp_path, simulator, ads)
    simulator.set_fate("56962000202", status="Conectada", duration_customer=95, duration_company=117)
    answer = post(app, lead_body("+56 9 6200 0202", ads_consent=False))
    kept = app.store.get_lead(answer["lead_id"])
    assert kept is not None and kept["consent"]["ads"] is False
    assert not kept.get("clicks")
    assert not re.search(r"IwAR|Cj0KCQ|fb\.1\.", json.dumps(kept))
    record = settle(app, answer["lead_id"])
    assert record["conversions"] == {"google": "skipped: no ads consent", "meta": "skipped: no ads consent"}
    assert [r for r in ads.requests if r.platform != "token"] == []


def test_none_for_an_unsuccessful_call(tmp_path: Path, simulator: Simulator, ads: FakeAds) -> None:
    app = make_app(tmp_path, simulator, ads)
    simulator.set_fate("56962000203", status="Conectada", duration_customer=12, duration_company=30)
    answer = post(app, lead_body("+56 9 6200 0203"))
    record = settle(app, answer["lead_id"])
    assert record["outcome"]["connected"] is True and record["outcome"]["successful"] is False
    assert set(record["conversions"].values()) == {"skipped: call not connected and successful"}
    assert ads.requests == []
    assert not record.get("clicks")


def test_a_429_then_200_is_one_accepted_event(tmp_path: Path, simulator: Simulator, ads: FakeAds) -> None:
    app = make_app(tmp_path, simulator, ads, platforms="meta")
    simulator.set_fate("56962000204", status="Conectada", duration_customer=95, duration_company=117)
    ads.fail_next("meta", 429, {"Retry-After": "30"})
    answer = post(app, lead_body("+56 9 6200 0204"))
    record = settle(app, answer["lead_id"])
    assert [r.status for r in ads.of("meta")] == [429, 200]
    assert list(ads.meta_events) == [answer["uuid"]]
    assert record["conversions"] == {"meta": "sent"}
    # The same event both times: the uuid is its id.
    bodies = [r.json["data"][0]["event_id"] for r in ads.of("meta")]
    assert bodies == [answer["uuid"], answer["uuid"]]


def test_a_400_is_final_logged_and_recorded(
    tmp_path: Path, simulator: Simulator, ads: FakeAds, capsys: pytest.CaptureFixture[str]
) -> None:
    app = make_app(tmp_path, simulator, ads)
    simulator.set_fate("56962000205", status="Conectada", duration_customer=95, duration_company=117)
    ads.fail_next("google", 400)
    answer = post(app, lead_body("+56 9 6200 0205"))
    capsys.readouterr()
    record = settle(app, answer["lead_id"])
    assert record["conversions"] == {"google": "failed", "meta": "sent"}
    assert len(ads.of("google")) == 1 and ads.google_events == {}
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    [failed] = [line for line in lines if line.get("outcome") == "conversion_failed"]
    assert failed["severity"] == "ERROR"
    assert "google: HTTP 400" in failed["conversion_failed"]
    assert "56962000205" not in json.dumps(lines)


def test_a_call_8_days_old_sends_no_meta_event(tmp_path: Path, simulator: Simulator, ads: FakeAds) -> None:
    app = make_app(tmp_path, simulator, ads)
    simulator.set_fate("56962000206", status="Conectada", duration_customer=95, duration_company=117)
    answer = post(app, lead_body("+56 9 6200 0206"))
    # The sweeper was away for 8 days: the call settled long ago when the step comes.
    clock_of(app).advance(8 * DAY)
    record = settle(app, answer["lead_id"])
    assert record["conversions"] == {"google": "sent", "meta": "skipped: call over 7 days old"}
    assert ads.of("meta") == [] and list(ads.google_events) == [answer["uuid"]]


def test_cold_start_without_conversions_imports_no_ads_code() -> None:
    """memory:// and no `conversions`: neither the conversions code nor google-auth nor any ads library."""
    code = (
        "import sys, main\n"
        "from formcall_webhook.app import App\n"
        "heavy = [m for m in sys.modules if m.startswith(('google.auth', 'google.ads', 'facebook_business',"
        " 'formcall_webhook.conversion', 'formcall_webhook.clients.conversions'))]\n"
        "print(','.join(heavy))\n"
    )
    env = {"FORMCALL_POPUP_UUID": POPUP, "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=Path(__file__).parent.parent, env=env, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "", done.stdout
