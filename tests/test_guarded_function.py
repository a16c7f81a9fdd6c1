"""Senders and guards through real functions-framework processes: auth, abuse, exactly one call."""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from formcall_webhook.simulator import Simulator
from tests.fakes.captcha import FakeSiteverify
from tests.fakes.loopback import refusing_port
from tests.fakes.redis_server import RedisServer
from tests.harness import FunctionProcess, forbidden_in_logs, start_all, stop_all
from tests.signing import basic, hubspot_v3, standard_webhooks, whsec

# Every test here talks to a functions-framework process.
pytestmark = pytest.mark.slow

POPUP = "e5c98214-d0f6-11e1-8c30-001d09ef4a24"
TOKEN = "formcall-guarded-7d1c"
SIMULATOR_TOKENS = (TOKEN,)  # the tokens the module's simulator accepts (tests/conftest.py)
HUBSPOT_SECRET = "hs-app-secret-4b9e"
ZAPIER_TOKEN = "zap-shared-token-c3a0"
BASIC_PASSWORD = "b4sic-pass-61f7"
WHSEC = whsec(b"guarded-standard-webhooks-key")
CAPTCHA_SECRET = "0x4AAAAAAA-guarded-captcha"
PUBLIC_URL = "https://southamerica-west1-acme.cloudfunctions.net/formcall-webhook/hubspot"
SECRETS = {
    "HUBSPOT_APP_SECRET": HUBSPOT_SECRET,
    "ZAPIER_TOKEN": ZAPIER_TOKEN,
    "BASIC_PASSWORD": BASIC_PASSWORD,
    "SW_SECRET": WHSEC,
    "CAPTCHA_SECRET": CAPTCHA_SECRET,
}
LOG_FILES: list[Path] = []
NUMBERS: set[str] = set()
_serial = itertools.count()


def number() -> str:
    """A valid Chilean mobile no other test used, typed with spaces."""
    local = str(52000000 + next(_serial) * 7919)
    NUMBERS.update({local, f"9{local}", f"569{local}", f"+569{local}"})
    return f"+56 9 {local[:4]} {local[4:]}"


def config_text(captcha_url: str) -> str:
    return f"""
[defaults]
popup_uuid = "{POPUP}"

[routes.default]

[routes.form]
honeypot = "_gotcha"
redirect = {{ success = "https://acme.cl/gracias", failure = "https://acme.cl/error" }}
cors_origins = ["https://acme.cl"]
rate_limit = {{ per_ip = "3/minute" }}

[routes.captcha]
captcha = {{ provider = "turnstile", secret = "env:CAPTCHA_SECRET", verify_url = "{captcha_url}" }}

[routes.hubspot]
auth = {{ type = "hubspot", secret = "env:HUBSPOT_APP_SECRET", public_url = "{PUBLIC_URL}" }}
phone = "{{{{ properties.mobilephone.value or properties.phone.value }}}}"
dedupe = {{ key = "{{{{ vid }}}}", window_seconds = 3600 }}
allow_get = true

[routes.zapier]
auth = {{ type = "token", secret = "env:ZAPIER_TOKEN" }}
allow_get = true

[routes.basic]
auth = {{ type = "basic", username = "zapier", password = "env:BASIC_PASSWORD" }}

[routes.sw]
auth = {{ type = "standard_webhooks", secret = "env:SW_SECRET" }}

[routes.phones]
dedupe = {{ key = "{{{{ submission }}}}" }}
rate_limit = {{ per_phone = "2/day" }}

[routes.hubspot_limited]
auth = {{ type = "hubspot", secret = "env:HUBSPOT_APP_SECRET", public_url = "{PUBLIC_URL}_limited" }}
phone = "{{{{ properties.phone.value }}}}"
dedupe = {{ key = "{{{{ vid }}}}" }}
rate_limit = {{ per_phone = "1/day" }}
"""


