"""Replays on signed routes (spec 5): a captured delivery sent again inside its signature's window is a
duplicate, identified by what the signature vouches for, even after the dedupe window has passed."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from formcall_webhook.app import App, Request, read_stream
from formcall_webhook.simulator import Simulator
from formcall_webhook.stores import memory
from tests import signing

POPUP = "e5c98214-d0f6-11e1-8c30-001d09ef4a24"
TOKEN = "replay-token-8d"
SIMULATOR_TOKENS = (TOKEN,)
SECRET = "replay-secret-0001"
WHSEC = signing.whsec(b"replay-whsec-key-000000000000001")
URL = "https://fn.example/"

SIGNERS: dict[str, Callable[[str, bytes], dict[str, str]]] = {
    "hubspot": lambda route, body: signing.hubspot_v3(SECRET, "POST", URL + route, body),
    "standard_webhooks": lambda route, body: signing.standard_webhooks([WHSEC], "msg_replay_1", body),
    "typeform": lambda route, body: signing.typeform(SECRET, body),
    "tally": lambda route, body: signing.tally(SECRET, body),
    "webflow": lambda route, body: signing.webflow(SECRET, body),
}


class StoreClock:
    """memory://'s clock, moved on by the test instead of slept through: its monotonic and wall time both
    run `offset` seconds ahead (the senders' signature windows keep the real clock)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def advance(self, seconds: float) -> None:
        self.offset += seconds

    def monotonic(self) -> float:
        return time.monotonic() + self.offset

    def time(self) -> float:
        return time.time() + self.offset

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


@pytest.fixture
def store_clock(monkeypatch: pytest.MonkeyPatch) -> StoreClock:
    clock = StoreClock()
    monkeypatch.setattr(memory, "time", clock)
    return clock


@pytest.fixture
def app(tmp_path: Path, simulator: Simulator) -> App:
    routes = []
    for kind in SIGNERS:
        secret = "env:WHSEC" if kind == "standard_webhooks" else "env:SECRET"
        extra = f', public_url = "{URL}{kind}"' if kind == "hubspot" else ""
        routes.append(
            f'[routes.{kind}]\nauth = {{ type = "{kind}", secret = "{secret}"{extra} }}\n'
            # A dedupe window shorter than the replay: only the delivery id can catch it.
            "dedupe = { window_seconds = 1 }\n"
        )
    path = tmp_path / "f.toml"
    path.write_text(f"[formcall]\ntimeout_seconds = 2\n[defaults]\npopup_uuid = '{POPUP}'\n" + "".join(routes))
    return App({"FORMCALL_CONFIG": str(path), "FORMCALL_API_URL": simulator.api_url,
                "FORMCALL_SECURITY_TOKEN": TOKEN, "SECRET": SECRET, "WHSEC": WHSEC})  # fmt: skip


def post(app: App, route: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    stream = io.BytesIO(body)
    all_headers = {"content-type": "application/json", **{k.lower(): v for k, v in headers.items()}}
    request = Request(
        "POST", f"/{route}", all_headers, b"", lambda n, *_: read_stream(stream, n), len(body), url=URL + route
    )
    response = app.handle(request)
    return response.status, json.loads(response.body)


@pytest.mark.parametrize("kind", list(SIGNERS))
def test_a_replay_inside_the_signature_window_is_a_duplicate(
    app: App, simulator: Simulator, store_clock: StoreClock, kind: str
) -> None:
    body = json.dumps({"phone": "+56 9 6250 0001", "nombre": "Ana"}).encode()
    headers = SIGNERS[kind](kind, body)
    status, first = post(app, kind, body, headers)
    assert status == 200 and first["uuid"], first
    store_clock.advance(1.2)  # past the route's dedupe window
    status, replay = post(app, kind, body, {**headers, "Idempotency-Key": "fresh-" + kind})
    assert (status, replay.get("duplicate"), replay.get("uuid")) == (200, True, first["uuid"]), replay
    assert len(simulator.placed()) == 1


def test_an_unsigned_route_trusts_the_idempotency_key(
    simulator: Simulator, store_clock: StoreClock, tmp_path: Path
) -> None:
    path = tmp_path / "g.toml"
    path.write_text(
        f"[defaults]\npopup_uuid = '{POPUP}'\nrate_limit = false\n"
        "[routes.default]\ndedupe = { window_seconds = 1 }\n[routes.steady]\n"
    )
    plain = App({"FORMCALL_CONFIG": str(path), "FORMCALL_API_URL": simulator.api_url, "FORMCALL_SECURITY_TOKEN": TOKEN})
    body = json.dumps({"phone": "+56 9 6250 0002"}).encode()
    first = post(plain, "", body, {"Idempotency-Key": "zap-1"})[1]
    store_clock.advance(1.2)  # past the route's dedupe window
    again = post(plain, "", body, {"Idempotency-Key": "zap-1"})[1]
    assert again == {"success": True, "duplicate": True, "lead_id": first["lead_id"], "uuid": first["uuid"]}
    # The window did pass on the store's clock: under a fresh key the same lead is a new one.
    fresh = post(plain, "", body, {"Idempotency-Key": "zap-2"})[1]
    assert (fresh.get("duplicate"), len(fresh["uuid"])) == (None, 32)
    # Fresh keys on a duplicate keep nothing: a delivery id is kept only when its delivery placed or
    # scheduled something (an abuser's fresh keys must not fill the store).
    other = json.dumps({"phone": "+56 9 6250 0003"}).encode()
    assert post(plain, "steady", other, {"Idempotency-Key": "k-0"})[1]["uuid"]
    before = len(plain.store)  # type: ignore[arg-type]
    for n in range(1, 500):
        assert post(plain, "steady", other, {"Idempotency-Key": f"k-{n}"})[1].get("duplicate") is True
    assert len(plain.store) == before  # type: ignore[arg-type]
    assert len(simulator.placed()) == 3


def test_an_idempotency_key_reused_for_another_number_is_no_replay(
    simulator: Simulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 18.2: a Zapier step with a fixed key sent 5 different leads: 1 call, 4 lost as duplicates.
    Spec 4: each is a new lead (5 calls), logged WARNING idempotency_key_reused; a retry of the same lead
    under its key, a per-delivery field changed, is still a duplicate."""
    path = tmp_path / "z.toml"
    path.write_text(f"[defaults]\npopup_uuid = '{POPUP}'\nrate_limit = false\n[routes.default]\n")
    plain = App({"FORMCALL_CONFIG": str(path), "FORMCALL_API_URL": simulator.api_url, "FORMCALL_SECURITY_TOKEN": TOKEN})
    answers = []
    for n in range(5):
        body = json.dumps({"phone": f"+56 9 6250 01{n:02d}", "sent_at": f"2026-12-06T10:0{n}:00Z"}).encode()
        status, answer = post(plain, "", body, {"Idempotency-Key": "zap-step-fixed"})
        assert status == 200 and answer.get("duplicate") is None and len(answer["uuid"]) == 32, answer
        answers.append(answer)
    assert len(simulator.placed()) == 5
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    reused = [line for line in lines if line.get("outcome") == "idempotency_key_reused"]
    assert [line["severity"] for line in reused] == ["WARNING"] * 4
    assert {line["lead_id"] for line in reused} == {a["lead_id"] for a in answers[1:]}
    assert all("zap-step-fixed" not in json.dumps(line) and "6250010" not in json.dumps(line) for line in reused)
    # The sender's retry of the third lead, its timestamp changed: the same lead, a duplicate.
    retry = json.dumps({"phone": "+56 9 6250 0102", "sent_at": "2026-12-06T10:09:00Z"}).encode()
    status, again = post(plain, "", retry, {"Idempotency-Key": "zap-step-fixed"})
    assert (status, again.get("duplicate"), again["lead_id"]) == (200, True, answers[2]["lead_id"])
    assert len(simulator.placed()) == 5
    assert not [line for line in capsys.readouterr().out.splitlines() if "idempotency_key_reused" in line]


def test_a_typeform_delivery_replayed_days_later_is_a_duplicate(
    app: App, simulator: Simulator, store_clock: StoreClock
) -> None:
    """Issue 18.6: one Typeform delivery replayed after 1, 2 and 30 days made 4 calls. Spec 5: its signed
    id is remembered for leads.keep_days (30 by default), whatever the signature's 24 hours."""
    body = json.dumps({"phone": "+56 9 6250 0201"}).encode()
    headers = SIGNERS["typeform"]("typeform", body)
    status, first = post(app, "typeform", body, headers)
    assert status == 200 and first["uuid"]
    for day in (1, 2, 30):
        store_clock.advance(day * 86400 - store_clock.offset - 60)  # a minute short of day 1, 2 and 30
        status, replay = post(app, "typeform", body, headers)
        assert (status, replay.get("duplicate"), replay.get("uuid")) == (200, True, first["uuid"]), (day, replay)
    assert len(simulator.placed()) == 1


def test_a_signed_delivery_replayed_to_another_route_sharing_the_secret_is_a_duplicate(
    simulator: Simulator, store_clock: StoreClock, tmp_path: Path
) -> None:
    """Issue 18.6: a Standard Webhooks delivery replayed to a second route sharing the secret made 2 calls."""
    path = tmp_path / "s.toml"
    auth = 'auth = { type = "standard_webhooks", secret = "env:WHSEC" }\ndedupe = { window_seconds = 1 }\n'
    other = 'auth = { type = "standard_webhooks", secret = "env:OTHER" }\ndedupe = { window_seconds = 1 }\n'
    path.write_text(
        f"[defaults]\npopup_uuid = '{POPUP}'\n[routes.sales]\n{auth}[routes.support]\n{auth}[routes.other]\n{other}"
    )
    second = signing.whsec(b"replay-whsec-key-000000000000002")
    shared = App({"FORMCALL_CONFIG": str(path), "FORMCALL_API_URL": simulator.api_url,
                  "FORMCALL_SECURITY_TOKEN": TOKEN, "WHSEC": WHSEC, "OTHER": second})  # fmt: skip
    body = json.dumps({"phone": "+56 9 6250 0202"}).encode()
    headers = signing.standard_webhooks([WHSEC], "msg_shared_1", body)
    status, first = post(shared, "sales", body, headers)
    assert status == 200 and first["uuid"]
    store_clock.advance(1.2)  # past the routes' dedupe window: only the signed id can catch it
    status, replay = post(shared, "support", body, headers)
    assert (status, replay.get("duplicate"), replay.get("uuid")) == (200, True, first["uuid"]), replay
    assert len(simulator.placed()) == 1
    # Another signer's id of the same name is its own delivery.
    store_clock.advance(1.2)
    status, fresh = post(shared, "other", body, signing.standard_webhooks([second], "msg_shared_1", body))
    assert status == 200 and fresh.get("duplicate") is None and fresh["uuid"] != first["uuid"]
    assert len(simulator.placed()) == 2
