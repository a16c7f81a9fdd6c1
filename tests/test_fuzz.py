"""Fuzzing the real HTTP path: whatever arrives, the answer is one that README's Answers table allows.

One functions-framework process serves a config with every kind of route, against the FormCall simulator
(which now and then answers with an error code or a fault). Hypothesis draws paths, methods, headers and
bodies and sends them with http.client, which sends exactly the bytes given. Every answer is checked
against the table; at the end the process must still serve and its log must be clean.

`make test` runs the short, derandomized "ci" profile; `make fuzz` the long "fuzz" one (tests/conftest.py).
"""

from __future__ import annotations

import base64
import http.client
import itertools
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, quote_plus, unquote, urlencode, urlsplit

import phonenumbers
import pytest
from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st

from formcall_webhook.simulator import Simulator
from tests.fakes.captcha import FakeSiteverify
from tests.harness import FunctionProcess, forbidden_in_logs
from tests.signing import basic, hubspot_v3, standard_webhooks, whsec

# The fuzz suite: hundreds of requests through a functions-framework process.
pytestmark = pytest.mark.slow

POPUP = "e5c98214-d0f6-11e1-8c30-001d09ef4a24"
CLOSED_POPUP = "0c1b2a39-0000-4000-8000-00000000c105"  # the simulator keeps it out of service hours
PENDING_POPUP = "0c1b2a39-0000-4000-8000-0000000090e4"  # out of hours, keeps calls pending
TOKEN = "formcall-fuzz-token-5e2a"
SIMULATOR_TOKENS = (TOKEN,)  # the tokens the module's simulator accepts (tests/conftest.py)
ZAPIER_TOKEN = "zap-fuzz-token-91b0"
HUBSPOT_SECRET = "hs-fuzz-secret-7c3d"
BASIC_PASSWORD = "b4sic-fuzz-pass-2f8e"
WHSEC = whsec(b"fuzz-standard-webhooks-key")
CAPTCHA_SECRET = "0x4AAAAAAA-fuzz-captcha"
PUBLIC_URL = "https://southamerica-west1-acme.cloudfunctions.net/formcall-webhook/hubspot"
SECRETS = {
    "ZAPIER_TOKEN": ZAPIER_TOKEN,
    "HUBSPOT_APP_SECRET": HUBSPOT_SECRET,
    "BASIC_PASSWORD": BASIC_PASSWORD,
    "SW_SECRET": WHSEC,
    "CAPTCHA_SECRET": CAPTCHA_SECRET,
}
SUCCESS_URL = "https://acme.cl/gracias"
FAILURE_URL = "https://acme.cl/error?from=form"
REQUEST_TIMEOUT = 30

CONFIG = """
[defaults]
popup_uuid = "@POPUP@"
# The public routes' default limits (spec 2) would refuse the fuzzer's volume from one address; the
# "limited" route keeps limits of its own, and tests/test_abuse.py covers the defaults.
rate_limit = false

[routes.default]

[routes.templated]
popup_uuid = "{{ {'cerrado': '@CLOSED@', 'pendiente': '@PENDING@'}.get(sucursal, '@POPUP@') }}"
phone_parts = { country_code = "{{ cc or '56' }}", areacode = "{{ area }}", phonenumber = "{{ numero | digits }}" }
dedupe = { key = "{{ lead.e164 }}|{{ ref }}", window_seconds = 5 }

[routes.templated.adicional]
Nombre = "{{ nombre }} {{ apellido }}"
Email = "{{ email }}"
Origen = "Landing fuzz"
Fuente = "{{ headers['x-source'] }}"
Dato = "{{ (data_json | fromjson).phone_number[0] }}"
Rut = "{{ rut | digits }}"
Campania = "{{ query.utm_source }}"

[routes.mapped]
phone = "{{ telefono or phone or properties.phone.value }}"
allowed_regions = ["CL", "AR"]
allowed_number_types = ["MOBILE", "FIXED_LINE", "FIXED_LINE_OR_MOBILE", "TOLL_FREE"]

[routes.token]
auth = { type = "token", secret = "env:ZAPIER_TOKEN" }
allow_get = true

[routes.hubspot]
auth = { type = "hubspot", secret = "env:HUBSPOT_APP_SECRET", public_url = "@PUBLIC_URL@" }
phone = "{{ properties.mobilephone.value or properties.phone.value }}"
# README's own example of a popup chosen by a field.
popup_uuid = "{{ {'santiago': '@POPUP@', 'cerrado': '@CLOSED@'}.get(properties.sucursal.value, '@OTHER@') }}"
dedupe = { key = "{{ vid }}", window_seconds = 3600 }

[routes.sw]
auth = { type = "standard_webhooks", secret = "env:SW_SECRET" }

[routes.basic]
auth = { type = "basic", username = "zapier", password = "env:BASIC_PASSWORD" }

[routes.getter]
allow_get = true
cors_origins = ["*"]

[routes.tiny]
max_body_bytes = 256

[routes.dry]
dry_run = true
adicional_max_length = 40

[routes.dry.adicional]
Nombre = "{{ nombre }}"
Todo = "{{ body }}"

[routes.form]
honeypot = "_gotcha"
cors_origins = ["https://acme.cl", "https://www.acme.cl"]
redirect = { success = "@SUCCESS@", failure = "@FAILURE@" }

[routes.limited]
rate_limit = { per_ip = "5/minute", per_phone = "2/day" }

[routes.captcha]
captcha = { provider = "turnstile", secret = "env:CAPTCHA_SECRET", verify_url = "@CAPTCHA_URL@" }
"""


@dataclass(frozen=True)
class RouteSpec:
    """What the test needs to know of a route in CONFIG to predict the first steps of its answer."""

    auth: str = "none"
    allow_get: bool = False
    max_body_bytes: int = 65536
    redirect: bool = False
    cors: tuple[str, ...] = ()


ROUTES = {
    "default": RouteSpec(),
    "templated": RouteSpec(),
    "mapped": RouteSpec(),
    "token": RouteSpec(auth="token", allow_get=True),
    "hubspot": RouteSpec(auth="hubspot"),
    "sw": RouteSpec(auth="standard_webhooks"),
    "basic": RouteSpec(auth="basic"),
    "getter": RouteSpec(allow_get=True, cors=("*",)),
    "tiny": RouteSpec(max_body_bytes=256),
    "dry": RouteSpec(),
    "form": RouteSpec(redirect=True, cors=("https://acme.cl", "https://www.acme.cl")),
    "limited": RouteSpec(),
    "captcha": RouteSpec(),
}

# The Answers table: every status the function may answer, and the error words each one may carry.
ERRORS_BY_STATUS: dict[int, set[str]] = {
    400: {"bad_request"},
    401: {"unauthorized"},
    403: {"captcha_failed"},
    404: {"unknown_route"},
    405: {"method_not_allowed"},
    409: {"out_of_service_hours"},
    413: {"payload_too_large"},
    415: {"unsupported_media_type"},
    422: {"phone_missing", "invalid_phone", "region_not_allowed", "number_type_not_allowed", "formcall_rejected"},
    429: {"rate_limited"},
    500: {"misconfigured"},
    502: {"origination_failed", "formcall_misconfigured"},
    503: {"formcall_unavailable"},
}
ERROR_WORDS = set().union(*ERRORS_BY_STATUS.values())
STATUSES = {200, 202, 204, 303, *ERRORS_BY_STATUS}
RETRY_AFTER_STATUSES = {429, 502, 503}
# functions-framework (Flask routing) answers these paths with its own HTML 404 before the function runs: two
# fixed paths, and any path holding a newline (%0A), which its "/<path:path>" rule does not match.
FRAMEWORK_PATHS = {"/robots.txt", "/favicon.ico"}


