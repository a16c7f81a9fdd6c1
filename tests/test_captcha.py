"""Captcha answers read as each provider documents them, against the loopback siteverify fake:
hCaptcha's score is a risk score, action and hostname checked when the route names them, sitekey sent."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from formcall_webhook import config, guards
from formcall_webhook.clients.http import make_pool
from formcall_webhook.errors import CaptchaFailed, ConfigError
from tests.fakes.captcha import FakeSiteverify

POPUP = "e5c98214-d0f6-11e1-8c30-001d09ef4a24"
CAPTCHA_SECRET = "0x4AAAAAAA-captcha-secret"
FIELDS = {"turnstile": "cf-turnstile-response", "recaptcha": "g-recaptcha-response", "hcaptcha": "h-captcha-response"}


@pytest.fixture(scope="module")
def siteverify() -> Iterator[FakeSiteverify]:
    fake = FakeSiteverify(CAPTCHA_SECRET).start()
    yield fake
    fake.stop()


def captcha(tmp_path: Path, provider: str, url: str, extra: str = "") -> config.Captcha:
    path = tmp_path / "f.toml"
    path.write_text(
        f"[routes.default]\npopup_uuid = '{POPUP}'\n"
        f'captcha = {{ provider = "{provider}", secret = "env:CAPTCHA_SECRET", verify_url = "{url}"{extra} }}\n',
        encoding="utf-8",
    )
    loaded = config.load({"CAPTCHA_SECRET": CAPTCHA_SECRET}, path).routes["default"].captcha
    assert loaded is not None
    return loaded


def answer(**fields: object) -> str:
    return "answer:" + json.dumps(fields)


def check(c: config.Captcha, token: str) -> None:
    guards.verify_captcha(c, {FIELDS[c.provider]: token}, "203.0.113.9", lambda ref: CAPTCHA_SECRET, make_pool())


def refused(c: config.Captcha, token: str) -> None:
    with pytest.raises(CaptchaFailed) as caught:
        check(c, token)
    assert (caught.value.status, caught.value.error) == (403, "captcha_failed")


def test_hcaptcha_score_is_a_risk_score(tmp_path: Path, siteverify: FakeSiteverify) -> None:
    # Before, a 0.9 (very likely a bot) passed and a 0.1 (very likely human) was refused.
    c = captcha(tmp_path, "hcaptcha", siteverify.url)
    assert (c.max_score, c.min_score) == (0.7, 0.5)
    check(c, answer(score=0.1))
    check(c, answer(score=0.7))
    refused(c, answer(score=0.9))
    stricter = captcha(tmp_path, "hcaptcha", siteverify.url, ", max_score = 0.3")
    refused(stricter, answer(score=0.5))
    check(stricter, answer(score=0.2))


def test_recaptcha_min_score_is_the_lowest_human_score(tmp_path: Path, siteverify: FakeSiteverify) -> None:
    c = captcha(tmp_path, "recaptcha", siteverify.url, ", min_score = 0.6, max_score = 0.1")
    check(c, answer(score=0.9))  # max_score is hCaptcha's: it does not apply here
    refused(c, answer(score=0.3))


@pytest.mark.parametrize("provider", ["recaptcha", "turnstile"])
def test_action_must_match_when_set(tmp_path: Path, siteverify: FakeSiteverify, provider: str) -> None:
    c = captcha(tmp_path, provider, siteverify.url, ', action = "lead"')
    check(c, answer(action="lead", hostname="acme.cl", score=0.9))
    refused(c, answer(action="login", hostname="acme.cl", score=0.9))
    refused(c, answer(hostname="acme.cl", score=0.9))
    # Without `action` in the route, any action passes, as before.
    check(captcha(tmp_path, provider, siteverify.url), answer(action="login", score=0.9))


@pytest.mark.parametrize("provider", ["recaptcha", "turnstile", "hcaptcha"])
def test_hostname_must_be_listed_when_set(tmp_path: Path, siteverify: FakeSiteverify, provider: str) -> None:
    c = captcha(tmp_path, provider, siteverify.url, ', hostnames = ["acme.cl", "www.acme.cl"]')
    check(c, answer(hostname="acme.cl"))
    check(c, answer(hostname="WWW.acme.cl"))
    refused(c, answer(hostname="evil.example"))
    refused(c, answer())


def test_sitekey_is_sent_where_the_provider_takes_it(tmp_path: Path, siteverify: FakeSiteverify) -> None:
    key = "10000000-ffff-ffff-ffff-000000000001"
    check(captcha(tmp_path, "hcaptcha", siteverify.url, f', sitekey = "{key}"'), "pass")
    assert siteverify.requests[-1]["sitekey"] == key
    # reCAPTCHA's and Turnstile's siteverify take no sitekey.
    check(captcha(tmp_path, "turnstile", siteverify.url, f', sitekey = "{key}"'), "pass")
    assert "sitekey" not in siteverify.requests[-1]
    check(captcha(tmp_path, "hcaptcha", siteverify.url), "pass")
    assert "sitekey" not in siteverify.requests[-1]


@pytest.mark.parametrize(
    ("extra", "key"),
    [(", max_score = 1.5", "max_score"), (", max_score = true", "max_score"), (", hostnames = [1]", "hostnames"),
     (", hostnames = 'acme.cl'", "hostnames"), (", action = 3", "action"), (", sitekey = []", "sitekey")],
)  # fmt: skip
def test_bad_captcha_keys_name_the_key(tmp_path: Path, extra: str, key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        captcha(tmp_path, "hcaptcha", "http://127.0.0.1:9/", extra)
    assert f"routes.default.captcha.{key}" in str(caught.value)
