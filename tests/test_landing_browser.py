"""examples/landing/ in a real headless Chromium: the page on one loopback origin, the function on another.

The page is served as it ships, except that index.html's function URL (action and data-endpoint, both
http://127.0.0.1:8080/ for `make run`) is replaced by the test's function, as a user edits that tag. The
function runs in a real functions-framework process with examples/landing/formcall.toml, its page origin
(http://127.0.0.1:8000) replaced by the test's and its per-IP limit raised (every test posts from
127.0.0.1), against the FormCall simulator.

Each answer the page can get is shown its own way: placed, scheduled (FormCall out of service hours),
duplicate, consent missing (blocked by the browser, and answered 422 when the box is not required),
and the campaign fields and the Google Ads / GA4 conversion event travel as the contract says. The page
works with the function on any port (?endpoint=, with JavaScript, with ?nojs=1, and with JavaScript off
through examples/landing/serve.py), a success leaves when a new lead is typed, the call button is on the
first screen of a 390 x 844 phone, and the pages name no hours that the route's config does not set.

Needs Debian's chromium (`apt-get install chromium`), driven by Playwright's Python package; Playwright's
own browser downloads are never used. Where either is missing the tests skip, except under CI, where they fail.
LANDING_SCREENSHOT=examples/landing/screenshot.png regenerates the README's screenshot (and
LANDING_SCREENSHOT_PHONE=PATH saves the phone's first screen).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import threading
import tomllib
from collections.abc import Callable, Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn
from urllib.parse import quote, urlencode, urlsplit
from urllib.request import urlopen

import pytest

from formcall_webhook.simulator import Simulator
from tests.harness import ROOT, FunctionProcess

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page, Response

# A real browser against real processes: every test here is slow (make test-fast leaves them out).
pytestmark = pytest.mark.slow

LANDING = ROOT / "examples" / "landing"
LOCAL_PAGE_ORIGIN = "http://127.0.0.1:8000"  # what examples/landing/formcall.toml is written for
LOCAL_ENDPOINT = "http://127.0.0.1:8080/"  # what examples/landing/index.html posts to (`make run`)
TOKEN = "formcall-landing-5e2a"
SIMULATOR_TOKENS = (TOKEN,)  # the tokens the module's simulator accepts (tests/conftest.py)
POPUP = "e5c98214-d0f6-11e1-8c30-001d09ef4a24"
ORIGEN = "Landing Acme Seguros"
PLACED_TEXT = "¡Listo! Te estamos llamando: ten tu teléfono a mano."
SCHEDULED_TEXT = (
    "¡Recibido! En este momento no pudimos conectarte con un ejecutivo: te llamaremos apenas haya uno disponible."
)
DUPLICATE_TEXT = "Ya habíamos recibido tu solicitud: te llamaremos una sola vez, no hace falta enviarla de nuevo."
CONSENT_MISSING_TEXT = "Para llamarte necesitamos tu autorización: marca la casilla de aceptación y envía de nuevo."
OPTED_OUT_TEXT = (
    "Este número pidió no recibir nuestras llamadas. Si cambiaste de opinión, escríbenos a privacidad@acmeseguros.cl."
)
GRACIAS_TEXT = "¡Listo! Recibimos tus datos."
INVALID_PHONE_TEXT = "Ese número de teléfono no parece válido. Escríbelo como +56 9 1234 5678."
CONSENT = {"field": "acepto", "required": True, "text": "v2026-12", "ads_field": "acepto_publicidad"}
CAMPAIGN_FIELDS = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content", "gclid")
# Meta's click id and cookies: sent to the function for conversions (spec 12), not to FormCall.
META_CLICK_FIELDS = ("fbclid", "_fbc", "_fbp")
NO_CAMPAIGN = dict.fromkeys(CAMPAIGN_FIELDS + META_CLICK_FIELDS, "")
# Chromium's background services (updates, sync, field trials, QUIC probes) would only hit a closed network.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 30_000  # per action; generous for a loaded machine, never reached when all is well


def _unavailable(reason: str) -> NoReturn:
    """Skip on a developer's machine without a browser; CI installs one, so there it is a failure."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI must install it)")
    pytest.skip(reason)


def _chromium_path() -> str:
    """Debian's /usr/bin/chromium (CHROMIUM_PATH may name another build)."""
    for candidate in (os.environ.get("CHROMIUM_PATH"), shutil.which("chromium"), shutil.which("chromium-browser")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    _unavailable("chromium not installed: apt-get install chromium")


# -- the page's origin: examples/landing/ over HTTP on loopback --


class LandingServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _LandingHandler)
        self.endpoint = LOCAL_ENDPOINT

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _LandingHandler(SimpleHTTPRequestHandler):
    server: LandingServer

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, directory=str(LANDING), **kwargs)

    def do_GET(self) -> None:
        if urlsplit(self.path).path not in ("/", "/index.html"):
            super().do_GET()
            return
        html = (LANDING / "index.html").read_text(encoding="utf-8")
        body = html.replace(LOCAL_ENDPOINT, self.server.endpoint).encode("utf-8")
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