def framework_answers(path: str) -> bool:
    decoded = unquote(path, errors="replace")
    return decoded in FRAMEWORK_PATHS or "\n" in decoded


# Headers whose bytes frame the request: http.client writes them from what it is given.
FRAMING_HEADERS = {"content-length", "transfer-encoding", "host", "connection", "expect", "te", "upgrade", "trailer"}
AUTH_HEADERS = {
    "x-webhook-token",
    "authorization",
    "x-hubspot-signature-v3",
    "x-hubspot-request-timestamp",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
}

# Numbers the strategies produced, written the way they could leak (E.164 digits): never in the log.
NUMBERS: set[str] = set()
SEEN_500: list[str] = []


# -- the function under test --


@pytest.fixture(scope="module")
def siteverify() -> Iterator[FakeSiteverify]:
    fake = FakeSiteverify(CAPTCHA_SECRET).start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def fn(
    tmp_path_factory: pytest.TempPathFactory, simulator: Simulator, siteverify: FakeSiteverify
) -> Iterator[FunctionProcess]:
    workdir = tmp_path_factory.mktemp("fuzz")
    config = workdir / "formcall.toml"
    text = CONFIG
    for placeholder, value in {
        "@POPUP@": POPUP,
        "@CLOSED@": CLOSED_POPUP,
        "@PENDING@": PENDING_POPUP,
        "@PUBLIC_URL@": PUBLIC_URL,
        "@SUCCESS@": SUCCESS_URL,
        "@FAILURE@": FAILURE_URL,
        "@CAPTCHA_URL@": siteverify.url,
        "@OTHER@": "f0e1d2c3-0000-4000-8000-000000000001",
    }.items():
        text = text.replace(placeholder, value)
    config.write_text(text, encoding="utf-8")
    env = {
        "FORMCALL_CONFIG": str(config),
        "FORMCALL_API_URL": simulator.api_url,
        "FORMCALL_SECURITY_TOKEN": TOKEN,
        **SECRETS,
    }
    process = FunctionProcess(env, workdir / "function.log").start()
    yield process
    process.stop()


def prepare_simulator(simulator: Simulator, fault: dict[str, Any] | None) -> None:
    """Each example starts from the same simulator state, so a failure replays the same way."""
    simulator.reset()
    simulator.set_popup(CLOSED_POPUP, in_service_hours=False)
    simulator.set_popup(PENDING_POPUP, in_service_hours=False, keep_pending=True)
    if fault is not None:
        simulator.inject(fault)


# -- what is sent --


@dataclass
class Sent:
    """One HTTP request, exactly as written on the wire, and what the test predicts of its route."""

    method: str
    path: str
    query: str
    headers: list[tuple[str, str]]
    body: bytes
    chunked: bool = False
    creds: bool = False  # valid credentials for the route's auth are attached
    kind: str = ""

    @property
    def target(self) -> str:
        return f"{self.path}?{self.query}" if self.query else self.path

    @property
    def route(self) -> str | None:
        name = unquote(self.path, errors="replace").strip("/") or "default"
        return name if name in ROUTES else None

    def header(self, name: str) -> str | None:
        found = [value for key, value in self.headers if key.lower() == name]
        return found[-1] if found else None

    def __repr__(self) -> str:
        body = self.body if len(self.body) <= 2000 else self.body[:2000] + b"...(%d bytes)" % len(self.body)
        headers = [(k, v if len(v) <= 300 else f"{v[:300]}...({len(v)} chars)") for k, v in self.headers]
        target = self.target if len(self.target) <= 500 else f"{self.target[:500]}...({len(self.target)} chars)"
        return (
            f"Sent(kind={self.kind!r}, method={self.method!r}, target={target!r}, headers={headers!r}, "
            f"chunked={self.chunked}, creds={self.creds}, body={body!r})"
        )


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    json: Any = field(default=None)


def send(fn: FunctionProcess, sent: Sent) -> Answer:
    conn = http.client.HTTPConnection("127.0.0.1", fn.port, timeout=REQUEST_TIMEOUT)
    try:
        conn.putrequest(sent.method, sent.target, skip_accept_encoding=True)
        for name, value in sent.headers:
            conn.putheader(name, value.encode("latin-1"))
        if sent.chunked:
            conn.putheader("Transfer-Encoding", "chunked")
            conn.endheaders(sent.body, encode_chunked=True)
        else:
            conn.putheader("Content-Length", str(len(sent.body)))
            conn.endheaders(sent.body)
        response = conn.getresponse()
        raw = response.read()
        headers = {k.lower(): v for k, v in response.getheaders()}
        return Answer(response.status, headers, raw)
    finally:
        conn.close()


# -- strategies: text --

# Characters that break naive code: NUL, controls, RTL overrides, BOM, line separators, combining marks,
# emoji with ZWJ, digits that are not ASCII (Arabic-Indic, fullwidth, superscript), quotes and brackets.
SPECIAL_CHARS = (
    "\x00\x01\x1f\x7f\t\n\r\u0085\u00a0\u00ad\u200b\u200d\u200e\u200f\u202a\u202e\u2066\u2028\u2029\ufeff\ufffd"
    "\u0301\u0644\u05d0\u0627\U0001f600\U0001f468\u200d\U0001f469\U0001f3fd\u0660\u0669\uff10\uff19\u00b2\u00b9"
    "\u00e9\u00f1\u00d1\u00fc\"'\\[]{}<>&%=+;:,/?#@$"
)
SURROGATES = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF, categories=["Cs"])
# Lone surrogates (JSON "\ud800") too: the function turns them into U+FFFD when it parses.
LONE_SURROGATES = True
# (st.characters() draws surrogates too; codec="utf-8" leaves them out.)
CHARS = (
    st.one_of(st.characters(), st.sampled_from(SPECIAL_CHARS), SURROGATES)
    if LONE_SURROGATES
    else st.one_of(st.characters(codec="utf-8"), st.sampled_from(SPECIAL_CHARS))
)
TEXT = st.text(CHARS, max_size=24)
# Header values: what HTTP allows on the wire (VCHAR, obs-text, space, tab), as latin-1.
HEADER_CHARS = "".join(map(chr, range(0x20, 0x7F))) + "\t" + "".join(map(chr, range(0x80, 0x100)))