@pytest.fixture(scope="module")
def siteverify() -> Iterator[FakeSiteverify]:
    fake = FakeSiteverify(CAPTCHA_SECRET).start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory, siteverify: FakeSiteverify) -> Path:
    path = tmp_path_factory.mktemp("guarded")
    (path / "formcall.toml").write_text(config_text(siteverify.url), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def processes(
    workdir: Path, simulator: Simulator, request: pytest.FixtureRequest
) -> Iterator[dict[str, FunctionProcess]]:
    """The module's processes, started at once: memory://, two instances sharing Redis (when
    redis-server is installed), and one whose Redis refuses every connection."""
    with refusing_port() as down:
        stores: dict[str, dict[str, str]] = {
            "memory": {},
            "redis-down": {"FORMCALL_STORE_URL": f"redis://127.0.0.1:{down}/0"},
        }
        try:
            redis_server: RedisServer = request.getfixturevalue("redis_server")
        except pytest.skip.Exception:
            pass  # test_two_instances_sharing_redis_place_one_call skips; the rest go on
        else:
            import redis

            redis.Redis.from_url(redis_server.url).flushdb()  # the session's server: start from an empty store
            stores["redis-a"] = stores["redis-b"] = {"FORMCALL_STORE_URL": redis_server.url}
        started = {}
        for name, store in stores.items():
            log = workdir / f"{name}.log"
            LOG_FILES.append(log)
            env = {
                "FORMCALL_CONFIG": str(workdir / "formcall.toml"),
                "FORMCALL_API_URL": simulator.api_url,
                "FORMCALL_SECURITY_TOKEN": TOKEN,
                **SECRETS,
                **store,
            }
            started[name] = FunctionProcess(env, log)
        start_all(started.values())
        yield started
        stop_all(started.values())


@pytest.fixture(scope="module")
def fn(processes: dict[str, FunctionProcess]) -> FunctionProcess:
    return processes["memory"]


def post_json(fn: FunctionProcess, route: str, body: dict[str, Any], **kwargs: Any) -> requests.Response:
    raw = json.dumps(body).encode()
    headers = {"Content-Type": "application/json", **kwargs.pop("headers", {})}
    return requests.post(f"{fn.url}/{route}", data=raw, headers=headers, timeout=30, **kwargs)


# -- who may submit --


def test_hubspot_signed_with_public_url_and_query(fn: FunctionProcess, simulator: Simulator) -> None:
    body = json.dumps({"vid": 9001, "properties": {"phone": {"value": number()}}}).encode()
    query = "portal=62515&flow=landing"
    headers = hubspot_v3(HUBSPOT_SECRET, "POST", f"{PUBLIC_URL}?{query}", body)
    response = requests.post(
        f"{fn.url}/hubspot?{query}", data=body, headers={**headers, "Content-Type": "application/json"}, timeout=30
    )
    assert response.status_code == 200, response.text
    assert len(simulator.placed()) == 1
    # The same signature on the URL the function saw (not what HubSpot signed) is refused.
    bad = hubspot_v3(HUBSPOT_SECRET, "POST", f"{fn.url}/hubspot?{query}", body)
    response = requests.post(f"{fn.url}/hubspot?{query}", data=body, headers=bad, timeout=30)
    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"


def test_hubspot_retry_of_same_contact_is_one_call(fn: FunctionProcess, simulator: Simulator) -> None:
    """HubSpot retries 5xx for days; the route's dedupe key (vid) holds the first answer."""
    first_phone, other_phone = number(), number()
    answers = []
    for phone in (first_phone, other_phone):
        body = json.dumps({"vid": 7007, "properties": {"mobilephone": {"value": phone}}}).encode()
        headers = {**hubspot_v3(HUBSPOT_SECRET, "POST", PUBLIC_URL, body), "Content-Type": "application/json"}
        answers.append(requests.post(f"{fn.url}/hubspot", data=body, headers=headers, timeout=30).json())
    assert answers[0]["uuid"] == answers[1]["uuid"]
    assert answers[1]["duplicate"] is True
    assert len(simulator.placed()) == 1


def test_hubspot_unsigned_or_stale_is_refused(fn: FunctionProcess, simulator: Simulator) -> None:
    body = json.dumps({"vid": 1, "properties": {"phone": {"value": number()}}}).encode()
    stale = hubspot_v3(HUBSPOT_SECRET, "POST", PUBLIC_URL, body, int(time.time() * 1000) - 301_000)
    for headers in ({}, stale):
        response = requests.post(f"{fn.url}/hubspot", data=body, headers=headers, timeout=30)
        assert response.status_code == 401
    assert simulator.calls() == []


def test_zapier_token_header_form_and_get(fn: FunctionProcess, simulator: Simulator) -> None:
    ok = requests.post(
        f"{fn.url}/zapier", data={"phone": number()}, headers={"X-Webhook-Token": ZAPIER_TOKEN}, timeout=30
    )
    assert ok.status_code == 200, ok.text
    via_query = requests.get(f"{fn.url}/zapier", params={"phone": number(), "token": ZAPIER_TOKEN}, timeout=30)
    assert via_query.status_code == 200, via_query.text
    wrong = requests.post(f"{fn.url}/zapier", data={"phone": number()}, headers={"X-Webhook-Token": "x"}, timeout=30)
    assert wrong.status_code == 401
    assert len(simulator.placed()) == 2


def test_basic_auth(fn: FunctionProcess, simulator: Simulator) -> None:
    ok = post_json(fn, "basic", {"phone": number()}, headers=basic("zapier", BASIC_PASSWORD))
    assert ok.status_code == 200, ok.text
    wrong = post_json(fn, "basic", {"phone": number()}, headers=basic("zapier", "nope"))
    assert wrong.status_code == 401
    assert wrong.headers["WWW-Authenticate"].startswith("Basic")
    assert len(simulator.placed()) == 1


def test_standard_webhooks_and_replayed_webhook_id(fn: FunctionProcess, simulator: Simulator) -> None:
    body = json.dumps({"phone": number()}).encode()
    headers = {**standard_webhooks([WHSEC], "msg_31Kq", body), "Content-Type": "application/json"}
    first = requests.post(f"{fn.url}/sw", data=body, headers=headers, timeout=30)
    replay = requests.post(f"{fn.url}/sw", data=body, headers=headers, timeout=30)
    assert first.status_code == replay.status_code == 200
    assert replay.json() == {
        "success": True, "duplicate": True, "lead_id": first.json()["lead_id"], "uuid": first.json()["uuid"]
    }  # fmt: skip
    # An unsigned Idempotency-Key added to a captured request does not make it a new delivery.
    keyed = requests.post(f"{fn.url}/sw", data=body, headers={**headers, "Idempotency-Key": "new-1"}, timeout=30)
    assert keyed.json()["duplicate"] is True
    forged = requests.post(f"{fn.url}/sw", data=body, headers={**headers, "webhook-id": "msg_other"}, timeout=30)
    assert forged.status_code == 401
    assert len(simulator.placed()) == 1


# -- abuse --


def test_honeypot_answers_success_and_calls_no_one(fn: FunctionProcess, simulator: Simulator) -> None:
    response = requests.post(
        f"{fn.url}/form",
        data={"phone": number(), "_gotcha": "http://spam.example"},
        headers={"X-Forwarded-For": "198.51.100.1"},
        timeout=30,
    )
    assert response.status_code == 200
    assert response.json() == {"success": True}
    assert simulator.calls() == []


def test_captcha(fn: FunctionProcess, simulator: Simulator, siteverify: FakeSiteverify) -> None:
    ok = requests.post(f"{fn.url}/captcha", data={"phone": number(), "cf-turnstile-response": "pass"}, timeout=30)
    assert ok.status_code == 200, ok.text
    for token in ("fail", ""):
        bad = requests.post(f"{fn.url}/captcha", data={"phone": number(), "cf-turnstile-response": token}, timeout=30)
        assert bad.status_code == 403
        assert bad.json()["error"] == "captcha_failed"
    assert len(simulator.placed()) == 1
    assert siteverify.requests[-1]["secret"] == CAPTCHA_SECRET


def test_cors_preflight_and_answers(fn: FunctionProcess) -> None:
    preflight = requests.options(
        f"{fn.url}/form",
        headers={"Origin": "https://acme.cl", "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "content-type"},
        timeout=30,
    )  # fmt: skip
    assert preflight.status_code == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == "https://acme.cl"
    assert "content-type" in preflight.headers["Access-Control-Allow-Headers"].lower()
    assert preflight.headers["Vary"] == "Origin"
    other = requests.options(f"{fn.url}/form", headers={"Origin": "https://evil.example"}, timeout=30)
    assert "Access-Control-Allow-Origin" not in other.headers
    answer = requests.post(
        f"{fn.url}/form",
        json={"phone": "123"},
        headers={"Origin": "https://acme.cl", "X-Forwarded-For": "198.51.100.2"},
        timeout=30,
    )
    assert answer.status_code == 422
    assert answer.headers["Access-Control-Allow-Origin"] == "https://acme.cl"


def test_rate_limit_per_ip_uses_the_address_google_appends(fn: FunctionProcess, simulator: Simulator) -> None:
    statuses = []
    for i in range(4):
        # A bot rotating its own X-Forwarded-For; the last entry is what Google's front end saw.
        headers = {"X-Forwarded-For": f"10.9.{i}.1, 203.0.113.77", "Accept": "application/json"}
        response = requests.post(f"{fn.url}/form", data={"phone": number()}, headers=headers, timeout=30)
        statuses.append(response.status_code)
    assert statuses == [200, 200, 200, 429]
    assert int(response.headers["Retry-After"]) > 0
    assert response.json()["error"] == "rate_limited"
    other = requests.post(
        f"{fn.url}/form", data={"phone": number()}, headers={"X-Forwarded-For": "203.0.113.78"}, timeout=30
    )
    assert other.status_code == 200
    assert len(simulator.placed()) == 4


def test_rate_limit_per_phone(fn: FunctionProcess, simulator: Simulator) -> None:
    phone = number()
    statuses = [post_json(fn, "phones", {"phone": phone, "submission": f"s{i}"}).status_code for i in range(3)]
    assert statuses == [200, 200, 429]
    assert len(simulator.placed()) == 2


def test_a_429_on_a_hubspot_route_says_retry_after_in_milliseconds(fn: FunctionProcess, simulator: Simulator) -> None:
    """HubSpot's workflows read a 429's Retry-After in milliseconds; everyone else, in seconds (RFC 9110)."""
    phone = number()
    answers = []
    for vid in (8101, 8102):
        body = json.dumps({"vid": vid, "properties": {"phone": {"value": phone}}}).encode()
        headers = {
            **hubspot_v3(HUBSPOT_SECRET, "POST", PUBLIC_URL + "_limited", body),
            "Content-Type": "application/json",
        }
        answers.append(requests.post(f"{fn.url}/hubspot_limited", data=body, headers=headers, timeout=30))
    assert [a.status_code for a in answers] == [200, 429], answers[1].text
    assert answers[1].json()["error"] == "rate_limited"
    wait_ms = int(answers[1].headers["Retry-After"])
    # per_phone 1/day: most of a day, counted in milliseconds.
    assert 86_300_000 <= wait_ms <= 86_400_000
    assert len(simulator.placed()) == 1
    # The same limit on an unsigned route still answers seconds.
    other = number()
    statuses = [post_json(fn, "phones", {"phone": other, "submission": f"ms{i}"}) for i in range(3)]
    assert [r.status_code for r in statuses] == [200, 200, 429]
    assert 86_300 <= int(statuses[2].headers["Retry-After"]) <= 86_400


# -- HTML forms --

BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


def test_plain_form_post_is_redirected(fn: FunctionProcess, simulator: Simulator) -> None:
    ok = requests.post(
        f"{fn.url}/form",
        data={"phone": number()},
        headers={"Accept": BROWSER_ACCEPT, "X-Forwarded-For": "198.51.100.3"},
        allow_redirects=False,
        timeout=30,
    )
    assert ok.status_code == 303
    assert ok.headers["Location"] == "https://acme.cl/gracias"
    bad = requests.post(
        f"{fn.url}/form",
        data={"phone": "12"},
        headers={"Accept": BROWSER_ACCEPT, "X-Forwarded-For": "198.51.100.4"},
        allow_redirects=False,
        timeout=30,
    )
    assert bad.status_code == 303
    assert bad.headers["Location"] == "https://acme.cl/error?error=invalid_phone"
    as_json = requests.post(
        f"{fn.url}/form", data={"phone": "12"}, headers={"X-Forwarded-For": "198.51.100.5"}, timeout=30
    )
    assert as_json.status_code == 422
    assert len(simulator.placed()) == 1


# -- exactly one call --


def simultaneously(count: int, send: Any) -> list[requests.Response]:
    barrier = threading.Barrier(count)
    results: list[requests.Response] = []
    lock = threading.Lock()

    def one(i: int) -> None:
        barrier.wait()
        response = send(i)
        with lock:
            results.append(response)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_twenty_identical_submissions_at_once_are_one_call(fn: FunctionProcess, simulator: Simulator) -> None:
    simulator.inject({"kind": "slow", "seconds": 0.5})  # keep the first call in flight while the rest arrive
    lead = {"telefono": number(), "nombre": "Ana"}
    responses = simultaneously(20, lambda i: post_json(fn, "", lead))
    assert [r.status_code for r in responses] == [200] * 20
    bodies = [r.json() for r in responses]
    uuids = {b["uuid"] for b in bodies}
    assert len(simulator.placed()) == 1
    assert uuids == {simulator.placed()[0]["uuid"]}
    assert sum(1 for b in bodies if b.get("duplicate")) == 19


def test_idempotency_key_replay_gets_the_first_answer(fn: FunctionProcess, simulator: Simulator) -> None:
    phone = number()
    first = post_json(fn, "", {"phone": phone, "sent_at": "10:00"}, headers={"Idempotency-Key": "zap-run-551"})
    # A replay carries the same key and the same lead; another per-delivery field changed, it is the same.
    replay = post_json(fn, "", {"phone": phone, "sent_at": "10:05"}, headers={"Idempotency-Key": "zap-run-551"})
    assert replay.json() == {
        "success": True, "duplicate": True, "lead_id": first.json()["lead_id"], "uuid": first.json()["uuid"]
    }  # fmt: skip
    assert len(simulator.placed()) == 1
    # Spec 4: the key reused for another number is no replay: a new lead.
    other = post_json(fn, "", {"phone": number()}, headers={"Idempotency-Key": "zap-run-551"})
    assert other.json().get("duplicate") is None and other.json()["uuid"] != first.json()["uuid"]
    assert len(simulator.placed()) == 2


def test_failed_call_does_not_hold_the_lead(fn: FunctionProcess, simulator: Simulator) -> None:
    lead = {"phone": number()}
    simulator.inject({"kind": "error", "code": 1})  # refused: a corrected resend must get through
    assert post_json(fn, "", lead).status_code == 422
    retry = post_json(fn, "", lead)
    assert retry.status_code == 200
    assert "duplicate" not in retry.json()
    assert len(simulator.placed()) == 1


def test_two_instances_sharing_redis_place_one_call(
    processes: dict[str, FunctionProcess], simulator: Simulator
) -> None:
    if "redis-a" not in processes:
        pytest.skip("redis-server is not installed")
    a, b = processes["redis-a"], processes["redis-b"]
    for _ in range(3):
        simulator.reset()
        simulator.set_tokens(TOKEN)
        simulator.inject({"kind": "slow", "seconds": 0.3})
        lead = {"phone": number()}
        responses = simultaneously(2, lambda i, lead=lead: post_json(a if i == 0 else b, "", lead))
        assert sorted(r.status_code for r in responses) == [200, 200]
        [placed] = simulator.placed()
        assert {r.json()["uuid"] for r in responses} == {placed["uuid"]}
    # Rate limits are shared too.
    phone = number()
    statuses = [post_json(p, "phones", {"phone": phone, "submission": str(i)}).status_code
                for i, p in enumerate((a, b, a))]  # fmt: skip
    assert statuses == [200, 200, 429]


def test_store_down_is_503_and_no_call(processes: dict[str, FunctionProcess], simulator: Simulator) -> None:
    started = time.monotonic()
    response = post_json(processes["redis-down"], "", {"phone": number()})
    assert response.status_code == 503
    assert int(response.headers["Retry-After"]) > 0
    assert time.monotonic() - started < 20  # the store's timeout, not a hang (a busy machine adds seconds)
    assert simulator.calls() == []


def test_logs_of_this_module_leak_nothing() -> None:
    text = "\n".join(p.read_text(encoding="utf-8", errors="replace") for p in LOG_FILES if p.exists())
    assert text
    assert forbidden_in_logs(text, {TOKEN, *SECRETS.values(), *NUMBERS}) == []
    assert "Traceback" not in text
