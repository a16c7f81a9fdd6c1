"""examples/landing/ in a real headless Chromium: the page on one loopback origin, the function on another.

The page is served as it ships, except that index.html's function URL (action and data-endpoint, both
http://127.0.0.1:8080/ for `make run`) is replaced by the test's function, as a user edits that tag. The
function runs in a real functions-framework process with examples/landing/formcall.toml, its page origin
(http://127.0.0.1:8000) replaced by the test's, against the FormCall simulator.

Needs Debian's chromium (`apt-get install chromium`), driven by Playwright's Python package; Playwright's
own browser downloads are never used. Where either is missing the tests skip, except under CI, where they fail.
LANDING_SCREENSHOT=examples/landing/screenshot.png regenerates the README's screenshot.
"""

from __future__ import annotations

import os
import shutil
import threading
import tomllib
from collections.abc import Callable, Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn
from urllib.parse import quote, urlsplit

import pytest

from formcall_webhook.simulator import Simulator
from tests.harness import ROOT, FunctionProcess

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page, Response

LANDING = ROOT / "examples" / "landing"
LOCAL_PAGE_ORIGIN = "http://127.0.0.1:8000"  # what examples/landing/formcall.toml is written for
LOCAL_ENDPOINT = "http://127.0.0.1:8080/"  # what examples/landing/index.html posts to (`make run`)
TOKEN = "formcall-landing-5e2a"
SIMULATOR_TOKENS = (TOKEN,)  # the tokens the module's simulator accepts (tests/conftest.py)
POPUP = "e5c98214-d0f6-11e1-8c30-001d09ef4a24"
ORIGEN = "Landing Acme Seguros"
SUCCESS_TEXT = "¡Listo! Te llamaremos en segundos."
INVALID_PHONE_TEXT = "Ese número de teléfono no parece válido. Escríbelo como +56 9 1234 5678."
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
TIMEOUT_MS = 15_000  # per action; generous for a loaded machine, never reached when all is well


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


@pytest.fixture(scope="module", autouse=True)
def chromium() -> str:
    """First of all: without a browser, skip (or fail under CI) before starting anything."""
    return _chromium_path()


@pytest.fixture(scope="module")
def site() -> Iterator[LandingServer]:
    server = LandingServer()
    thread = threading.Thread(target=server.serve_forever, name="landing-page", daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def landing_config(page_origin: str) -> str:
    """examples/landing/formcall.toml with the test's page origin in cors_origins and redirect."""
    text = (LANDING / "formcall.toml").read_text(encoding="utf-8")
    assert LOCAL_PAGE_ORIGIN in text
    return text.replace(LOCAL_PAGE_ORIGIN, page_origin)


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


def _context(browser: Browser, javascript: bool = True) -> BrowserContext:
    context = browser.new_context(
        java_script_enabled=javascript, locale="es-CL", viewport={"width": 1280, "height": 860}
    )
    context.set_default_timeout(TIMEOUT_MS)
    return context


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


def fill_like_a_person(page: Page, nombre: str, telefono: str, email: str) -> None:
    """Through the labels a person reads; the number key by key, spaces and all, as people type it."""
    page.get_by_label("Nombre").fill(nombre)
    page.get_by_label("Teléfono").press_sequentially(telefono, delay=10)
    page.get_by_label("Email").fill(email)


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


# -- A: JavaScript on, fetch with JSON across origins --


def test_fetch_submission_shows_success_and_places_one_call(
    page: Page, site: LandingServer, fn: FunctionProcess, simulator: Simulator, tmp_path: Path
) -> None:
    preflights_before = requests_seen(fn, "OPTIONS")
    page.goto(f"{site.origin}/index.html")
    fill_like_a_person(page, "Ana Pérez", "9 6123 4567", "ana@example.cl")
    with page.expect_response(is_function_post(fn)) as answer:
        page.get_by_role("button", name="Quiero que me llamen").click()
    response = answer.value

    assert response.status == 200
    assert response.headers["access-control-allow-origin"] == site.origin
    assert response.request.headers["content-type"] == "application/json"
    assert response.request.post_data_json == {
        "nombre": "Ana Pérez",
        "telefono": "9 6123 4567",
        "email": "ana@example.cl",
        "_gotcha": "",
    }
    status = page.locator("#form-status")
    status.wait_for(state="visible")
    assert status.inner_text() == SUCCESS_TEXT
    assert status.get_attribute("data-kind") == "ok"
    # The JSON body reached the page (CORS let it read it) and names the call the simulator placed.
    call = assert_one_call(simulator, "61234567", "Ana Pérez", "ana@example.cl")
    assert response.json() == {"success": True, "uuid": call["uuid"]}
    # application/json is not a simple content type: the browser asked first, and the function said yes.
    assert requests_seen(fn, "OPTIONS") == preflights_before + 1

    shot = tmp_path / "landing.png"
    page.screenshot(path=str(shot))
    assert_png(shot)
    if target := os.environ.get("LANDING_SCREENSHOT"):
        page.screenshot(path=str(ROOT / target))


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
        assert page.locator("h1").inner_text() == SUCCESS_TEXT
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
    with page.expect_response(is_function_post(fn)) as answer:
        page.get_by_role("button", name="Quiero que me llamen").click()
    response = answer.value

    assert response.url == endpoint
    assert response.status == 422
    assert response.json()["error"] == "invalid_phone"
    status = page.locator("#form-status")
    status.wait_for(state="visible")
    assert status.inner_text() == INVALID_PHONE_TEXT
    assert status.get_attribute("data-error") == "invalid_phone"
    assert status.get_attribute("data-kind") == "error"
    # The form keeps what was typed, so the person only fixes the number.
    assert page.locator("#nombre").input_value() == "Diego Rojas"
    assert simulator.calls() == []

    # error.html (where JavaScript-off posts land) says the same sentence for the same word.
    page.goto(f"{site.origin}/error.html?error=invalid_phone")
    assert page.locator("#error-text").inner_text() == INVALID_PHONE_TEXT


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
    with page.expect_response(is_function_post(fn)) as answer:
        page.get_by_role("button", name="Quiero que me llamen").click()
    assert answer.value.status == 200
    page.locator("#form-status").wait_for(state="visible")
    assert page.locator("#form-status").inner_text() == SUCCESS_TEXT
    assert simulator.calls() == []