@st.composite
def repeated(draw: st.DrawFn, alphabet: st.SearchStrategy[str], low: int, high: int) -> str:
    """A long string made cheaply: a short unit repeated up to a drawn length."""
    unit = draw(st.text(alphabet, min_size=1, max_size=6))
    length = draw(st.integers(low, high))
    return (unit * (length // len(unit) + 1))[:length]


HUGE_TEXT = repeated(CHARS, 1_000, 100_000)
HEADER_TEXT = st.one_of(
    st.text(st.sampled_from(HEADER_CHARS), max_size=60),
    repeated(st.sampled_from(HEADER_CHARS), 1_000, 7_000),  # gunicorn refuses a header line over 8190 bytes
)
ODD_KEYS = st.one_of(
    st.sampled_from(
        [
            "a[", "[]", "a[]", "a[b][]", "a[b][c]", "]a[", "%00", "\x00", "__", "a__b", "properties__phone__value",
            "fields[phone][value]", "fields[phone]", "phone[]", "phone[0]", "a" * 300, "[" * 40, "a" + "[b]" * 40,
            "", " ", "query", "body", "headers", "route", "lead", "__class__", "__init__", "constructor", "toString",
            "telefono", "Teléfono", "your-phone", "q4_phoneNumber", "PHONE", "nombre", "email", "_gotcha",
        ]
    ),
    TEXT,
)  # fmt: skip


# -- strategies: phone numbers --


# Local parts of valid Chilean mobiles (+56 9 XXXX XXXX); most, not all, eight-digit blocks are assigned.
def _is_mobile(local: str) -> bool:
    return bool(phonenumbers.is_valid_number(phonenumbers.parse(f"+569{local}")))


_FRESH_LOCALS = (
    local for local in (str(40_000_000 + (k * 7_919) % 50_000_000) for k in itertools.count(1)) if _is_mobile(local)
)

MOBILE_LOCAL = st.integers(40_000_000, 89_999_999).map(str).filter(_is_mobile)
VALID_FORMATS = [
    "+56 9 {a} {b}", "9 {a} {b}", "(+56) 9-{a}.{b}", "56 9 {a} {b}", "0056 9 {a} {b}", "09 {a} {b}",
    "+56 09 {a} {b}", "+569{l}", "569{l}", "9{l}", "  +56 9 {a}{b}  ", "+56-9-{l}", "+56 (9) {a} {b}",
]  # fmt: skip
NEAR_FORMATS = [
    "+56 9 {a} {b3}", "+56 9 {a} {b}1", "+56 8 {l}", "+56 0 {l}", "+56 1 {l}", "9 {a}", "{l}", "+{l}", "+56{l}",
    "+56 9 {a} {b} ext. 12", "tel:+569{l}", "+56 9 {a} {b}\x00", "\u202e+56 9 {a} {b}", "+56\u00a09\u00a0{a}\u00a0{b}",
    "+٥٦ ٩ {a} {b}", "＋５６ ９ {a} {b}", "+56 9 {a}-{b}-{b}", "+56 9 {a}{b}" + "0" * 60,
]  # fmt: skip
OTHER_NUMBERS = [
    "+54 9 11 2345 6789", "+1 202 555 0143", "+56 600 123 4567", "+56 800 123 456", "+56 44 123 4567",
    "+56 2 2123 4567", "+56 32 212 3456", "+44 9 0979 0000", "+56 9", "12", "", "   ", "+", "++56", "0" * 65,
    "00", "0056", "+00 9 6123 4567", "+999 1234567", "1e10", "NaN", "None", "null", "[]", "{}",
]  # fmt: skip


def _typed(fmt: str, local: str) -> str:
    NUMBERS.add(f"569{local}")
    return fmt.format(l=local, a=local[:4], b=local[4:], b3=local[4:7])


VALID_PHONE = st.builds(_typed, st.sampled_from(VALID_FORMATS), MOBILE_LOCAL)
NEAR_PHONE = st.builds(_typed, st.sampled_from(NEAR_FORMATS), MOBILE_LOCAL)
ODD_PHONE = st.one_of(
    MOBILE_LOCAL.map(lambda local: int(_typed("569{l}", local))),
    st.integers(),
    st.floats(),
    st.booleans(),
    st.none(),
    st.lists(VALID_PHONE, max_size=3),
    VALID_PHONE.map(lambda p: {"value": p}),
    MOBILE_LOCAL.map(lambda local: {"area": "9", "phone": _typed("{l}", local)}),
    VALID_PHONE.map(lambda p: {"full": p}),
    st.dictionaries(TEXT, st.one_of(VALID_PHONE, TEXT), max_size=3),
    HUGE_TEXT,
)
PHONES = st.one_of(VALID_PHONE, VALID_PHONE, NEAR_PHONE, st.sampled_from(OTHER_NUMBERS), ODD_PHONE, TEXT)
PHONE_KEYS = st.sampled_from(
    [
        "telefono", "phone", "Teléfono", "celular", "mobile", "your-phone", "fono", "tel", "whatsapp",
        "phone_1", "Phone Number", "fields[phone][value]", "q4_phoneNumber", "properties__phone__value",
        "telefono[]", "PHONE", "móvil",
    ]
)  # fmt: skip


# -- strategies: JSON values, deep and wide --


@dataclass(frozen=True)
class Deep:
    """A JSON text nested `depth` levels: built as text, too deep to be a Python object here."""

    depth: int
    shape: str
    leaf: str

    def text(self) -> str:
        leaf = json.dumps(self.leaf)
        if self.shape == "list":
            return "[" * self.depth + leaf + "]" * self.depth
        if self.shape == "dict":
            return '{"phone":' * self.depth + leaf + "}" * self.depth
        half = self.depth // 2
        return '[{"value":' * half + leaf + "}]" * half


DEEP = st.builds(
    Deep,
    # Around the interpreter's recursion limit (1000) is where parsers and printers differ.
    depth=st.one_of(st.integers(50, 5000), st.integers(850, 1100)),
    shape=st.sampled_from(["list", "dict", "mixed"]),
    leaf=st.one_of(VALID_PHONE, st.just("x")),
)


@st.composite
def wide(draw: st.DrawFn) -> dict[str, Any]:
    count = draw(st.integers(1_000, 6_000))
    prefix = draw(st.sampled_from(["k", "phone_", "telefono", "nombre", "a[", "x__"]))
    value = draw(st.one_of(st.just(""), VALID_PHONE, st.integers()))
    return {f"{prefix}{i}": value for i in range(count)}


SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), TEXT)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(ODD_KEYS, inner, max_size=4)),
    max_leaves=6,
)
BIG_VALUES = st.one_of(DEEP, wide(), HUGE_TEXT)


