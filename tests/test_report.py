"""`leads report --html` (spec 9): the page from a week of records built directly, read as HTML and
then in the real headless Chromium at a desktop's and a phone's size.

The browser test screenshots both sizes (REPORT_SCREENSHOTS=DIR, default the test's tmp dir) and holds
the page to what it promises: nothing fetched from anywhere (every request the browser makes is logged,
and anything but the page itself fails the test), no text cut off at either size, no sideways scroll on
the phone, and no phone number on it, masked or whole.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from formcall_webhook import figures, report
from tests.report_sample import record, week
from tests.test_landing_browser import CHROMIUM_ARGS, _chromium_path, _unavailable

if TYPE_CHECKING:
    from playwright.sync_api import Browser

NOW = datetime(2026, 12, 6, 15, 0, tzinfo=UTC)
SIZES = {"desktop": {"width": 1366, "height": 900}, "phone": {"width": 390, "height": 844}}
# Anything that would make a browser fetch: a URL with a scheme or protocol-relative, a CSS url() or
# @import, an attribute that loads (src, href, srcset, xlink:href), a script.
EXTERNAL = re.compile(r"(?i)(?:\b[a-z][a-z0-9+.-]*:)?//[^\s\"'<>]|url\(|@import|\b(?:src|href|srcset)\s*=|<script")


def page(lang: str = "es", records: list[dict[str, Any]] | None = None) -> str:
    found = week(NOW.timestamp()) if records is None else records
    leads = figures.leads_of(found)
    return report.render(leads, lang=lang, window="7d", zone="America/Santiago", generated=NOW)


def test_the_page_references_nothing_outside_itself() -> None:
    text = page()
    assert EXTERNAL.findall(text) == []
    assert f'<meta http-equiv="Content-Security-Policy" content="{report.CSP}">' in text
    assert "default-src 'none'" in report.CSP and "script-src" not in report.CSP


def test_spanish_by_default_english_when_asked() -> None:
    spanish, english = page(), page("en")
    assert '<html lang="es">' in spanish and "Leads y llamadas" in spanish and "Campañas lado a lado" in spanish
    assert "Leads recibidos en los últimos 7 días" in spanish
    assert '<html lang="en">' in english and "Campaigns side by side" in english and "mediana" not in english
    with pytest.raises(ValueError, match="lang"):
        report.render([], lang="fr", window="7d", zone="UTC", generated=NOW)


def test_no_number_masked_or_whole_and_names_escaped() -> None:
    hostile = '<img src=x onerror="alert(1)">'
    records = [record(NOW.timestamp() - 3600, utm_campaign=hostile, utm_source="google", phone="+56*****567",
                      payload={"country_code": "56", "areacode": "9", "phonenumber": "61234567"})]  # fmt: skip
    text = page(records=records)
    assert "567" not in text and "61234567" not in text and "*****" not in text
    assert hostile not in text and "&lt;img src=x" in text


def test_an_empty_period_says_so() -> None:
    text = page(records=[])
    assert "No llegaron leads en este periodo." in text and "<svg" not in text


def test_figures_on_the_page_are_the_stats() -> None:
    leads = figures.leads_of(week(NOW.timestamp()))
    total = figures.summary(leads)
    text = page()
    assert f"<b>{total['leads']}</b>" in text
    assert f"<b>{report.percent(total['connect_rate'])}</b>" in text
    assert f"<b>{report.duration(total['median_seconds'], 'es')}</b>" in text
    for row in figures.rows(leads, "utm_campaign"):
        if row["utm_campaign"]:
            assert f">{row['utm_campaign']}</text>" in text
            assert f"{row['leads']} leads" in text


# -- in the browser --


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    chromium = _chromium_path()
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


# Every text of every visible chart, where it is drawn compared with its chart's box, in CSS pixels.
_TEXTS = """() => [...document.querySelectorAll('svg')].filter(s => s.getClientRects().length).flatMap(svg => {
  const box = svg.getBoundingClientRect();
  return [...svg.querySelectorAll('text')].filter(t => t.textContent).map(t => {
    const r = t.getBoundingClientRect();
    return {text: t.textContent, cls: svg.getAttribute('class'), height: r.height,
            out: r.left < box.left - 1 || r.right > box.right + 1 || r.top < box.top - 1 || r.bottom > box.bottom + 1};
  });
})"""


@pytest.mark.parametrize("size", SIZES)
def test_in_chromium_at_desktop_and_phone_size(browser: Browser, tmp_path: Path, size: str) -> None:
    html = tmp_path / "report.html"
    html.write_text(page(), encoding="utf-8")
    context = browser.new_context(viewport=SIZES[size], device_scale_factor=1)
    requests: list[str] = []
    context.on("request", lambda request: requests.append(request.url))
    # Nothing is let out even if the page asked: a request anywhere but the page is logged and refused.
    context.route(re.compile(r"^(?!file://).*"), lambda route: route.abort())
    try:
        tab = context.new_page()
        tab.goto(html.as_uri(), wait_until="load")
        tab.wait_for_load_state("networkidle")
        shots = Path(os.environ.get("REPORT_SCREENSHOTS") or tmp_path)
        shots.mkdir(parents=True, exist_ok=True)
        tab.screenshot(path=str(shots / f"report-{size}.png"), full_page=True)
        assert requests == [html.as_uri()]

        shown = "narrow" if size == "phone" else "wide"
        texts = tab.evaluate(_TEXTS)
        assert texts and {t["cls"] for t in texts} == {shown}
        assert [t["text"] for t in texts if t["out"]] == []
        # Readable: no chart text under 9 CSS pixels tall once scaled to the screen.
        assert min(t["height"] for t in texts) >= 9, sorted(texts, key=lambda t: t["height"])[:3]
        assert tab.evaluate("document.documentElement.scrollWidth") <= SIZES[size]["width"]
        assert tab.locator("h1").inner_text() == "Leads y llamadas"
        # The charts people came for: per day, the wait's distribution, and the campaigns.
        assert tab.locator(f"svg.{shown}").count() == 4
        assert tab.locator(f"svg.{shown} >> text=/^mediana /").count() == 1
        # The headline figures are on the first screen.
        kpis = tab.locator(".kpi").all()
        assert len(kpis) == 5
        assert all(kpi.bounding_box()["y"] < SIZES[size]["height"] for kpi in kpis)  # type: ignore[index]
    finally:
        context.close()
