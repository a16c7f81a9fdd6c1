from __future__ import annotations

from pathlib import Path

import pytest

from formcall_webhook import config
from formcall_webhook.errors import ConfigError, ConfigErrors

POPUP = "e5c98214-d0f6-11e1-8c30-001d09ef4a24"
ENV = {"FORMCALL_POPUP_UUID": POPUP, "FORMCALL_SECURITY_TOKEN": "t"}


def load_text(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> config.Config:
    path = tmp_path / "formcall.toml"
    path.write_text(text, encoding="utf-8")
    return config.load(env if env is not None else {}, path)


def error_of(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load_text(tmp_path, text, env)
    return caught.value


def test_zero_config_from_environment() -> None:
    cfg = config.load(ENV)
    route = cfg.routes["default"]
    assert list(cfg.routes) == ["default"]
    assert route.popup_uuid is not None and route.popup_uuid.source == POPUP
    assert route.region == "CL" and route.allowed_regions == {"CL"}
    assert route.adicional is None and route.phone is None
    assert cfg.security_token == "env:FORMCALL_SECURITY_TOKEN"
    assert cfg.api_url == config.DEFAULT_API_URL
    assert cfg.store_url == "memory://"


def test_environment_overrides() -> None:
    cfg = config.load(
        {
            **ENV,
            "FORMCALL_API_URL": "http://127.0.0.1:1/calls/manage/api",
            "FORMCALL_DEFAULT_REGION": "ar",
            "FORMCALL_DRY_RUN": "true",
        }
    )
    assert cfg.api_url == "http://127.0.0.1:1/calls/manage/api"
    assert cfg.routes["default"].region == "AR"
    assert cfg.routes["default"].dry_run


def test_token_secret_name_from_environment() -> None:
    cfg = config.load(
        {"FORMCALL_POPUP_UUID": POPUP, "FORMCALL_SECURITY_TOKEN_SECRET": "projects/p/secrets/s/versions/3"}
    )
    assert cfg.security_token == "secret:projects/p/secrets/s/versions/3"


def test_spec_example_loads(tmp_path: Path) -> None:
    text = (Path(__file__).parent.parent / "examples" / "formcall.toml").read_text(encoding="utf-8")
    cfg = load_text(tmp_path, text)
    assert set(cfg.routes) >= {"default", "hubspot"}
    assert cfg.routes["hubspot"].auth.type == "hubspot"
    assert cfg.routes["default"].redirect_success == "https://acme.cl/gracias"


def test_defaults_are_inherited_and_tables_merged(tmp_path: Path) -> None:
    cfg = load_text(
        tmp_path,
        f"""
[defaults]
popup_uuid = "{POPUP}"
region = "AR"
allowed_regions = ["AR", "CL"]
adicional = {{ Origen = "web", Email = "{{{{ email }}}}" }}

[routes.a]
[routes.b]
region = "CL"
adicional = {{ Origen = "b" }}
""",
    )
    a, b = cfg.routes["a"], cfg.routes["b"]
    assert a.region == "AR" and b.region == "CL"
    assert a.allowed_regions == b.allowed_regions == {"AR", "CL"}
    assert dict(b.adicional or ())["Origen"].source == "b"
    assert "Email" in dict(b.adicional or ())


def test_popup_from_environment_when_file_omits_it(tmp_path: Path) -> None:
    cfg = load_text(tmp_path, "[routes.default]\n", {"FORMCALL_POPUP_UUID": POPUP})
    assert cfg.routes["default"].popup_uuid is not None


@pytest.mark.parametrize(
    ("text", "key", "words"),
    [
        ("[routes.default]\npopup_uuid = 'not-a-uuid'", "routes.default.popup_uuid", "not a UUID"),
        ("[routes.default]\n", "routes.default.popup_uuid", "missing"),
        (f"[routes.default]\npopup_uuid = '{POPUP}'\nphone = '{{{{ x '", "routes.default.phone", "syntax"),
        (f"[routes.default]\npopup_uuid = '{POPUP}'\nphon = 'x'", "routes.default.phon", "unknown key"),
        (
            f"[formcall]\nsecurity_token = 'abc123'\n[routes.default]\npopup_uuid = '{POPUP}'",
            "formcall.security_token",
            "literal",
        ),
        (
            f"[formcall]\nsecurity_token = 'secret:foo'\n[routes.default]\npopup_uuid = '{POPUP}'",
            "formcall.security_token",
            "versions",
        ),
        (f"[routes.default]\npopup_uuid = '{POPUP}'\nregion = 'XX'", "routes.default.region", "region code"),
        (
            f"[routes.default]\npopup_uuid = '{POPUP}'\nallowed_number_types = ['PREMIUM_RATE']",
            "routes.default.allowed_number_types",
            "never",
        ),
        (
            f"[routes.default]\npopup_uuid = '{POPUP}'\nallowed_number_types = ['CELL']",
            "routes.default.allowed_number_types",
            "not one of",
        ),
        (f"[routes.default]\npopup_uuid = '{POPUP}'\nmax_body_bytes = 0", "routes.default.max_body_bytes", "above 0"),
        (f"[routes.default]\npopup_uuid = '{POPUP}'\nallow_get = 'yes'", "routes.default.allow_get", "true or false"),
        (
            f"[routes.default]\npopup_uuid = '{POPUP}'\nauth = {{ type = 'token' }}",
            "routes.default.auth.secret",
            "missing",
        ),
        (
            f"[routes.default]\npopup_uuid = '{POPUP}'\nauth = {{ type = 'hubspot', secret = 'shh' }}",
            "routes.default.auth.secret",
            "literal",
        ),
        (
            f"[routes.default]\npopup_uuid = '{POPUP}'\nauth = {{ type = 'magic' }}",
            "routes.default.auth.type",
            "not one of",
        ),
        (
            f"[routes.default]\npopup_uuid = '{POPUP}'\nrate_limit = {{ per_ip = '10/fortnight' }}",
            "routes.default.rate_limit.per_ip",
            "COUNT/",
        ),
        (
            f"[routes.default]\npopup_uuid = '{POPUP}'\ncaptcha = {{ provider = 'turnstile', secret = 'x' }}",
            "routes.default.captcha.secret",
            "literal",
        ),
        (
            f"[routes.default]\npopup_uuid = '{POPUP}'\nphone = 'a'\nphone_parts = {{ phonenumber = 'b' }}",
            "routes.default.phone_parts",
            "either",
        ),
        (
            f"[routes.default]\npopup_uuid = '{POPUP}'\nrate_limit = true",
            "routes.default.rate_limit",
            "or false",
        ),
        (
            f"[routes.default]\npopup_uuid = '{POPUP}'\nbody_timeout_seconds = 0",
            "routes.default.body_timeout_seconds",
            "more than 0",
        ),
        (
            f"[routes.default]\npopup_uuid = '{POPUP}'\ncors_origins = ['https://acme.cl/']",
            "routes.default.cors_origins",
            "write https://acme.cl",
        ),
        (
            f"[routes.default]\npopup_uuid = '{POPUP}'\ncors_origins = ['https://acme.cl/landing']",
            "routes.default.cors_origins",
            "no path",
        ),
        (
            f"[routes.default]\npopup_uuid = '{POPUP}'\ncors_origins = ['acme.cl']",
            "routes.default.cors_origins",
            "can never match",
        ),
        (f"[routes.{'r' * 65}]\npopup_uuid = '{POPUP}'", f"routes.{'r' * 65}", "at most 64"),
        # A bad value in [defaults] is reported where it must be fixed, not under the route inheriting it.
        (f"[defaults]\nregion = 'ZZ'\n[routes.default]\npopup_uuid = '{POPUP}'", "defaults.region", "region code"),
        (
            f"[defaults]\nrate_limit = {{ per_ip = '1/fortnight' }}\n[routes.a]\npopup_uuid = '{POPUP}'\n"
            "rate_limit = { per_phone = '1/day' }",
            "defaults.rate_limit.per_ip",
            "COUNT/",
        ),
        (
            f"[defaults]\nauth = {{ type = 'token' }}\n[routes.a]\npopup_uuid = '{POPUP}'",
            "defaults.auth.secret",
            "missing",
        ),
        (
            f"[defaults]\nregion = 'ZZ'\n[routes.a]\npopup_uuid = '{POPUP}'\nregion = 'CL'\n[routes.b]\n"
            f"popup_uuid = '{POPUP}'",
            "defaults.region",
            "'ZZ'",
        ),
        (
            f"[defaults]\nregion = 'CL'\n[routes.a]\npopup_uuid = '{POPUP}'\nregion = 'XX'",
            "routes.a.region",
            "'XX'",
        ),
        ("[formcall]\ntimeout_seconds = 0", "formcall.timeout_seconds", "more than 0"),
        ("[formcall]\napi_url = 'ftp://x'", "formcall.api_url", "http"),
        ("[route.default]", "route", "unknown key"),
        ("[routes]", "routes", "no route"),
        ("not toml = = 1", "(syntax)", "TOML"),
    ],
)
def test_errors_name_the_key_and_the_problem(tmp_path: Path, text: str, key: str, words: str) -> None:
    err = error_of(tmp_path, text)
    assert err.key == key
    assert words in err.problem
    assert err.source.endswith("formcall.toml")
    assert str(err).startswith(err.source)


def test_missing_named_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        config.load({"FORMCALL_CONFIG": str(tmp_path / "nope.toml")})
    assert "not found" in caught.value.problem


def test_bad_environment_values_are_named() -> None:
    with pytest.raises(ConfigError) as caught:
        config.load({**ENV, "FORMCALL_DRY_RUN": "maybe"})
    assert caught.value.key == "FORMCALL_DRY_RUN"
    with pytest.raises(ConfigError) as caught:
        config.load({**ENV, "FORMCALL_STORE_URL": "mysql://x"})
    assert caught.value.key == "FORMCALL_STORE_URL"
    with pytest.raises(ConfigError) as caught:
        config.load({**ENV, "FORMCALL_CA_BUNDLE": "/nonexistent.pem"})
    assert caught.value.key == "FORMCALL_CA_BUNDLE"


def test_zero_config_without_popup_is_an_error() -> None:
    with pytest.raises(ConfigError) as caught:
        config.load({})
    assert "FORMCALL_POPUP_UUID" in caught.value.problem


def test_public_routes_get_rate_limits_by_default(tmp_path: Path) -> None:
    cfg = load_text(
        tmp_path,
        f"""
[defaults]
popup_uuid = "{POPUP}"

[routes.public]
[routes.own_ip]
rate_limit = {{ per_ip = "5/minute" }}
[routes.opted_out]
rate_limit = false
[routes.zapier]
auth = {{ type = "token", secret = "env:ZAPIER_TOKEN" }}
[routes.captcha]
captcha = {{ provider = "turnstile", secret = "env:CAPTCHA_SECRET" }}
""",
    )
    public = cfg.routes["public"]
    assert (public.rate_per_ip, public.rate_per_phone) == (config.Rate(30, 3600), config.Rate(3, 86400))
    own = cfg.routes["own_ip"]
    assert (own.rate_per_ip, own.rate_per_phone) == (config.Rate(5, 60), config.Rate(3, 86400))
    for name in ("opted_out", "zapier"):
        assert (cfg.routes[name].rate_per_ip, cfg.routes[name].rate_per_phone) == (None, None), name
    # A captcha proves a person, not a consented number: per_phone still applies (spec 2).
    assert (cfg.routes["captcha"].rate_per_ip, cfg.routes["captcha"].rate_per_phone) == (None, config.Rate(3, 86400))
    # Zero-config is a public route too.
    zero = config.load(ENV).routes["default"]
    assert (zero.rate_per_ip, zero.rate_per_phone) == (config.Rate(30, 3600), config.Rate(3, 86400))


def test_rate_limit_false_in_defaults_and_a_route_table_over_it(tmp_path: Path) -> None:
    cfg = load_text(
        tmp_path,
        f"""
[defaults]
popup_uuid = "{POPUP}"
rate_limit = false
[routes.a]
[routes.b]
rate_limit = {{ per_phone = "1/day" }}
""",
    )
    assert (cfg.routes["a"].rate_per_ip, cfg.routes["a"].rate_per_phone) == (None, None)
    assert (cfg.routes["b"].rate_per_ip, cfg.routes["b"].rate_per_phone) == (
        config.Rate(30, 3600),
        config.Rate(1, 86400),
    )


def test_body_timeout_and_cors_origins(tmp_path: Path) -> None:
    route = load_text(
        tmp_path,
        f"[routes.default]\npopup_uuid = '{POPUP}'\nbody_timeout_seconds = 2.5\n"
        "cors_origins = ['https://acme.cl', 'http://localhost:3000', '*']\n",
    ).routes["default"]
    assert route.body_timeout_seconds == 2.5
    assert route.cors_origins == ("https://acme.cl", "http://localhost:3000", "*")
    assert config.load(ENV).routes["default"].body_timeout_seconds == 10


@pytest.mark.parametrize(("value", "hops"), [(None, 1), ("2", 2), (" 0 ", 0), ("5", 5)])
def test_trusted_proxy_hops(value: str | None, hops: int) -> None:
    env = ENV if value is None else {**ENV, "FORMCALL_TRUSTED_PROXY_HOPS": value}
    assert config.load(env).trusted_proxy_hops == hops


@pytest.mark.parametrize("value", ["-1", "two", "1.5", "6", "\u0662"])
def test_bad_trusted_proxy_hops_is_a_config_error(value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        config.load({**ENV, "FORMCALL_TRUSTED_PROXY_HOPS": value})
    assert caught.value.key == "FORMCALL_TRUSTED_PROXY_HOPS"
    assert "load balancer" in caught.value.problem


@pytest.mark.parametrize(
    ("spanish", "english"),
    [
        ("lun-vie 9:00-19:00, sáb 10:00-14:00", "mon-fri 09:00-19:00, sat 10:00-14:00"),
        ("LUN-MIÉ 8:30-13:00, jue-vie 14:00-18:00", "mon-wed 08:30-13:00, thu-fri 14:00-18:00"),
        ("mie 9:00-10:00, sab-dom 0:00-24:00", "wed 09:00-10:00, sat-sun 00:00-24:00"),
        ("vie-lun 9:00-12:00", "fri-mon 09:00-12:00"),
    ],
)
def test_service_hours_in_spanish_and_without_a_leading_zero(tmp_path: Path, spanish: str, english: str) -> None:
    def week(hours: str) -> object:
        text = f"[routes.default]\npopup_uuid = '{POPUP}'\nretry = {{ service_hours = '{hours}' }}\n"
        retry = load_text(tmp_path, text).routes["default"].retry
        assert retry is not None and retry.service_hours is not None
        return retry.service_hours.week

    assert week(spanish) == week(english)


def test_every_problem_of_a_file_in_one_load(tmp_path: Path) -> None:
    with pytest.raises(ConfigErrors) as caught:
        load_text(
            tmp_path,
            f"[defaults]\nregion = 'ZZ'\n[routes.a]\npopup_uuid = '{POPUP}'\ncaptcha = {{ provider = 'x' }}\n"
            f"[routes.b]\npopup_uuid = 'nope'\nrate_limt = false\n[leads]\nkeep_days = 0\n",
        )
    keys = [(err.key, err.problem) for err in caught.value.errors]
    assert [key for key, _ in keys] == [
        "defaults.region",
        "routes.a.captcha.provider",
        "routes.b.rate_limt",
        "routes.b.popup_uuid",
        "leads.keep_days",
    ]
    assert keys[2][1] == "unknown key; did you mean `rate_limit`?"
    # As a ConfigError, it is the first problem, as before.
    assert (caught.value.key, str(caught.value).splitlines()[0]) == (
        "defaults.region",
        f"{tmp_path / 'formcall.toml'}: defaults.region: 'ZZ' is not a region code such as CL",
    )


def test_the_hash_key_comes_from_formcall_hash_key_when_the_config_names_none(tmp_path: Path) -> None:
    """Spec 10: zero-config deploys get a key (deploy.sh's FORMCALL_HASH_KEY secret); a file's own wins."""
    popup = "e5c98214-d0f6-11e1-8c30-001d09ef4a24"
    env = {"FORMCALL_POPUP_UUID": popup, "FORMCALL_HASH_KEY": "k"}
    assert config.load(env).leads.hash_key == "env:FORMCALL_HASH_KEY"
    assert config.load({"FORMCALL_POPUP_UUID": popup}).leads.hash_key is None
    path = tmp_path / "f.toml"
    path.write_text(f'[leads]\nhash_key = "env:OWN"\n[routes.default]\npopup_uuid = "{popup}"\n')
    assert config.load(env, path).leads.hash_key == "env:OWN"