# What the routes' templates read, with any shape a sender may give them. (Strategies are built once, here:
# building them inside a composite on every draw costs more than the HTTP round trip.)
# Any shape where README's popup template looks a key up: a list there is a 400, never a 500.
SUCURSAL = st.one_of(st.sampled_from(["santiago", "cerrado", "pendiente"]), JSON_VALUES)
TEMPLATE_FIELDS = {
    "nombre": st.one_of(TEXT, JSON_VALUES),
    "apellido": st.one_of(TEXT, JSON_VALUES),
    "email": st.one_of(st.just("ana@example.cl"), TEXT, JSON_VALUES),
    "sucursal": SUCURSAL,
    "data_json": st.one_of(VALID_PHONE.map(lambda p: json.dumps({"phone_number": [p]})), TEXT, JSON_VALUES),
    "rut": st.one_of(st.just("12.345.678-5"), JSON_VALUES),
    "ref": JSON_VALUES,
    "vid": st.one_of(st.integers(), TEXT, JSON_VALUES),
    "_gotcha": st.one_of(st.sampled_from(["", " ", "http://spam.example"]), JSON_VALUES),
    "cf-turnstile-response": st.one_of(
        st.sampled_from(["pass", "fail", "score:0.1", "score:0.9", "", " pass "]),
        st.lists(st.sampled_from(["pass", "fail"]), max_size=2),
    ),
}
TEMPLATE_FIELD_NAMES = st.lists(st.sampled_from(sorted(TEMPLATE_FIELDS)), max_size=4, unique=True)
PHONE_PARTS = st.tuples(st.sampled_from(["56", "+56", "", "0", "1"]), MOBILE_LOCAL, st.one_of(st.none(), SCALARS))
HUBSPOT_SHAPED = st.tuples(PHONES, SUCURSAL)
NOISE = st.lists(st.tuples(ODD_KEYS, JSON_VALUES), max_size=3)
BIG_FIELD = st.tuples(st.one_of(PHONE_KEYS, ODD_KEYS), BIG_VALUES)


@st.composite
def submissions(draw: st.DrawFn) -> list[tuple[str, Any]]:
    """A lead as fields: a phone (valid, near, odd), the names routes read, and noise."""
    fields: list[tuple[str, Any]] = []
    if draw(st.integers(0, 9)) < 8:
        fields.append((draw(PHONE_KEYS), draw(PHONES)))
    for name in draw(TEMPLATE_FIELD_NAMES):
        fields.append((name, draw(TEMPLATE_FIELDS[name])))
    if draw(st.integers(0, 3)) == 0:  # the templated route's phone_parts
        cc, local, odd = draw(PHONE_PARTS)
        fields += [("cc", cc), ("area", "9"), ("numero", _typed("{a} {b}", local) if odd is None else odd)]
    if draw(st.integers(0, 3)) == 0:  # HubSpot-shaped
        phone, sucursal = draw(HUBSPOT_SHAPED)
        fields.append(("properties", {"phone": {"value": phone}, "sucursal": {"value": sucursal}}))
    fields += draw(NOISE)
    if draw(st.integers(0, 5)) == 0:
        fields.append(draw(BIG_FIELD))
    return draw(st.permutations(fields))


# -- strategies: bodies and content types --


def json_text(value: Any, ensure_ascii: bool) -> str:
    """json.dumps, with Deep values spliced in as text."""
    deep: dict[str, Deep] = {}

    def swap(node: Any) -> Any:
        if isinstance(node, Deep):
            marker = f"\x00deep{len(deep)}\x00"
            deep[json.dumps(marker)] = node
            return marker
        if isinstance(node, dict):
            return {k: swap(v) for k, v in node.items()}
        if isinstance(node, list):
            return [swap(v) for v in node]
        return node

    text = json.dumps(swap(value), ensure_ascii=ensure_ascii)
    for marker, node in deep.items():
        text = text.replace(marker, node.text())
    return text


def form_value(value: Any) -> str:
    if isinstance(value, Deep):
        return value.text()
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    return json_text(value, ensure_ascii=False) if isinstance(value, (dict, list)) else str(value)


def form_pairs(fields: list[tuple[str, Any]], brackets: bool) -> list[tuple[str, str]]:
    """Fields as a browser or PHP library would flatten them."""
    pairs: list[tuple[str, str]] = []
    for key, value in fields:
        if brackets and isinstance(value, dict) and not isinstance(value, Deep):
            pairs += form_pairs([(f"{key}[{k}]", v) for k, v in value.items()], brackets)
        elif isinstance(value, list):
            pairs += [(f"{key}[]" if brackets else key, form_value(v)) for v in value] or [(key, "")]
        else:
            pairs.append((key, form_value(value)))
    return pairs


# Multipart parts without a usable name too: they are skipped.
NAMELESS_PARTS = True
BOUNDARY = st.from_regex(r"\A[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]\Z")
JSON_TYPES = [
    "application/json", "application/json; charset=utf-8", "Application/JSON", "application/vnd.api+json",
    "application/json; charset=latin-1", 'application/json; charset="utf-8"', "application/json;;;charset",
    "application/json; charset=garbage; boundary=x", "text/plain", "text/plain;charset=UTF-8",
]  # fmt: skip
FORM_TYPES = [
    "application/x-www-form-urlencoded", "application/x-www-form-urlencoded; charset=ISO-8859-1",
    "APPLICATION/X-WWW-FORM-URLENCODED", "application/x-www-form-urlencoded;charset=utf-8;foo",
]  # fmt: skip
OTHER_TYPES = [
    "application/xml", "text/xml", "text/html", "application/octet-stream", "*/*", "", ";", "garbage",
    "application/json, text/plain", "multipart/form-data", "multipart/form-data; boundary=",
    "multipart/mixed; boundary=x",
    "image/png", "application/x-www-form-urlencoded/json", "text/plain; charset=utf-16",
]  # fmt: skip
ANY_TYPE = st.one_of(st.sampled_from(JSON_TYPES + FORM_TYPES + OTHER_TYPES), st.text(st.sampled_from(HEADER_CHARS)))
BODY_KINDS = st.sampled_from(["json"] * 5 + ["form"] * 3 + ["multipart"] * 2 + ["text", "xml", "raw", "empty"])
JSON_TOPS = st.sampled_from(["object"] * 8 + ["list", "scalar", "deep", "broken"])
JSON_ENCODINGS = st.sampled_from(["utf-8"] * 6 + ["utf-16", "utf-32", "utf-8-sig"])
QUOTE_VIA = st.sampled_from([quote, quote_plus])
FORM_EXTRAS = st.lists(st.sampled_from(["&", "=", "&&", "a=1&a=2", "%zz", "%", "%00=%00", "a[b]=1&a=2", "+"]))
TEXT_BYTES = TEXT.map(lambda t: t.encode("utf-8", "surrogatepass"))
TEXT_TYPES = ["text/plain", "text/plain; charset=utf-8", ""]
XML_TYPES = ["application/xml", "text/xml"]
ALL_TYPES = JSON_TYPES + FORM_TYPES + OTHER_TYPES
SAMPLED_TYPES = {
    id(types): st.sampled_from(types)
    for types in (JSON_TYPES, FORM_TYPES, OTHER_TYPES, TEXT_TYPES, XML_TYPES, ALL_TYPES)
}
EMPTY_BODIES = st.sampled_from([b"", b" ", b"\r\n", b"\x00"])