# -- fixtures: simulator, page server, function, browser; all per module --


@pytest.fixture(scope="module")
def chromium() -> str:
    """Before the servers: without a browser, skip (or fail under CI) before starting anything. The
    static checks of the shipped files need none of it."""
    return _chromium_path()


@pytest.fixture(scope="module")
def site(chromium: str) -> Iterator[LandingServer]:
    server = LandingServer()
    thread = threading.Thread(target=server.serve_forever, name="landing-page", daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def landing_config(page_origin: str) -> str:
    """examples/landing/formcall.toml with the test's page origin in cors_origins and redirect, and room
    for this module's posts from one address (the shipped 10/minute is for real visitors)."""
    text = (LANDING / "formcall.toml").read_text(encoding="utf-8")
    assert LOCAL_PAGE_ORIGIN in text
    assert 'per_ip = "10/minute"' in text
    return text.replace(LOCAL_PAGE_ORIGIN, page_origin).replace('per_ip = "10/minute"', 'per_ip = "1000/minute"')


@pytest.fixture(scope="module")
def fn(
    tmp_path_factory: pytest.TempPathFactory, simulator: Simulator, site: LandingServer
) -> Iterator[FunctionProcess]:
    workdir = tmp_path_factory.mktemp("landing")
    config = workdir / "formcall.toml"
    config.write_text(landing_config(site.origin), encoding="utf-8")
    route = tomllib.loads(config.read_text(encoding="utf-8"))["routes"]["default"]
    assert site.origin in route["cors_origins"]
    assert route["redirect"] == {"success": f"{site.origin}/gracias.html", "failure": f"{site.origin}/error.html"}
    env = {
        "FORMCALL_CONFIG": str(config),
        "FORMCALL_API_URL": simulator.api_url,
        "FORMCALL_SECURITY_TOKEN": TOKEN,
        # A scheduled lead must not be swept into a call while a later test counts the simulator's calls.
        "FORMCALL_SWEEP_SECONDS": "3600",
    }
    process = FunctionProcess(env, workdir / "function.log")
    site.endpoint = f"{process.url}/"
    process.start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def browser(chromium: str) -> Iterator[Browser]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright not installed: pip install -r requirements-dev.txt")
    playwright = sync_playwright().start()
    try:
        launched = playwright.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
    except Exception:
        playwright.stop()
        raise
    yield launched
    launched.close()
    playwright.stop()


PHONE = {"width": 390, "height": 844}  # the first screen of a common phone, in CSS pixels


def _context(browser: Browser, javascript: bool = True, phone: bool = False) -> BrowserContext:
    if phone:
        context = browser.new_context(
            locale="es-CL", viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True
        )
    else:
        context = browser.new_context(
            java_script_enabled=javascript, locale="es-CL", viewport={"width": 1280, "height": 860}
        )
    context.set_default_timeout(TIMEOUT_MS)
    return context


def _load_serve_py() -> Any:
    spec = importlib.util.spec_from_file_location("landing_serve", LANDING / "serve.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def preview(chromium: str) -> Iterator[str]:
    """examples/landing/serve.py as shipped, on a port of its own: the origin it serves."""
    server = _load_serve_py().make_server(0)
    thread = threading.Thread(target=server.serve_forever, name="landing-serve-py", daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = _context(browser)
    yield context.new_page()
    context.close()


@pytest.fixture
def page_without_js(browser: Browser) -> Iterator[Page]:
    context = _context(browser, javascript=False)
    yield context.new_page()
    context.close()


# -- helpers --


def fill_like_a_person(page: Page, nombre: str, telefono: str, email: str, consent: bool = True) -> None:
    """Through the labels a person reads; the number key by key, spaces and all, as people type it."""
    page.get_by_label("Nombre").fill(nombre)
    page.get_by_label("Teléfono").press_sequentially(telefono, delay=10)
    page.get_by_label("Email").fill(email)
    if consent:
        page.get_by_label("Acepto que Acme Seguros me llame").check()


def submit(page: Page, fn: FunctionProcess) -> Response:
    """Click the button and wait for the function's answer to the page's POST."""
    with page.expect_response(is_function_post(fn)) as answer:
        page.get_by_role("button", name="Quiero que me llamen").click()
    page.locator("#form-status").wait_for(state="visible")
    return answer.value


def shown(page: Page) -> tuple[str, str | None, str | None]:
    """What the page says under the button: text, data-kind and data-result."""
    status = page.locator("#form-status")
    return status.inner_text(), status.get_attribute("data-kind"), status.get_attribute("data-result")


def conversions(page: Page) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = page.evaluate("() => window.dataLayer || []")
    return [e for e in events if e.get("event") == "generate_lead"]


def is_function_post(fn: FunctionProcess) -> Callable[[Response], bool]:
    def check(response: Response) -> bool:
        return response.url.startswith(fn.url) and response.request.method == "POST"

    return check


def requests_seen(fn: FunctionProcess, method: str) -> int:
    """How many requests with this method the function logged (one JSON line each)."""
    return sum(1 for entry in fn.log_entries() if entry.get("method") == method)


def assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n"), path
    assert len(data) > 10_000, f"{path} is only {len(data)} bytes"


def assert_one_call(simulator: Simulator, phonenumber: str, nombre: str, email: str) -> dict[str, Any]:
    calls = simulator.wait_for_calls(1)
    assert len(calls) == 1, calls
    call = calls[0]
    assert call["outcome"] == "placed", call
    payload = call["payload"]
    assert payload["popup_uuid"] == POPUP
    assert (payload["country_code"], payload["areacode"], payload["phonenumber"]) == ("56", "9", phonenumber)
    assert payload["security_token"] == TOKEN
    assert payload["adicional"] == {"Nombre": nombre, "Email": email, "Origen": ORIGEN}
    return call


def is_lead_id(value: Any) -> bool:
    return isinstance(value, str) and 0 < len(value) <= 64


# -- A: JavaScript on, fetch with JSON across origins --


def test_fetch_submission_shows_success_and_places_one_call(
    page: Page, site: LandingServer, fn: FunctionProcess, simulator: Simulator, tmp_path: Path
) -> None:
    preflights_before = requests_seen(fn, "OPTIONS")
    page.goto(f"{site.origin}/index.html")
    fill_like_a_person(page, "Ana Pérez", "9 6123 4567", "ana@example.cl")
    response = submit(page, fn)

    assert response.status == 200
    assert response.headers["access-control-allow-origin"] == site.origin
    assert response.request.headers["content-type"] == "application/json"
    assert response.request.post_data_json == {
        "nombre": "Ana Pérez",
        "telefono": "9 6123 4567",
        "email": "ana@example.cl",
        "acepto": "si",
        **NO_CAMPAIGN,
        "_gotcha": "",
    }
    assert shown(page) == (PLACED_TEXT, "ok", "placed")
    # The JSON body reached the page (CORS let it read it) and names the call the simulator placed.
    call = assert_one_call(simulator, "61234567", "Ana Pérez", "ana@example.cl")
    answer = response.json()
    assert answer == {"success": True, "uuid": call["uuid"], "lead_id": answer.get("lead_id")}
    assert is_lead_id(answer["lead_id"])
    # application/json is not a simple content type: the browser asked first, and the function said yes.
    assert requests_seen(fn, "OPTIONS") == preflights_before + 1

    # One conversion for Google Ads and GA4, keyed by the lead, and nothing that identifies the person.
    assert conversions(page) == [
        {
            "event": "generate_lead",
            "form_id": "lead-form",
            "lead_id": answer["lead_id"],
            "transaction_id": answer["lead_id"],
            "lead_status": "placed",
        }
    ]
    layer = json.dumps(page.evaluate("() => window.dataLayer"), ensure_ascii=False)
    for personal in ("61234567", "6123 4567", "Ana", "ana@example.cl"):
        assert personal not in layer

    shot = tmp_path / "landing.png"
    page.screenshot(path=str(shot))
    assert_png(shot)
    if target := os.environ.get("LANDING_SCREENSHOT"):
        page.screenshot(path=str(ROOT / target))


def test_campaign_fields_from_the_url_reach_formcall_in_adicional(
    page: Page, site: LandingServer, fn: FunctionProcess, simulator: Simulator
) -> None:
    campaign = {
        "utm_source": "google",
        "utm_medium": "cpc",
        "utm_campaign": "seguro-auto-verano",
        "utm_content": "anuncio-b",
        "gclid": "EAIaIQobChMI-test_123",
    }
    page.goto(f"{site.origin}/index.html?{urlencode(campaign)}&otro=x")
    for name in CAMPAIGN_FIELDS:
        assert page.locator(f"input[type=hidden][name={name}]").input_value() == campaign.get(name, "")
    fill_like_a_person(page, "Fernanda Lagos", "9 4455 6677", "fer@example.cl")
    response = submit(page, fn)
    assert response.status == 200
    assert response.request.post_data_json == {
        "nombre": "Fernanda Lagos",
        "telefono": "9 4455 6677",
        "email": "fer@example.cl",
        "acepto": "si",
        **NO_CAMPAIGN,
        **campaign,
        "_gotcha": "",
    }
    [call] = simulator.wait_for_calls(1)
    assert call["outcome"] == "placed"
    # utm_term was not in the URL: its template renders empty, and empty values are left out.
    assert call["payload"]["adicional"] == {
        "Nombre": "Fernanda Lagos",
        "Email": "fer@example.cl",
        "Origen": ORIGEN,
        **campaign,
    }
    # The form is cleared after a success, but the campaign stays for the next lead from this visit.
    assert page.locator("#telefono").input_value() == ""
    assert page.locator("input[name=gclid]").input_value() == campaign["gclid"]


def test_meta_click_id_and_cookies_and_the_separate_ads_consent_reach_the_function(
    page: Page, site: LandingServer, fn: FunctionProcess, simulator: Simulator
) -> None:
    cookies = {"_fbc": "fb.1.1764590000000.IwAR-test_fbc", "_fbp": "fb.1.1764590000000.1234567890"}
    page.context.add_cookies([{"name": k, "value": v, "url": site.origin} for k, v in cookies.items()])
    page.goto(f"{site.origin}/index.html?fbclid=IwAR-test_url&utm_source=facebook")
    fill_like_a_person(page, "Marta Soto", "9 3377 8811", "marta@example.cl")
    page.get_by_label("Acepto que Acme Seguros informe a Google y Meta").check()
    response = submit(page, fn)
    assert response.status == 200
    assert response.request.post_data_json == {
        "nombre": "Marta Soto",
        "telefono": "9 3377 8811",
        "email": "marta@example.cl",
        "acepto": "si",
        "acepto_publicidad": "si",
        **NO_CAMPAIGN,
        "utm_source": "facebook",
        "fbclid": "IwAR-test_url",
        **cookies,
        "_gotcha": "",
    }
    [call] = simulator.wait_for_calls(1)
    # The agent's popup never shows Meta's ids.
    assert not set(META_CLICK_FIELDS) & set(call["payload"]["adicional"])


# -- B: JavaScript off, a plain form post answered 303 --


@pytest.mark.parametrize(
    ("javascript", "query", "telefono", "phonenumber"),
    [
        pytest.param(False, "", "+56 9 8765 4321", "87654321", id="javascript-off"),
        pytest.param(True, "?nojs=1", "(+56) 9 7654-3210", "76543210", id="nojs-param"),
    ],
)
def test_plain_form_post_lands_on_gracias(
    browser: Browser,
    site: LandingServer,
    fn: FunctionProcess,
    simulator: Simulator,
    javascript: bool,
    query: str,
    telefono: str,
    phonenumber: str,
) -> None:
    context = _context(browser, javascript=javascript)
    try:
        page = context.new_page()
        page.goto(f"{site.origin}/index.html{query}")
        fill_like_a_person(page, "Benjamín Soto", telefono, "benja@example.cl")
        with page.expect_response(is_function_post(fn)) as answer:
            page.get_by_role("button", name="Quiero que me llamen").click()
        page.wait_for_url(f"{site.origin}/gracias.html")

        redirect = answer.value
        assert redirect.status == 303
        assert redirect.headers["location"] == f"{site.origin}/gracias.html"
        assert redirect.request.headers["content-type"] == "application/x-www-form-urlencoded"
        assert "acepto=si" in (redirect.request.post_data or "").split("&")
        assert page.locator("h1").inner_text() == GRACIAS_TEXT
        assert_one_call(simulator, phonenumber, "Benjamín Soto", "benja@example.cl")
    finally:
        context.close()


def test_plain_form_post_of_a_bad_number_lands_on_error(
    page_without_js: Page, site: LandingServer, fn: FunctionProcess, simulator: Simulator
) -> None:
    page = page_without_js
    page.goto(f"{site.origin}/index.html")
    fill_like_a_person(page, "Carla Díaz", "9 1234", "carla@example.cl")
    page.get_by_role("button", name="Quiero que me llamen").click()
    page.wait_for_url(f"{site.origin}/error.html?error=invalid_phone")
    assert "No pudimos agendar tu llamada" in page.locator("h1").inner_text()
    assert simulator.calls() == []


# -- C: JavaScript on, a number the function refuses; ?endpoint= overriding data-endpoint --


def test_fetch_of_a_bad_number_shows_the_error_and_calls_no_one(
    page: Page, site: LandingServer, fn: FunctionProcess, simulator: Simulator
) -> None:
    endpoint = f"{fn.url}/?via=endpoint-param"
    page.goto(f"{site.origin}/index.html?endpoint={quote(endpoint, safe='')}")
    fill_like_a_person(page, "Diego Rojas", "9 1234", "diego@example.cl")
    response = submit(page, fn)

    assert response.url == endpoint
    assert response.status == 422
    assert response.json()["error"] == "invalid_phone"
    status = page.locator("#form-status")
    status.wait_for(state="visible")
    assert status.inner_text() == INVALID_PHONE_TEXT
    assert status.get_attribute("data-error") == "invalid_phone"
    assert status.get_attribute("data-kind") == "error"
    assert conversions(page) == []
    # The form keeps what was typed, so the person only fixes the number.
    assert page.locator("#nombre").input_value() == "Diego Rojas"
    assert simulator.calls() == []

    # error.html (where JavaScript-off posts land) says the same sentence for the same word.
    page.goto(f"{site.origin}/error.html?error=invalid_phone")
    assert page.locator("#error-text").inner_text() == INVALID_PHONE_TEXT


def test_nojs_param_posts_to_the_endpoint_param(
    page: Page, site: LandingServer, fn: FunctionProcess, simulator: Simulator
) -> None:
    # The tag names a function that is not there; ?endpoint= names the one that is.
    site.endpoint = "http://127.0.0.1:9/"
    try:
        endpoint = f"{fn.url}/?via=nojs"
        page.goto(f"{site.origin}/index.html?nojs=1&endpoint={quote(endpoint, safe='')}")
        assert page.locator("#lead-form").get_attribute("action") == endpoint
        fill_like_a_person(page, "Lucía Reyes", "9 5566 7788", "lucia@example.cl")
        with page.expect_response(is_function_post(fn)) as answer:
            page.get_by_role("button", name="Quiero que me llamen").click()
        page.wait_for_url(f"{site.origin}/gracias.html")
        assert answer.value.url == endpoint
        assert answer.value.status == 303
        assert_one_call(simulator, "55667788", "Lucía Reyes", "lucia@example.cl")
    finally:
        site.endpoint = f"{fn.url}/"


def test_an_endpoint_param_that_is_not_a_web_address_is_ignored(page: Page, site: LandingServer) -> None:
    page.goto(f"{site.origin}/index.html?endpoint={quote('javascript:alert(1)', safe='')}")
    assert page.locator("#lead-form").get_attribute("action") == site.endpoint


def test_javascript_off_the_endpoint_param_works_through_serve_py(
    browser: Browser, preview: str, site: LandingServer, fn: FunctionProcess, simulator: Simulator
) -> None:
    """A page without JavaScript cannot read its URL: serve.py writes ?endpoint= into the form's tag."""
    endpoint = f"{fn.url}/?via=serve-py"
    context = _context(browser, javascript=False)
    try:
        page = context.new_page()
        page.goto(f"{preview}/?endpoint={quote(endpoint, safe='')}")
        form = page.locator("#lead-form")
        assert (form.get_attribute("action"), form.get_attribute("data-endpoint")) == (endpoint, endpoint)
        fill_like_a_person(page, "Mateo Núñez", "9 6655 4433", "mateo@example.cl")
        with page.expect_response(is_function_post(fn)) as answer:
            page.get_by_role("button", name="Quiero que me llamen").click()
        # The function's config sends browsers to the test's page origin.
        page.wait_for_url(f"{site.origin}/gracias.html")
        assert (answer.value.url, answer.value.status) == (endpoint, 303)
        assert_one_call(simulator, "66554433", "Mateo Núñez", "mateo@example.cl")
    finally:
        context.close()

    # What it writes is an http(s) URL, escaped; anything else leaves the tag as shipped.
    for asked in ("javascript:alert(1)", 'http://127.0.0.1:1/"><script>x</script>'):
        with urlopen(f"{preview}/?endpoint={quote(asked, safe='')}", timeout=30) as answer:
            html = answer.read().decode("utf-8")
        assert "javascript:alert" not in html
        assert "<script>x" not in html
    with urlopen(f"{preview}/index.html", timeout=30) as answer:
        assert f'action="{LOCAL_ENDPOINT}"' in answer.read().decode("utf-8")


def test_page_on_an_origin_not_in_cors_origins_sends_nothing(
    page: Page, site: LandingServer, fn: FunctionProcess, simulator: Simulator
) -> None:
    # The same page, but from http://localhost:PORT: an origin the route does not list.
    other_origin = site.origin.replace("127.0.0.1", "localhost")
    preflights_before, posts_before = requests_seen(fn, "OPTIONS"), requests_seen(fn, "POST")
    page.goto(f"{other_origin}/index.html")
    fill_like_a_person(page, "Elena Muñoz", "9 5432 1098", "elena@example.cl")
    page.get_by_role("button", name="Quiero que me llamen").click()
    status = page.locator("#form-status")
    status.wait_for(state="visible")
    assert status.get_attribute("data-kind") == "retry"
    assert status.inner_text() == "No pudimos enviar tus datos. Revisa tu conexión e inténtalo de nuevo."
    # The preflight was answered without Access-Control-Allow-Origin, so the browser never sent the POST.
    assert requests_seen(fn, "OPTIONS") == preflights_before + 1
    assert requests_seen(fn, "POST") == posts_before
    assert simulator.calls() == []


def test_filled_honeypot_looks_accepted_and_calls_no_one(
    page: Page, site: LandingServer, fn: FunctionProcess, simulator: Simulator
) -> None:
    page.goto(f"{site.origin}/index.html")
    fill_like_a_person(page, "Bot", "9 5432 1098", "bot@example.cl")
    # A bot fills every field it finds, the visually hidden one too.
    page.locator("#_gotcha").evaluate("(input) => { input.value = 'https://spam.example' }")
    response = submit(page, fn)
    assert response.status == 200
    assert response.json() == {"success": True}
    assert shown(page) == (PLACED_TEXT, "ok", "placed")
    assert conversions(page) == []  # a bot is not a conversion
    assert simulator.calls() == []


# -- D: the other successes: scheduled, duplicate --


def test_out_of_service_hours_is_scheduled_and_says_so(
    page: Page, site: LandingServer, fn: FunctionProcess, simulator: Simulator
) -> None:
    simulator.set_popup(POPUP, in_service_hours=False)  # FormCall error 2; the route's retry covers it
    page.goto(f"{site.origin}/index.html")
    fill_like_a_person(page, "Gonzalo Vera", "9 3344 5566", "gonzalo@example.cl")
    response = submit(page, fn)

    assert response.status == 200
    answer = response.json()
    assert answer == {"success": True, "scheduled": True, "lead_id": answer.get("lead_id")}
    assert is_lead_id(answer["lead_id"])
    assert shown(page) == (SCHEDULED_TEXT, "ok", "scheduled")
    [call] = simulator.wait_for_calls(1)
    assert (call["outcome"], call["error_code"]) == ("error", 2)
    assert simulator.placed() == []
    # Kept to be called later is a lead all the same: one conversion.
    assert [(e["lead_id"], e["lead_status"]) for e in conversions(page)] == [(answer["lead_id"], "scheduled")]


def test_the_same_lead_twice_is_a_duplicate_and_rings_once(
    page: Page, site: LandingServer, fn: FunctionProcess, simulator: Simulator
) -> None:
    page.goto(f"{site.origin}/index.html")
    fill_like_a_person(page, "Hugo Tapia", "9 2233 4455", "hugo@example.cl")
    first = submit(page, fn).json()
    assert shown(page) == (PLACED_TEXT, "ok", "placed")

    # Impatient: the same number again (the form was cleared after the success).
    fill_like_a_person(page, "Hugo Tapia", "+56 9 2233 4455", "hugo@example.cl")
    response = submit(page, fn)
    assert response.status == 200
    second = response.json()
    assert second["success"] is True
    assert second["duplicate"] is True
    assert second["lead_id"] == first["lead_id"]
    assert second.get("uuid") == first["uuid"]
    assert shown(page) == (DUPLICATE_TEXT, "ok", "duplicate")

    assert [c["uuid"] for c in simulator.placed()] == [first["uuid"]]
    assert len(simulator.calls()) == 1
    assert [e["lead_id"] for e in conversions(page)] == [first["lead_id"]]  # counted once


def test_a_success_leaves_when_the_next_lead_is_typed_or_the_form_is_reset(
    page: Page, site: LandingServer, fn: FunctionProcess, simulator: Simulator
) -> None:
    page.goto(f"{site.origin}/index.html")
    fill_like_a_person(page, "Nora Paz", "9 3123 4455", "nora@example.cl")
    submit(page, fn)
    assert shown(page) == (PLACED_TEXT, "ok", "placed")
    assert page.locator("#nombre").input_value() == ""  # the form was reset, the message stayed up

    # A new lead typed in: the message about the last one leaves.
    page.get_by_label("Nombre").fill("Otro")
    assert page.locator("#form-status").is_hidden()
    assert page.locator("#form-status").inner_text() == ""

    fill_like_a_person(page, "Olga Paz", "9 3234 5566", "olga@example.cl")
    submit(page, fn)
    assert shown(page) == (PLACED_TEXT, "ok", "placed")
    page.locator("#lead-form").evaluate("(form) => form.reset()")
    assert page.locator("#form-status").is_hidden()
    assert len(simulator.placed()) == 2

    # An error stays while the person fixes what it names.
    fill_like_a_person(page, "Olga Paz", "9 12", "olga@example.cl")
    submit(page, fn)
    assert shown(page)[1] == "error"
    page.get_by_label("Teléfono").press_sequentially("34")
    assert page.locator("#form-status").is_visible()


# -- E: consent --


def test_the_browser_does_not_send_the_form_without_consent(
    page: Page, site: LandingServer, fn: FunctionProcess, simulator: Simulator
) -> None:
    posts_before, preflights_before = requests_seen(fn, "POST"), requests_seen(fn, "OPTIONS")
    sent: list[str] = []
    page.on("request", lambda request: sent.append(request.url) if request.url.startswith(fn.url) else None)
    page.goto(f"{site.origin}/index.html")
    fill_like_a_person(page, "Isabel Fuentes", "9 6677 8899", "isabel@example.cl", consent=False)
    page.get_by_role("button", name="Quiero que me llamen").click()

    box = page.get_by_label("Acepto que Acme Seguros me llame")
    assert box.evaluate("(input) => input.validity.valueMissing") is True
    assert page.locator("#lead-form").evaluate("(form) => form.checkValidity()") is False
    page.wait_for_timeout(500)  # time enough for a request the page should not send
    assert sent == []
    assert page.locator("#form-status").is_hidden()
    assert (requests_seen(fn, "POST"), requests_seen(fn, "OPTIONS")) == (posts_before, preflights_before)

    box.check()
    assert submit(page, fn).status == 200
    assert shown(page) == (PLACED_TEXT, "ok", "placed")
    assert len(simulator.placed()) == 1


def test_a_submission_without_consent_is_refused_and_the_page_says_why(
    page: Page, site: LandingServer, fn: FunctionProcess, simulator: Simulator
) -> None:
    # An old copy of the page, or a script, that does not require the box: the function still refuses.
    page.goto(f"{site.origin}/index.html")
    page.locator("#acepto").evaluate("(input) => input.removeAttribute('required')")
    fill_like_a_person(page, "Juan Silva", "9 7788 9900", "juan@example.cl", consent=False)
    response = submit(page, fn)

    assert response.status == 422
    assert "acepto" not in (response.request.post_data_json or {})
    answer = response.json()
    assert (answer["success"], answer["error"]) == (False, "consent_missing")
    assert isinstance(answer["message"], str)
    assert answer["message"]
    assert shown(page)[:2] == (CONSENT_MISSING_TEXT, "error")
    assert page.locator("#form-status").get_attribute("data-error") == "consent_missing"
    assert conversions(page) == []
    assert simulator.calls() == []


def test_a_plain_post_without_consent_lands_on_error_with_the_reason(
    page: Page, site: LandingServer, fn: FunctionProcess, simulator: Simulator
) -> None:
    page.goto(f"{site.origin}/index.html?nojs=1")
    page.locator("#acepto").evaluate("(input) => input.removeAttribute('required')")
    fill_like_a_person(page, "Karen Araya", "9 8899 0011", "karen@example.cl", consent=False)
    page.get_by_role("button", name="Quiero que me llamen").click()
    page.wait_for_url(f"{site.origin}/error.html?error=consent_missing")
    assert page.locator("#error-text").inner_text() == CONSENT_MISSING_TEXT
    assert simulator.calls() == []


def test_error_page_explains_an_opted_out_number(page: Page, site: LandingServer) -> None:
    page.goto(f"{site.origin}/error.html?error=opted_out")
    assert page.locator("#error-text").inner_text() == OPTED_OUT_TEXT
    assert page.locator("#error-text").get_attribute("data-error") == "opted_out"


def test_privacy_notice_is_linked_from_the_consent_box_and_loads(page: Page, site: LandingServer) -> None:
    page.goto(f"{site.origin}/index.html")
    link = page.locator("label[for=acepto] a")
    assert link.get_attribute("href") == "privacidad.html"
    page.goto(f"{site.origin}/{link.get_attribute('href')}")
    assert page.title() == "Aviso de privacidad · Acme Seguros"
    text = page.locator("main").inner_text()
    assert "Ley N° 21.719" in text


# -- G: a phone --


def test_the_call_button_is_on_a_phones_first_screen(
    browser: Browser, site: LandingServer, fn: FunctionProcess, simulator: Simulator, tmp_path: Path
) -> None:
    context = _context(browser, phone=True)
    try:
        page = context.new_page()
        page.goto(f"{site.origin}/index.html")
        assert page.evaluate("() => [window.innerWidth, window.innerHeight]") == [PHONE["width"], PHONE["height"]]
        button = page.get_by_role("button", name="Quiero que me llamen")
        box = button.bounding_box()
        assert box is not None
        assert box["y"] >= 0
        assert box["y"] + box["height"] <= PHONE["height"], f"the button ends at {box['y'] + box['height']} px"
        assert page.evaluate("() => window.scrollY") == 0
        # The headline is above it, and the page does not scroll sideways.
        assert page.locator("h1").bounding_box()["y"] < box["y"]  # type: ignore[index]
        assert page.evaluate("() => document.documentElement.scrollWidth") <= PHONE["width"]

        shot = tmp_path / "phone.png"
        page.screenshot(path=str(shot))
        assert_png(shot)
        if target := os.environ.get("LANDING_SCREENSHOT_PHONE"):
            page.screenshot(path=target)

        # Sent from the phone, the answer shows up under the button, still on the first screen.
        fill_like_a_person(page, "Pía Soto", "9 7766 5544", "pia@example.cl")
        page.evaluate("() => window.scrollTo(0, 0)")
        submit(page, fn)
        assert shown(page) == (PLACED_TEXT, "ok", "placed")
        status = page.locator("#form-status").bounding_box()
        assert status is not None
        assert status["y"] + status["height"] <= PHONE["height"]
        assert len(simulator.placed()) == 1
    finally:
        context.close()


# -- F: the files as they ship, read without a browser --


def test_shipped_route_requires_consent_and_carries_the_campaign() -> None:
    route = tomllib.loads((LANDING / "formcall.toml").read_text(encoding="utf-8"))["routes"]["default"]
    assert route["consent"] == CONSENT
    for name in CAMPAIGN_FIELDS:
        assert route["adicional"][name] == "{{ " + name + " }}"


def test_shipped_page_has_the_consent_box_and_the_campaign_fields() -> None:
    html = (LANDING / "index.html").read_text(encoding="utf-8")
    box = re.search(r"<input[^>]*\bid=\"acepto\"[^>]*>", html)
    assert box, "no consent box"
    for attribute in ('name="acepto"', 'type="checkbox"', "required"):
        assert attribute in box[0]
    for name in CAMPAIGN_FIELDS + META_CLICK_FIELDS:
        assert re.search(rf'<input type="hidden" name="{name}" value="">', html), name
    ads = re.search(r"<input[^>]*\bid=\"acepto_publicidad\"[^>]*>", html)
    assert ads, "no ads consent box"
    # A purpose of its own: a box of its own, never required, never pre-ticked.
    assert 'type="checkbox"' in ads[0] and "required" not in ads[0] and "checked" not in ads[0]
    # The value the box sends is one the function reads as consent given.
    assert re.search(r'value="(si|sí|on|yes|true|1|acepto)"', box[0], re.IGNORECASE)


def test_privacy_notice_says_what_the_law_asks() -> None:
    notice = (LANDING / "privacidad.html").read_text(encoding="utf-8")
    for words in (
        "21.719",
        "1 de diciembre de 2026",
        "número",
        "nombre",
        "email",
        "consentimiento",
        "resultado de la llamada",
        "30 días",
        "apenas termina la llamada",
        "llamarte de vuelta",
        "Acceso",
        "Rectificación",
        "Supresión",
        "Oposición",
        "privacidad@acmeseguros.cl",
        "v2026-12",
    ):
        assert words in notice, words
    # The law the pages cite is the one in force; the old one is gone from the example and its guide.
    for path in [*LANDING.glob("*.html"), *LANDING.glob("*.md"), ROOT / "docs" / "landing-page.md"]:
        assert "19.628" not in path.read_text(encoding="utf-8"), path


def test_every_error_word_of_the_spec_has_a_spanish_sentence() -> None:
    mensajes = (LANDING / "mensajes.js").read_text(encoding="utf-8")
    for word in (
        "listo",
        "pendiente",
        "programada",
        "duplicada",
        "phone_missing",
        "invalid_phone",
        "region_not_allowed",
        "number_type_not_allowed",
        "consent_missing",
        "opted_out",
        "captcha_failed",
        "rate_limited",
        "formcall_rejected",
    ):
        assert re.search(rf"^\s*{word}: \"[^\"]+\",?$", mensajes, re.MULTILINE), word


# -- hours: a page names only the hours the route's config sets --

DAYS = {"mon": "lunes", "tue": "martes", "wed": "miércoles", "thu": "jueves", "fri": "viernes", "sat": "sábado"}
DAYS["sun"] = "domingo"
DAY_NAMES = "|".join(DAYS.values())
HOURS_WORDS = re.compile(rf"\b\d{{1,2}}:\d{{2}}\b|\b(?:{DAY_NAMES})\b|horario hábil", re.IGNORECASE)


def hours_configured(config: dict[str, Any]) -> set[str]:
    """The times and day names the default route's retry.service_hours sets (empty when unset)."""
    retry = {**config.get("defaults", {}).get("retry", {}), **config["routes"]["default"].get("retry", {})}
    hours = retry.get("service_hours") if isinstance(retry, dict) else None
    if not hours:
        return set()
    allowed = {"horario hábil"}
    order = list(DAYS)
    for part in hours.split(","):
        days, _, times = part.strip().partition(" ")
        first, _, last = days.partition("-")
        span = order[order.index(first) : order.index(last or first) + 1] if first in order else order
        allowed |= {DAYS[day] for day in span}
        allowed |= {time.lstrip("0") if not time.startswith("0:") else time for time in times.split("-")}
    return allowed


def hours_named(text: str) -> set[str]:
    return {word.lower().lstrip("0") if ":" in word else word.lower() for word in HOURS_WORDS.findall(text)}


def hours_problems(config: dict[str, Any], pages: dict[str, str]) -> list[str]:
    allowed = hours_configured(config)
    return [
        f"{name} names {word!r}, which the route's service_hours does not set"
        for name, text in sorted(pages.items())
        for word in sorted(hours_named(text) - allowed)
    ]


def shipped_pages() -> dict[str, str]:
    return {p.name: p.read_text(encoding="utf-8") for p in sorted([*LANDING.glob("*.html"), *LANDING.glob("*.js")])}


def test_the_pages_name_no_hours_the_config_does_not_set() -> None:
    config = tomllib.loads((LANDING / "formcall.toml").read_text(encoding="utf-8"))
    assert hours_problems(config, shipped_pages()) == []
    assert "gracias.html" in shipped_pages()


def test_the_hours_check_holds_pages_to_the_config() -> None:
    without = {"routes": {"default": {}}}
    with_hours = {"routes": {"default": {"retry": {"service_hours": "mon-fri 09:00-19:00"}}}}
    promise = "te llamaremos en horario hábil, de lunes a viernes entre 9:00 y 19:00."
    assert hours_problems(with_hours, {"gracias.html": promise}) == []
    assert hours_problems(without, {"gracias.html": promise}) == [
        f"gracias.html names {word!r}, which the route's service_hours does not set"
        for word in ("19:00", "9:00", "horario hábil", "lunes", "viernes")
    ]
    assert hours_problems(with_hours, {"x.js": "el sábado de 10:00 a 14:00"}) == [
        "x.js names '10:00', which the route's service_hours does not set",
        "x.js names '14:00', which the route's service_hours does not set",
        "x.js names 'sábado', which the route's service_hours does not set",
    ]