@st.composite
def bodies(draw: st.DrawFn) -> tuple[str, bytes, str | None]:
    """(kind, body, Content-Type or None): mostly a sensible pairing, sometimes a mismatched one."""
    kind = draw(BODY_KINDS)
    fields = draw(submissions())
    matching: list[str]
    if kind == "json":
        top = draw(JSON_TOPS)
        value: Any = dict(fields)
        if top == "list":
            value = [value]
        elif top == "scalar":
            value = draw(SCALARS)
        elif top == "deep":
            value = draw(DEEP)
        text = json_text(value, ensure_ascii=draw(st.booleans()))
        if top == "broken":
            text = text[: draw(st.integers(0, max(0, len(text) - 1)))]
        encoding = draw(JSON_ENCODINGS)
        body = text.encode(encoding, "surrogatepass")
        matching = JSON_TYPES
    elif kind in ("form", "text"):
        pairs = form_pairs(fields, brackets=draw(st.booleans()))
        latin = draw(st.integers(0, 4)) == 0
        quote_via = draw(QUOTE_VIA)
        text = urlencode(
            pairs,
            quote_via=quote_via,
            encoding="latin-1" if latin else "utf-8",
            errors="xmlcharrefreplace" if latin else "surrogatepass",
        )
        extra = draw(FORM_EXTRAS)
        body = (text + "".join(extra)).encode("ascii")
        if kind == "text":  # text/plain that is not JSON
            if draw(st.booleans()):
                body = draw(TEXT_BYTES)
            matching = TEXT_TYPES
        else:
            matching = FORM_TYPES
    elif kind == "multipart":
        boundary = draw(BOUNDARY)
        parts = []
        for key, value in form_pairs(fields, brackets=draw(st.booleans())):
            if not NAMELESS_PARTS and any(c in key for c in '"\\\r\n'):
                continue
            nameless = NAMELESS_PARTS and draw(st.integers(0, 9)) == 0
            disposition = "form-data" if nameless else f'form-data; name="{key}"'
            if draw(st.integers(0, 9)) == 0:
                disposition += '; filename="lead.txt"'
            head = f"Content-Disposition: {disposition}\r\n"
            if draw(st.integers(0, 9)) == 0:
                head += "Content-Type: text/plain; charset=utf-8\r\n"
            parts.append(
                f"--{boundary}\r\n{head}\r\n".encode("utf-8", "surrogatepass") + value.encode("utf-8", "surrogatepass")
            )
        body = b"\r\n".join(parts) + (f"\r\n--{boundary}--\r\n".encode() if parts else f"--{boundary}--\r\n".encode())
        if draw(st.integers(0, 5)) == 0:
            body = body[: draw(st.integers(0, len(body)))]
        header_boundary = boundary if draw(st.booleans()) else draw(BOUNDARY)
        quoted = f'"{header_boundary}"' if draw(st.booleans()) or " " in header_boundary else header_boundary
        matching = [f"multipart/form-data; boundary={quoted}", f"multipart/form-data; charset=utf-8; boundary={quoted}"]
    elif kind == "xml":
        phone = next((v for k, v in fields if isinstance(v, str)), "")
        body = f"<?xml version='1.0'?><lead><telefono>{phone}</telefono></lead>".encode("utf-8", "surrogatepass")
        matching = XML_TYPES
    elif kind == "raw":
        body = draw(st.binary(max_size=300))
        matching = OTHER_TYPES
    else:
        body = draw(EMPTY_BODIES)
        matching = ALL_TYPES
    choice = draw(st.integers(0, 9))
    if choice < 7:
        known = SAMPLED_TYPES.get(id(matching))
        content_type: str | None = draw(known if known is not None else st.sampled_from(matching))
    elif choice < 9:
        content_type = draw(ANY_TYPE)
    else:
        content_type = None
    return kind, body, content_type


# -- strategies: paths, queries, headers --

BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
ACCEPTS = [
    "application/json", "*/*", "text/html", BROWSER_ACCEPT, "text/html;q=0.1, application/json", "text/html;q=abc",
    "application/json;q=0, text/html", "", "garbage;;;q=", "text/*", "TEXT/HTML", "text/html, application/json",
]  # fmt: skip
ORIGINS = ["https://acme.cl", "https://www.acme.cl", "https://evil.example", "null", "https://acme.cl.evil.example", ""]
FORWARDED = [
    "203.0.113.7", "10.0.0.1, 198.51.100.9", "::1", "2001:db8::1", "garbage", ", ,", "1.2.3.4, ", "999.1.1.1",
    "unknown", "198.51.100.1:8080", "[2001:db8::1]:443", ", ".join(f"10.0.{i}.1" for i in range(300)),
]  # fmt: skip


def _path_for(name: str, variant: int) -> str:
    if variant == 0 or not name:
        return "/" + name
    if variant == 1:
        return f"/{name}/"
    if variant == 2:
        return f"//{name}"
    if variant == 3:
        return f"/{name}//"
    # One character percent-encoded: the function sees the decoded path.
    return "/" + "".join(f"%{ord(c):02X}" if i == len(name) // 2 else c for i, c in enumerate(name))


ODD_PATHS = [
    "/FORM", "/Default", "/form.", "/..", "/.", "/%2e%2e/%2e%2e", "/form/extra", "/a//b", "/%00", "/%zz", "/%",
    "/default%2F", "/%2Fform", "/form%2Fx", "/%20form", "/form%20", "/form;x=1", "/~", "/./form", "/form/.",
    "/robots.txt/", "/%ed%a0%80", "/%ff%fe", "/%C0%AF", "/" + quote("ﬁ"), "/" + quote("\u202edefault"),
]  # fmt: skip


KNOWN_PATHS = st.builds(_path_for, st.sampled_from(["", *ROUTES]), st.sampled_from([0, 0, 0, 0, 0, 1, 2, 3, 4]))
ODD_PATH = st.one_of(st.sampled_from(ODD_PATHS), TEXT.map(lambda t: "/" + quote(t, safe="/", errors="surrogatepass")))
LONG_PATH = st.builds(
    lambda unit, count: "/" + quote(unit * count, safe="/%"),
    st.sampled_from(["a", "ñ", "../", "%2e", "😀", "/", "default/"]),
    st.integers(100, 3000),
)


@st.composite
def paths(draw: st.DrawFn) -> str:
    choice = draw(st.integers(0, 19))
    path = draw(KNOWN_PATHS if choice < 16 else ODD_PATH if choice < 19 else LONG_PATH)
    return path if not framework_answers(path) else "/framework-path"


QUERY_EXTRAS = ["", "&", "a[b][]=1&a[b][]=2", "%00=%00", "%zz", "token=", "token=wrong", "utm_source=fuzz", "x" * 2000]
WIDE_QUERY = st.integers(900, 3000).map(lambda n: "&".join(f"k{i}=1" for i in range(n)))


SAFE_QUERY_PAIRS = st.lists(
    st.tuples(st.from_regex(r"\A[a-z]{1,8}\Z"), st.from_regex(r"\A[a-z0-9]{0,8}\Z")), max_size=3
)
QUERY_PAIRS = st.lists(st.tuples(st.one_of(ODD_KEYS, PHONE_KEYS), st.one_of(TEXT, PHONES.map(str))), max_size=4)
QUERY_EXTRA_LIST = st.lists(st.one_of(st.sampled_from(QUERY_EXTRAS), WIDE_QUERY), max_size=2)


@st.composite
def queries(draw: st.DrawFn, safe: bool = False) -> str:
    if safe:  # what a HubSpot workflow sends: plain names and values
        return "&".join(f"{k}={v}" for k, v in draw(SAFE_QUERY_PAIRS) if k != "token")
    if draw(st.integers(0, 2)) == 0:
        return ""
    text = urlencode(draw(QUERY_PAIRS), quote_via=draw(QUOTE_VIA), errors="surrogatepass")
    extras = draw(QUERY_EXTRA_LIST)
    return "&".join(p for p in [text, *extras] if p)


def cap_query(query: str) -> str:
    """Queries of any length: over 1000 fields is a 400."""
    return query


HEADER_NAMES = st.from_regex(r"\A[A-Za-z0-9!#$%&'*+.^_`|~-]{1,30}\Z").filter(
    lambda n: n.lower() not in FRAMING_HEADERS | AUTH_HEADERS | {"content-type"}
)
# Superscripts are digits to str.isdigit() but not to int(); 309 digits overflow a float, 4301 int().
DIGIT_LIKE = "0123456789\u00b2\u00b3\u00b9"


def crashes_timestamp(value: str) -> bool:
    """Every digit-like timestamp is tried: superscripts and huge numbers are a 401, never a 500."""
    return False


def _timestamps(scale: int) -> st.SearchStrategy[str]:
    return st.one_of(
        st.integers(-1000, 1000).map(lambda d: str(int(time.time() * scale) + d * scale)),
        st.integers(-(10**20), 10**20).map(str),
        st.text(st.sampled_from(DIGIT_LIKE), min_size=1, max_size=20),
        repeated(st.sampled_from(DIGIT_LIKE), 300, 7000),
        HEADER_TEXT,
    ).filter(lambda value: not crashes_timestamp(value))


GARBAGE_AUTH = {
    "X-Webhook-Token": st.one_of(st.just(ZAPIER_TOKEN + "x"), st.just(" "), HEADER_TEXT),
    "Authorization": st.one_of(
        st.just(basic("zapier", "nope")["Authorization"]),
        st.just(basic("zapier", BASIC_PASSWORD + " ")["Authorization"]),
        st.binary(max_size=40).map(lambda b: "Basic " + base64.b64encode(b).decode()),
        st.sampled_from(["Basic", "Basic ", "Basic !!!", "Bearer x", "basic emFwaWVy", "Basic =="]),
        HEADER_TEXT,
    ),
    "X-HubSpot-Signature-v3": st.one_of(
        st.binary(max_size=40).map(lambda b: base64.b64encode(b).decode()), HEADER_TEXT
    ),
    "X-HubSpot-Request-Timestamp": _timestamps(1000),
    "webhook-id": st.one_of(st.from_regex(r"\Amsg_[A-Za-z0-9]{1,12}\Z"), HEADER_TEXT),
    "webhook-timestamp": _timestamps(1),
    "webhook-signature": st.one_of(
        st.binary(min_size=32, max_size=32).map(lambda b: "v1," + base64.b64encode(b).decode()),
        st.sampled_from(["v1,", "v1", "v2,abc v1,", ",", "v1,==="]),
        HEADER_TEXT,
    ),
}
EXTRA_HEADERS = {
    "Accept": st.one_of(st.sampled_from(ACCEPTS), HEADER_TEXT),
    "Origin": st.one_of(st.sampled_from(ORIGINS), HEADER_TEXT),
    "X-Forwarded-For": st.one_of(st.sampled_from(FORWARDED), HEADER_TEXT),
    "Idempotency-Key": st.one_of(st.sampled_from(["zap-1", "zap-2", "zap-3"]), HEADER_TEXT),
    "X-Cloud-Trace-Context": st.one_of(st.just("105445aa7843bc8bf206b12000100000/1;o=1"), HEADER_TEXT),
    "traceparent": st.one_of(st.just("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"), HEADER_TEXT),
    "X-Source": HEADER_TEXT,
    "Access-Control-Request-Method": st.sampled_from(["POST", "GET", "DELETE", "x"]),
    **GARBAGE_AUTH,
}


def credentials(
    route: str, method: str, query: str, body: bytes, how: int, msg_id: str
) -> tuple[list[tuple[str, str]], str]:
    """Valid credentials for the route, computed as each sender documents them; and the query to send."""
    if route == "token":
        if how == 0 and not re.search(r"(^|&)token=", query):
            return [], "&".join(p for p in [f"token={ZAPIER_TOKEN}", query] if p)
        return [(["X-Webhook-Token", "x-webhook-token"][how % 2], ZAPIER_TOKEN)], query
    if route == "basic":
        return list(basic("zapier", BASIC_PASSWORD).items()), query
    if route == "hubspot":
        uri = f"{PUBLIC_URL}?{query}" if query else PUBLIC_URL
        return list(hubspot_v3(HUBSPOT_SECRET, method, uri, body).items()), query
    assert route == "sw"
    return list(standard_webhooks([WHSEC], msg_id, body).items()), query


METHODS = st.sampled_from(["POST"] * 10 + ["GET"] * 3 + ["PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"])
CONTENT_TYPE_NAMES = st.sampled_from(["Content-Type", "content-type", "CONTENT-TYPE"])
EXTRA_HEADER_NAMES = st.lists(st.sampled_from(sorted(EXTRA_HEADERS)), max_size=6, unique=True)
RANDOM_HEADERS = st.lists(st.tuples(HEADER_NAMES, HEADER_TEXT), max_size=5)
MSG_IDS = st.from_regex(r"\Amsg_[A-Za-z0-9]{1,12}\Z")


@st.composite
def http_requests(draw: st.DrawFn) -> Sent:
    path = draw(paths())
    method = draw(METHODS)
    kind, body, content_type = draw(bodies())
    sent = Sent(method=method, path=path, query="", headers=[], body=body, kind=kind)
    route = sent.route
    spec = ROUTES.get(route or "")
    sent.creds = spec is not None and spec.auth != "none" and draw(st.integers(0, 2)) > 0
    sent.query = draw(queries(safe=sent.creds and route == "hubspot"))
    if content_type is not None:
        sent.headers.append((draw(CONTENT_TYPE_NAMES), content_type))
    for name in draw(EXTRA_HEADER_NAMES):
        if not (sent.creds and name.lower() in AUTH_HEADERS):
            sent.headers.append((name, draw(EXTRA_HEADERS[name])))
    sent.headers += draw(RANDOM_HEADERS)
    if sent.creds and route is not None:
        how = draw(st.integers(0, 2))
        msg_id = draw(MSG_IDS)
        auth_headers, sent.query = credentials(route, method, sent.query, body, how, msg_id)
        sent.headers += auth_headers
    sent.chunked = bool(body) and draw(st.integers(0, 4)) == 0
    sent.query = cap_query(sent.query)
    return sent


FAULTS = st.sampled_from(
    [None] * 12
    + [{"kind": "error", "code": code} for code in range(1, 9)]
    + [{"kind": kind} for kind in ("reset", "reset_mid_answer", "http500_html", "html_200", "malformed_json")]
    + [{"kind": "placed_then_reset"}, {"kind": "slow", "seconds": 0.05}]
)


# -- the checks --


def log_lines(fn: FunctionProcess) -> list[str]:
    """The log's lines as a log collector splits them: on newlines only (the JSON holds raw U+2028)."""
    return Path(fn.log_path).read_text(encoding="utf-8", errors="replace").split("\n")


def log_reason(fn: FunctionProcess, status: int) -> str:
    for line in reversed(log_lines(fn)):
        if line.startswith("{") and f'"status":{status},' in line:
            return str(json.loads(line).get("reason"))
    return "(no log line)"


_FAILURES: dict[str, type[AssertionError]] = {}


def server_error(reason: str) -> type[AssertionError]:
    """One exception class per logged reason, so Hypothesis shrinks and reports each 500 bug apart."""
    if reason not in _FAILURES:
        name = "Http500_" + re.sub(r"\W+", "_", reason)[:60]
        _FAILURES[reason] = type(name, (AssertionError,), {})
    return _FAILURES[reason]


def expected_statuses(sent: Sent) -> set[int] | None:
    """The status the first steps of the pipeline fix (route, method, size, auth), or None."""
    route = sent.route
    if route is None:
        return {404}
    spec = ROUTES[route]
    if sent.method == "OPTIONS":
        return {204}
    if sent.method not in ("POST", "GET") or (sent.method == "GET" and not spec.allow_get):
        return {405}
    if len(sent.body) > spec.max_body_bytes:
        return {413}
    if spec.auth != "none" and not sent.creds:
        return {401}
    return None


def check_answer(fn: FunctionProcess, sent: Sent, answer: Answer) -> None:
    status = answer.status
    note(f"answer: {status} {answer.headers} {answer.body[:500]!r}")
    error = re.search(rb'"error":"(\w+)"', answer.body)
    event(f"{status} {error.group(1).decode() if error else ''}".strip())
    if status == 500:
        reason = log_reason(fn, 500)
        SEEN_500.append(reason)
        raise server_error(reason)(f"500 with a valid config: {answer.body[:300]!r}; log reason: {reason}")
    assert status in STATUSES, f"status {status} is not in the Answers table: {answer.body[:300]!r}"
    assert b"Traceback" not in answer.body and b'File "' not in answer.body
    route = sent.route
    spec = ROUTES.get(route or "")
    expected = expected_statuses(sent)
    if expected is not None:
        assert status in expected | ({303} if status == 303 else set()), f"expected {expected}, got {status}"
    elif spec is not None:
        assert status not in {401, 404, 405, 413}, f"route {route}: {status} after route, method, size and auth passed"
    if status == 204:
        assert sent.method == "OPTIONS" and answer.body == b""
    if status == 303:
        accept = (sent.header("accept") or "").lower()
        # A browser's Accept names text/html; "text/*" (HTML acceptable, JSON not) also prefers it.
        prefers_html = "html" in accept or "text/*" in accept
        assert spec is not None and spec.redirect and prefers_html and sent.method != "OPTIONS"
        location = answer.headers.get("location", "")
        if location == SUCCESS_URL:
            assert expected is None, f"redirected to success where {expected} was due"
        else:
            assert location.startswith(FAILURE_URL + "&error="), location
            word = parse_qs(urlsplit(location).query)["error"][0]
            assert word in ERROR_WORDS, word
            if expected is not None:
                assert word in set().union(*(ERRORS_BY_STATUS[s] for s in expected if s in ERRORS_BY_STATUS))
    if status in RETRY_AFTER_STATUSES:
        retry_after = answer.headers.get("retry-after", "")
        assert retry_after.isdigit() and int(retry_after) > 0, f"{status} without a usable Retry-After"
    if spec is not None:
        assert "Origin" in answer.headers.get("vary", ""), "every answer of a route carries Vary: Origin"
    allowed_origin = answer.headers.get("access-control-allow-origin")
    if allowed_origin is not None:
        assert spec is not None
        if "*" in spec.cors:
            # Any origin: a literal "*", never the origin reflected (that would let "null" through).
            assert allowed_origin == "*"
        else:
            # As received: HTTP drops the spaces and tabs around a header value.
            assert allowed_origin == (sent.header("origin") or "").strip(" \t")
            assert allowed_origin in spec.cors
    if status in (204, 303) or sent.method == "HEAD":
        return
    try:
        answer.json = json.loads(answer.body)
    except ValueError:
        raise AssertionError(f"the answer is not JSON: {answer.body[:300]!r}") from None
    body = answer.json
    assert isinstance(body, dict) and isinstance(body.get("success"), bool), body
    if body["success"]:
        assert status in (200, 202), body
        assert status != 202 or body.get("pending") is True
    else:
        assert body.get("error") in ERRORS_BY_STATUS.get(status, set()), f"{status} with error {body.get('error')!r}"
        assert isinstance(body.get("message"), str) and body["message"].strip()


# -- the tests --


def _examples(share: float) -> int:
    """This test's share of the profile's examples: "ci" totals about 300, "fuzz" about 7,500."""
    return max(10, int(settings.default.max_examples * share))


FUZZ_SETTINGS = {
    "suppress_health_check": [
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
        HealthCheck.function_scoped_fixture,  # the autouse environment fixture; the process is module-scoped
        HealthCheck.filter_too_much,
    ],
    "deadline": None,
}


@settings(max_examples=_examples(1.0), **FUZZ_SETTINGS)
@given(sent=http_requests(), fault=FAULTS)
def test_any_request_gets_an_answer_from_the_table(
    fn: FunctionProcess, simulator: Simulator, sent: Sent, fault: dict[str, Any] | None
) -> None:
    prepare_simulator(simulator, fault)
    check_answer(fn, sent, send(fn, sent))
    # FormCall is called once at most, never retried blind (a lost answer is settled from its call list).
    assert len(simulator.calls()) <= 1, simulator.calls()


LEAD_ROUTES = st.sampled_from(["default", "templated", "mapped", "dry", "token", "sw", "basic", "hubspot", "getter"])
# Names and noise under keys no finder should take for the lead's phone (a form body flattens nesting, so a
# "phone" key here could stand beside "telefono" and be as good a guess; tests/test_mapping.py covers depth).
HARMLESS_KEYS = st.sampled_from(["utm", "x", "a[b]", "__", "msg", "form", "valor"])
HARMLESS = st.recursive(SCALARS, lambda inner: st.dictionaries(HARMLESS_KEYS, inner, max_size=3), max_leaves=5)
LEAD_NAMES = st.one_of(st.text(CHARS, max_size=300), HARMLESS)
LEAD_NOISE = st.dictionaries(HARMLESS_KEYS, SCALARS, max_size=3)
# What the templated and hubspot routes' templates read, in any shape except one choosing another popup.
# Scalars only for a lead that must be placed: a list or object where README's popup template looks a key up
# is a 400 (the main test above sends those and accepts the 400).
ODD_SUCURSAL = st.one_of(st.just("santiago"), SCALARS).filter(lambda v: v not in ("cerrado", "pendiente"))
ODD_TEMPLATE_FIELDS = {**TEMPLATE_FIELDS, "sucursal": ODD_SUCURSAL}
for _name in ("_gotcha", "cf-turnstile-response"):  # not read by these routes' templates
    ODD_TEMPLATE_FIELDS.pop(_name)
ODD_TEMPLATE_NAMES = st.lists(st.sampled_from(sorted(ODD_TEMPLATE_FIELDS)), max_size=6, unique=True)
LEAD_ACCEPTS = st.sampled_from(["application/json", "*/*", ""])
LEAD_JSON_TYPES = st.sampled_from(JSON_TYPES[:4])
LEAD_FORM_TYPES = st.sampled_from(FORM_TYPES)
LEAD_ENCODINGS = st.sampled_from(["json", "form"])
VALID_TYPINGS = st.sampled_from(VALID_FORMATS)


@st.composite
def valid_leads(draw: st.DrawFn) -> tuple[Sent, str]:
    """A real lead, typed as people type it, with odd but harmless company: it must be placed."""
    route = draw(LEAD_ROUTES)
    # A number no earlier example used: a replay (while shrinking) must not be answered as a duplicate.
    local = next(_FRESH_LOCALS)
    typed = _typed(draw(VALID_TYPINGS), local)
    lead: dict[str, Any]
    if route in ("templated", "hubspot"):
        # Every field a template reads, in any shape: a template that fails renders empty, never more.
        lead = {name: draw(ODD_TEMPLATE_FIELDS[name]) for name in draw(ODD_TEMPLATE_NAMES)}
        if route == "templated":
            lead.update(cc=draw(st.sampled_from(["56", "+56", " 56 "])), area="9", numero=f"{local[:4]} {local[4:]}")
        else:
            properties = {"phone": {"value": typed}}
            if draw(st.booleans()):
                properties["sucursal"] = {"value": draw(ODD_SUCURSAL)}
            lead["properties"] = properties
    else:
        lead = {"telefono" if route != "mapped" else "phone": typed, "nombre": draw(LEAD_NAMES), **draw(LEAD_NOISE)}
    method = "GET" if route == "getter" and draw(st.booleans()) else "POST"
    encoding = draw(LEAD_ENCODINGS) if route != "hubspot" else "json"
    query = ""
    if method == "GET":
        body, content_type = b"", None
        query = urlencode([(k, form_value(v)) for k, v in lead.items()], errors="surrogatepass")
    elif encoding == "json":
        body = json_text(lead, ensure_ascii=draw(st.booleans())).encode("utf-8", "surrogatepass")
        content_type = draw(LEAD_JSON_TYPES)
    else:
        body = urlencode(form_pairs(list(lead.items()), brackets=True), errors="surrogatepass").encode()
        content_type = draw(LEAD_FORM_TYPES)
    if route == "templated" and draw(st.booleans()):
        query = urlencode({"utm_source": draw(TEXT)}, errors="surrogatepass")
    sent = Sent(method=method, path=f"/{route}", query=query, headers=[], body=body, kind=f"lead-{encoding}")
    if content_type is not None:
        sent.headers.append(("Content-Type", content_type))
    sent.headers.append(("Accept", draw(LEAD_ACCEPTS)))
    if draw(st.booleans()):
        sent.headers.append(("X-Source", draw(HEADER_TEXT)))
    if ROUTES[route].auth != "none":
        sent.creds = True
        extra, sent.query = credentials(route, method, sent.query, body, draw(st.integers(0, 2)), f"msg_{local}")
        sent.headers += extra
    return sent, local


@settings(max_examples=_examples(0.3), **FUZZ_SETTINGS)
@given(lead=valid_leads())
def test_a_real_lead_is_always_placed(fn: FunctionProcess, simulator: Simulator, lead: tuple[Sent, str]) -> None:
    sent, local = lead
    prepare_simulator(simulator, None)
    answer = send(fn, sent)
    check_answer(fn, sent, answer)
    assert answer.status == 200, f"a valid lead got {answer.status}: {answer.body[:300]!r}"
    body = answer.json
    assert body["success"] is True
    if sent.route == "dry":
        payload = body["payload"]
        assert (payload["country_code"], payload["areacode"], payload["phonenumber"]) == ("56", "9", local)
        assert payload["security_token"] == "***"
        assert all(isinstance(v, str) and 0 < len(v) <= 40 for v in payload.get("adicional", {}).values())
    elif not body.get("duplicate"):
        placed = simulator.placed()
        assert len(placed) == 1 and placed[0]["uuid"] == body["uuid"]
        sent_payload = placed[0]["payload"]
        assert (sent_payload["country_code"], sent_payload["areacode"], sent_payload["phonenumber"]) == (
            "56",
            "9",
            local,
        )
        assert sent_payload["security_token"] == TOKEN
        adicional = sent_payload.get("adicional", {})
        assert all(isinstance(v, str) and 0 < len(v) <= 200 for v in adicional.values())


@st.composite
def forged(draw: st.DrawFn) -> Sent:
    """A small valid lead to a signed route, with credentials that are wrong in some way."""
    route = draw(st.sampled_from(["token", "hubspot", "sw", "basic"]))
    body = json.dumps({"telefono": draw(VALID_PHONE), "vid": 1}).encode()
    names = {
        "token": ["X-Webhook-Token"],
        "basic": ["Authorization"],
        "hubspot": ["X-HubSpot-Signature-v3", "X-HubSpot-Request-Timestamp"],
        "sw": ["webhook-id", "webhook-timestamp", "webhook-signature"],
    }[route]
    sent = Sent(method="POST", path=f"/{route}", query="", headers=[("Content-Type", "application/json")], body=body)
    valid, _ = credentials(route, "POST", "", body, 1, draw(st.from_regex(r"\Amsg_[A-Za-z0-9]{1,12}\Z")))
    # Each credential header: left valid (0), dropped (1) or replaced by garbage (2); one at least is not valid.
    choices = [draw(st.integers(0, 2)) for _ in valid]
    choices[draw(st.integers(0, len(valid) - 1))] = draw(st.integers(1, 2))
    for (name, value), choice in zip(valid, choices, strict=True):
        if choice == 0:
            sent.headers.append((name, value))
        elif choice == 2:
            garbage = GARBAGE_AUTH.get(name, GARBAGE_AUTH[names[0]])
            sent.headers.append((name, draw(garbage.filter(lambda g, value=value: g.strip() != value))))
    sent.kind = f"forged-{route}"
    return sent


@settings(max_examples=_examples(0.2), **FUZZ_SETTINGS)
@given(sent=forged())
def test_forged_credentials_are_always_401(fn: FunctionProcess, simulator: Simulator, sent: Sent) -> None:
    prepare_simulator(simulator, None)
    answer = send(fn, sent)
    check_answer(fn, sent, answer)
    assert answer.status == 401, f"forged credentials got {answer.status}: {answer.body[:300]!r}"
    assert simulator.calls() == []


def test_after_the_fuzz_the_function_still_serves_and_its_log_is_clean(
    fn: FunctionProcess, simulator: Simulator
) -> None:
    prepare_simulator(simulator, None)
    good = Sent(
        method="POST",
        path="/",
        query="",
        headers=[("Content-Type", "application/json")],
        body=json.dumps({"telefono": "+56 9 4000 0001", "nombre": "Ana"}).encode(),
    )
    answer = send(fn, good)
    assert answer.status == 200, answer.body
    assert json.loads(answer.body)["success"] is True
    assert fn.process is not None and fn.process.poll() is None
    text = Path(fn.log_path).read_text(encoding="utf-8", errors="replace")
    assert "Traceback" not in text
    for line in log_lines(fn):
        if line.startswith("{"):
            json.loads(line)  # every JSON line parses
    assert forbidden_in_logs(text, {TOKEN, *SECRETS.values()}) == []
    leaked = [n for n in NUMBERS if n in text or f"+{n}" in text]
    assert leaked == [], f"whole numbers in the log: {leaked[:5]}"
    assert SEEN_500 == [], f"500 answers were logged with reasons: {sorted(set(SEEN_500))}"
