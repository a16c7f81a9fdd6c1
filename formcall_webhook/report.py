"""`leads report --html` (spec 9): the figures as one self-contained page. Pure: figures in, HTML out.

Everything is in the page: the styles inline, the charts inline SVG drawn here, the system's own fonts,
no script. Its Content-Security-Policy forbids loading anything else, so a stray reference could not
reach the network either. No phone number appears on it, masked or whole: only counts, times and the
campaign and route names. Every chart is drawn twice, for a wide screen and for a phone, and CSS shows
the one that fits, so text stays readable at both sizes.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime
from typing import Any

from .figures import STATES, Lead, days, key_of, percentile, summary
from .figures import rows as grouped

LANGUAGES = ("es", "en")
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"

# Colours: one per state, one for the connect rate; readable on white and for common colour blindness.
COLOURS = {"placed": "#2563eb", "pending": "#7dd3fc", "scheduled": "#f59e0b", "failed": "#e11d48"}
RATE = "#059669"
INK, MUTED, GRID = "#0f172a", "#64748b", "#e2e8f0"

# The waits' buckets, in seconds: the time to the first call as a distribution.
BUCKETS = (0, 30, 60, 120, 300, 900, 3600, 10800, 43200)
BUCKET_LABELS = ("<30s", "30s–1m", "1–2m", "2–5m", "5–15m", "15–60m", "1–3h", "3–12h", "12h+")
NARROW = 344  # a 390-pixel phone's card, inside its margins
TOP_GROUPS = 8  # campaigns and sources shown; the rest are summed as one row

TEXT: dict[str, dict[str, str]] = {
    "es": {
        "title": "Leads y llamadas",
        "window": "Leads recibidos en los últimos {window}",
        "zone": "días en {zone}",
        "generated": "generado el {at}",
        "leads": "Leads",
        "called": "Llamados",
        "connect_rate": "Contestan",
        "median": "Mediana hasta la llamada",
        "p90": "9 de cada 10, antes de",
        "failed": "Perdidos",
        "connect_hint": "de las llamadas con resultado",
        "no_outcome": "sin resultado registrado",
        "calls_hint": "{calls} llamadas · {per} por lead",
        "called_hint": "{share} de los leads",
        "wait_hint": "desde que llega el formulario",
        "failed_hint": "no se pudieron llamar",
        "per_day": "Leads por día y tasa de conexión",
        "per_day_note": "Barras: leads del día según su estado. Línea: qué parte de las llamadas se conectó.",
        "wait": "¿Cuánto esperan por la llamada?",
        "wait_note": "Tiempo desde el envío del formulario hasta la primera llamada, por tramo.",
        "campaigns": "Campañas lado a lado",
        "campaigns_note": "Leads por campaña y fuente; en verde, los que contestaron.",
        "by_campaign": "Por campaña (utm_campaign)",
        "by_source": "Por fuente (utm_source)",
        "none": "(sin campaña)",
        "none_source": "(sin fuente)",
        "others": "otras",
        "placed": "llamado",
        "pending": "en cola de FormCall",
        "scheduled": "por llamar",
        "failed_state": "perdido",
        "rate": "tasa de conexión",
        "median_short": "mediana",
        "leads_short": "leads",
        "connected_short": "contestan",
        "no_waits": "Todavía no hay llamadas en este periodo.",
        "empty": "No llegaron leads en este periodo.",
        "empty_hint": "Prueba con un periodo más largo: --since 30d",
        "detail": "Detalle por día",
        "day": "Día",
        "calls_per_lead": "Llamadas por lead",
        "connected": "Conectados",
        "successful": "Exitosos",
        "p90_short": "p90",
        "footer": "Sin números de teléfono: solo conteos, tiempos y nombres de campaña. "
        "«–»: la ruta no registra resultados de llamada (outcome).",
        "units": "s,min,h,días",
        "months": "ene,feb,mar,abr,may,jun,jul,ago,sep,oct,nov,dic",
    },
    "en": {
        "title": "Leads and calls",
        "window": "Leads received in the last {window}",
        "zone": "days in {zone}",
        "generated": "generated {at}",
        "leads": "Leads",
        "called": "Called",
        "connect_rate": "Answered",
        "median": "Median wait for the call",
        "p90": "9 in 10 called within",
        "failed": "Lost",
        "connect_hint": "of the calls with an outcome",
        "no_outcome": "no outcome tracked",
        "calls_hint": "{calls} calls · {per} per lead",
        "called_hint": "{share} of the leads",
        "wait_hint": "from the form's submission",
        "failed_hint": "could not be called",
        "per_day": "Leads per day and connect rate",
        "per_day_note": "Bars: the day's leads by state. Line: the share of calls that connected.",
        "wait": "How long do they wait for the call?",
        "wait_note": "Time from the form's submission to the first call, in ranges.",
        "campaigns": "Campaigns side by side",
        "campaigns_note": "Leads per campaign and source; in green, those who answered.",
        "by_campaign": "By campaign (utm_campaign)",
        "by_source": "By source (utm_source)",
        "none": "(no campaign)",
        "none_source": "(no source)",
        "others": "others",
        "placed": "called",
        "pending": "queued at FormCall",
        "scheduled": "to be called",
        "failed_state": "lost",
        "rate": "connect rate",
        "median_short": "median",
        "leads_short": "leads",
        "connected_short": "answered",
        "no_waits": "No calls yet in this period.",
        "empty": "No leads arrived in this period.",
        "empty_hint": "Try a longer period: --since 30d",
        "detail": "Day by day",
        "day": "Day",
        "calls_per_lead": "Calls per lead",
        "connected": "Connected",
        "successful": "Successful",
        "p90_short": "p90",
        "footer": "No phone numbers: only counts, times and campaign names. “–”: the route tracks no call outcome.",
        "units": "s,min,h,days",
        "months": "Jan,Feb,Mar,Apr,May,Jun,Jul,Aug,Sep,Oct,Nov,Dec",
    },
}

STYLE = """
*{box-sizing:border-box}
html{-webkit-text-size-adjust:100%}
body{margin:0;background:#f1f5f9;color:#0f172a;font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,
"Helvetica Neue",Arial,sans-serif}
main{max-width:1180px;margin:0 auto;padding:28px 24px 40px}
header h1{margin:0;font-size:28px;letter-spacing:-.02em}
header p{margin:4px 0 0;color:#475569}
.kpis{display:grid;grid-template-columns:repeat(5,1fr);gap:14px;margin:22px 0}
.kpi{background:#fff;border-radius:14px;padding:14px 16px;box-shadow:0 1px 2px rgba(15,23,42,.06),
0 1px 8px rgba(15,23,42,.04);border-top:4px solid var(--c)}
.kpi b{display:block;font-size:30px;line-height:1.15;letter-spacing:-.02em;font-variant-numeric:tabular-nums}
.kpi span{display:block;font-size:13px;color:#475569}
.kpi small{display:block;font-size:12px;color:#64748b;margin-top:2px}
.card{background:#fff;border-radius:16px;padding:18px 20px 14px;margin:0 0 18px;
box-shadow:0 1px 2px rgba(15,23,42,.06),0 1px 8px rgba(15,23,42,.04)}
.card h2{margin:0;font-size:18px;letter-spacing:-.01em}
.card h3{margin:6px 0 2px;font-size:15px;color:#334155}
.note{margin:2px 0 10px;color:#64748b;font-size:13px}
.row{display:grid;grid-template-columns:1.25fr 1fr;gap:0 18px}
.pair{display:grid;grid-template-columns:1fr 1fr;gap:22px}
.legend{display:flex;flex-wrap:wrap;gap:6px 14px;margin:0 0 6px;padding:0;list-style:none;font-size:13px;color:#334155}
.legend i{display:inline-block;width:11px;height:11px;border-radius:3px;margin-right:5px;vertical-align:-1px}
.legend i.line{height:3px;border-radius:2px;vertical-align:3px;width:16px}
svg{display:block;width:100%;height:auto}
svg text{font-family:inherit}
.narrow{display:none}
.empty{padding:40px 10px;text-align:center;color:#475569}
.empty b{display:block;font-size:20px;color:#0f172a}
details{margin-top:4px}
summary{cursor:pointer;font-weight:600;font-size:15px;padding:4px 0}
.scroll{overflow-x:auto}
table{border-collapse:collapse;width:100%;font-size:13px;font-variant-numeric:tabular-nums;margin-top:8px}
th,td{padding:6px 8px;text-align:right;border-bottom:1px solid #e2e8f0;white-space:nowrap}
th:first-child,td:first-child{text-align:left}
th{color:#475569;font-weight:600}
footer{color:#64748b;font-size:12px;margin-top:10px}
@media (max-width:900px){.kpis{grid-template-columns:repeat(3,1fr)}.row,.pair{grid-template-columns:1fr}}
@media (max-width:560px){
main{padding:16px 12px 28px}header h1{font-size:23px}
.kpis{grid-template-columns:1fr 1fr;gap:10px;margin:16px 0}.kpi{padding:10px 12px}.kpi b{font-size:24px}
.kpi:first-child{grid-column:1/-1}
.card{padding:14px 12px 10px;border-radius:14px}
.wide{display:none}.narrow{display:block}}
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _f(value: float) -> str:
    """A coordinate: one decimal, no trailing zero."""
    return f"{value:.1f}".rstrip("0").rstrip(".")


def duration(seconds: float | None, lang: str) -> str:
    """A wait in words a person reads: 45 s, 3 min, 1 h 20 min, 2 días."""
    if seconds is None:
        return "–"
    s_unit, m_unit, h_unit, d_unit = TEXT[lang]["units"].split(",")
    whole = round(seconds)
    if whole < 60:
        return f"{whole} {s_unit}"
    if whole < 3600:
        minutes, rest = divmod(whole, 60)
        return f"{minutes} {m_unit}" + (f" {rest} {s_unit}" if rest and minutes < 10 else "")
    if whole < 86400:
        hours, rest = divmod(whole // 60, 60)
        return f"{hours} {h_unit}" + (f" {rest} {m_unit}" if rest else "")
    return f"{whole / 86400:.1f}".rstrip("0").rstrip(".") + f" {d_unit}"


def window_words(window: str, lang: str) -> str:
    """ "7d" as "7 días" / "7 days"."""
    number, unit = window[:-1], window[-1:]
    words = {
        "es": {"s": ("segundo", "segundos"), "m": ("minuto", "minutos"), "h": ("hora", "horas"), "d": ("día", "días")},
        "en": {"s": ("second", "seconds"), "m": ("minute", "minutes"), "h": ("hour", "hours"), "d": ("day", "days")},
    }[lang]
    if not number.isdigit() or unit not in words:
        return window
    one, many = words[unit]
    return f"{number} {one if int(number) == 1 else many}"


def percent(rate: float | None) -> str:
    return "–" if rate is None else f"{rate * 100:.0f}%"


def _axis_top(value: float) -> int:
    """The axis top: four equal whole steps of 1, 2, 3, 4, 5, 6 or 8 times a power of ten, at or above value."""
    raw = max(1.0, value / 4)
    power = 10 ** math.floor(math.log10(raw))
    step = next(s * power for s in (1, 2, 3, 4, 5, 6, 8, 10) if s * power >= raw)
    return int(step * 4)


def _day_label(day: str, lang: str) -> str:
    found = date.fromisoformat(day)
    month = TEXT[lang]["months"].split(",")[found.month - 1]
    return f"{found.day} {month}" if lang == "es" else f"{month} {found.day}"


def _svg(width: int, height: int, label: str, body: list[str], css_class: str) -> str:
    return (
        f'<svg class="{css_class}" viewBox="0 0 {width} {height}" role="img" aria-label="{_e(label)}">'
        f"<title>{_e(label)}</title>" + "".join(body) + "</svg>"
    )


# -- the charts --


def day_chart(rows: Sequence[Mapping[str, Any]], lang: str, width: int, css_class: str) -> str:
    """Stacked bars of the day's leads by state, and the connect rate as a line on its own axis."""
    t = TEXT[lang]
    narrow = css_class == "narrow"
    height = 250 if narrow else 290
    font = 11 if narrow else 12
    left, right, top, bottom = (30, 40, 14, 30) if narrow else (40, 46, 16, 34)
    plot_w, plot_h = width - left - right, height - top - bottom
    top_value = _axis_top(max((row["leads"] for row in rows), default=0))
    body: list[str] = []
    for i in range(5):
        y = top + plot_h - plot_h * i / 4
        body.append(f'<line x1="{left}" x2="{width - right}" y1="{_f(y)}" y2="{_f(y)}" stroke="{GRID}"/>')
        body.append(f'<text x="{left - 6}" y="{_f(y + 4)}" font-size="{font}" fill="{MUTED}" '
                    f'text-anchor="end">{top_value * i // 4}</text>')  # fmt: skip
        body.append(f'<text x="{width - right + 6}" y="{_f(y + 4)}" font-size="{font}" fill="{RATE}">'
                    f"{i * 25}%</text>" if i % 2 == 0 else "")  # fmt: skip
    band = plot_w / max(1, len(rows))
    bar = min(band * 0.66, 46)
    every = max(1, math.ceil(len(rows) / (plot_w / (44 if narrow else 58))))
    points: list[tuple[float, float, Mapping[str, Any]]] = []
    for i, row in enumerate(rows):
        x = left + band * i + (band - bar) / 2
        y = top + plot_h
        for state in STATES:
            count = row[state]
            if not count:
                continue
            h = plot_h * count / top_value
            y -= h
            name = t["failed_state"] if state == "failed" else t[state]
            body.append(f'<rect x="{_f(x)}" y="{_f(y)}" width="{_f(bar)}" height="{_f(h)}" fill="{COLOURS[state]}">'
                        f"<title>{_e(_day_label(row['day'], lang))}: {count} {_e(name)}</title></rect>")  # fmt: skip
        if row["leads"] and not narrow:
            body.append(f'<text x="{_f(x + bar / 2)}" y="{_f(y - 5)}" font-size="{font}" fill="{INK}" '
                        f'text-anchor="middle" font-weight="600">{row["leads"]}</text>')  # fmt: skip
        if i % every == 0:
            body.append(f'<text x="{_f(left + band * i + band / 2)}" y="{height - bottom + 18}" font-size="{font}" '
                        f'fill="{MUTED}" text-anchor="middle">{_e(_day_label(row["day"], lang))}</text>')  # fmt: skip
        if row["connect_rate"] is not None:
            points.append((left + band * i + band / 2, top + plot_h * (1 - row["connect_rate"]), row))
    if len(points) > 1:
        path = " ".join(f"{_f(x)},{_f(y)}" for x, y, _ in points)
        body.append(f'<polyline points="{path}" fill="none" stroke="{RATE}" stroke-width="2.5" '
                    f'stroke-linejoin="round" stroke-linecap="round"/>')  # fmt: skip
    for x, y, row in points:
        body.append(f'<circle cx="{_f(x)}" cy="{_f(y)}" r="{3.5 if narrow else 4.5}" fill="#fff" stroke="{RATE}" '
                    f'stroke-width="2.5"><title>{_e(_day_label(row["day"], lang))}: {percent(row["connect_rate"])} '
                    f"{_e(t['rate'])}</title></circle>")  # fmt: skip
    return _svg(width, height, t["per_day"], body, css_class)


def _bucket(seconds: float) -> int:
    for i in range(len(BUCKETS) - 1, -1, -1):
        if seconds >= BUCKETS[i]:
            return i
    return 0


def _wait_x(seconds: float, left: float, band: float) -> float:
    """Where a wait falls on the bucketed axis: inside its bucket, by its place on a log scale."""
    i = _bucket(seconds)
    if i == len(BUCKETS) - 1:
        return left + band * (i + 0.5)
    low, high = max(BUCKETS[i], 1), BUCKETS[i + 1]
    share = (math.log(max(seconds, 1)) - math.log(low)) / (math.log(high) - math.log(low))
    return left + band * (i + min(1.0, max(0.0, share)))


def wait_chart(waits: Sequence[float], lang: str, width: int, css_class: str) -> str:
    """How many leads waited how long, with the median and p90 marked."""
    t = TEXT[lang]
    narrow = css_class == "narrow"
    height = 240 if narrow else 270
    font = 10 if narrow else 12
    left, right, top, bottom = 10, 10, 60, 30
    plot_w, plot_h = width - left - right, height - top - bottom
    counts = [0] * len(BUCKETS)
    for wait in waits:
        counts[_bucket(wait)] += 1
    most = max(counts) or 1
    band = plot_w / len(BUCKETS)
    body = [f'<line x1="{left}" x2="{width - right}" y1="{top + plot_h}" y2="{top + plot_h}" stroke="{GRID}"/>']
    for i, count in enumerate(counts):
        h = plot_h * count / most
        x = left + band * i + band * 0.1
        body.append(f'<rect x="{_f(x)}" y="{_f(top + plot_h - h)}" width="{_f(band * 0.8)}" height="{_f(h)}" '
                    f'rx="3" fill="#93c5fd"><title>{BUCKET_LABELS[i]}: {count}</title></rect>')  # fmt: skip
        if count:
            body.append(f'<text x="{_f(x + band * 0.4)}" y="{_f(top + plot_h - h - 5)}" font-size="{font}" '
                        f'fill="{INK}" text-anchor="middle" font-weight="600">{count}</text>')  # fmt: skip
        body.append(f'<text x="{_f(x + band * 0.4)}" y="{height - 10}" font-size="{font - (1 if narrow else 0)}" '
                    f'fill="{MUTED}" text-anchor="middle">{BUCKET_LABELS[i]}</text>')  # fmt: skip
    if waits:
        ordered = sorted(waits)
        marks = (
            (_median(ordered), t["median_short"], "#1d4ed8", 14),
            (percentile(ordered, 0.9), t["p90_short"], "#be123c", 32),
        )
        for value, name, colour, label_y in marks:
            x = _wait_x(value, left, band)
            anchor = "start" if x < width * 0.6 else "end"
            dx = 5 if anchor == "start" else -5
            body.append(f'<line x1="{_f(x)}" x2="{_f(x)}" y1="{label_y - 10}" y2="{top + plot_h}" stroke="{colour}" '
                        f'stroke-width="2" stroke-dasharray="5 4"/>')  # fmt: skip
            words = f"{name} {duration(value, lang)}"
            body.append(f'<text x="{_f(x + dx)}" y="{label_y}" font-size="{font + 1}" fill="{colour}" '
                        f'text-anchor="{anchor}" font-weight="700">{_e(words)}</text>')  # fmt: skip
    return _svg(width, height, t["wait"], body, css_class)


def _median(ordered: Sequence[float]) -> float:
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def group_chart(rows: Sequence[Mapping[str, Any]], key: str, lang: str, width: int, css_class: str) -> str:
    """One bar per campaign (or source): its leads, the part that answered in green, the rate beside."""
    t = TEXT[lang]
    narrow = css_class == "narrow"
    font = 12 if narrow else 13
    row_h = 44
    height = max(1, len(rows)) * row_h + 6
    label_w = 0
    bar_w = width - 58
    most = max((row["leads"] for row in rows), default=1) or 1
    body: list[str] = []
    for i, row in enumerate(rows):
        y = i * row_h + 4
        name = row[key] or (t["none"] if key == "utm_campaign" else t["none_source"])
        if row.get("others"):
            name = t["others"]
        full = bar_w * row["leads"] / most
        body.append(f'<text x="{label_w}" y="{y + 13}" font-size="{font}" fill="{INK}" font-weight="600">'
                    f"{_e(_clip(name, 34 if narrow else 48))}</text>")  # fmt: skip
        detail = f"{row['leads']} {t['leads_short']}"
        if row["median_seconds"] is not None:
            detail += f" · {t['median_short']} {duration(row['median_seconds'], lang)}"
        body.append(f'<text x="{width}" y="{y + 13}" font-size="{font - 1}" fill="{MUTED}" '
                    f'text-anchor="end">{_e(detail)}</text>')  # fmt: skip
        body.append(f'<rect x="{label_w}" y="{y + 20}" width="{_f(max(full, 3))}" height="14" rx="4" fill="#bfdbfe"/>')
        if row["connected"]:
            part = bar_w * row["connected"] / most
            body.append(f'<rect x="{label_w}" y="{y + 20}" width="{_f(part)}" height="14" rx="4" fill="{RATE}"/>')
        rate, colour = percent(row["connect_rate"]), RATE if row["connect_rate"] is not None else MUTED
        body.append(f'<text x="{width}" y="{y + 32}" font-size="{font}" fill="{colour}" '
                    f'text-anchor="end" font-weight="700">{rate}</text>')  # fmt: skip
    return _svg(width, height, t["by_campaign"] if key == "utm_campaign" else t["by_source"], body, css_class)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def top_groups(leads: list[Lead], key: str) -> list[dict[str, Any]]:
    """The biggest groups by leads, the rest summed as one row marked `others`."""
    rows = grouped(leads, key)
    if len(rows) <= TOP_GROUPS:
        return rows
    shown = {row[key] for row in rows[: TOP_GROUPS - 1]}
    rest = [lead for lead in leads if key_of(lead, key) not in shown]
    return [*rows[: TOP_GROUPS - 1], {key: "", "others": True, **summary(rest)}]


# -- the page --


def _kpi(colour: str, value: str, label: str, hint: str) -> str:
    return (f'<div class="kpi" style="--c:{colour}"><span>{_e(label)}</span><b>{_e(value)}</b>'
            f"<small>{_e(hint)}</small></div>")  # fmt: skip


def _legend(items: Sequence[tuple[str, str, bool]]) -> str:
    cells = "".join(f'<li><i class="{"line" if line else ""}" style="background:{c}"></i>{_e(name)}</li>'
                    for c, name, line in items)  # fmt: skip
    return f'<ul class="legend">{cells}</ul>'


def _both(draw: Callable[..., str], wide: int, *args: Any) -> str:
    """The chart for a wide screen (about `wide` pixels across) and for a phone's 344."""
    return draw(*args, wide, "wide") + draw(*args, NARROW, "narrow")


def _detail_table(rows: Sequence[Mapping[str, Any]], lang: str) -> str:
    t = TEXT[lang]
    heads = (t["day"], t["leads"], t["placed"], t["pending"], t["scheduled"], t["failed_state"], t["calls_per_lead"],
             t["connected"], t["successful"], t["rate"], t["median_short"], t["p90_short"])  # fmt: skip
    body = []
    for row in rows:
        cells = [_day_label(row["day"], lang), row["leads"], row["placed"], row["pending"], row["scheduled"],
                 row["failed"], "–" if row["calls_per_lead"] is None else f"{row['calls_per_lead']:.2f}",
                 "–" if row["connected"] is None else row["connected"],
                 "–" if row["successful"] is None else row["successful"], percent(row["connect_rate"]),
                 duration(row["median_seconds"], lang), duration(row["p90_seconds"], lang)]  # fmt: skip
        body.append("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in cells) + "</tr>")
    head = "<tr>" + "".join(f"<th>{_e(h)}</th>" for h in heads) + "</tr>"
    return f'<div class="scroll"><table><thead>{head}</thead><tbody>{"".join(body)}</tbody></table></div>'


def render(leads: list[Lead], *, lang: str, window: str, zone: str, generated: datetime) -> str:
    """The whole page for these leads (already limited to the window)."""
    if lang not in LANGUAGES:
        raise ValueError(f"lang must be one of {', '.join(LANGUAGES)}")
    t = TEXT[lang]
    subtitle = " · ".join([
        t["window"].format(window=window_words(window, lang)),
        t["zone"].format(zone=zone),
        t["generated"].format(at=generated.strftime("%Y-%m-%d %H:%M")),
    ])  # fmt: skip
    parts = [f"<header><h1>{_e(t['title'])}</h1><p>{_e(subtitle)}</p></header>"]
    if not leads:
        parts.append(f'<section class="card empty"><b>{_e(t["empty"])}</b>{_e(t["empty_hint"])}</section>')
    else:
        parts.append(_body(leads, lang))
    parts.append(f"<footer>{_e(t['footer'])}</footer>")
    return (
        f'<!doctype html>\n<html lang="{lang}"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        '<meta name="referrer" content="no-referrer">'
        f"<title>{_e(t['title'])} · {_e(window_words(window, lang))}</title>"
        f"<style>{STYLE}</style></head><body><main>{''.join(parts)}</main></body></html>\n"
    )


def _body(leads: list[Lead], lang: str) -> str:
    t = TEXT[lang]
    total = summary(leads)
    called = total["placed"] + total["pending"]
    kpis = [
        _kpi("#0f172a", str(total["leads"]), t["leads"],
             t["calls_hint"].format(calls=total["calls"], per=f"{total['calls_per_lead']:.2f}")),
        _kpi(COLOURS["placed"], str(called), t["called"],
             t["called_hint"].format(share=percent(called / total["leads"]))),
        _kpi(RATE, percent(total["connect_rate"]), t["connect_rate"],
             t["connect_hint"] if total["connect_rate"] is not None else t["no_outcome"]),
        _kpi("#1d4ed8", duration(total["median_seconds"], lang), t["median"], t["wait_hint"]),
        _kpi(COLOURS["failed"], str(total["failed"]), t["failed"], t["failed_hint"]),
    ]  # fmt: skip
    if total["p90_seconds"] is not None:
        kpis[3] = _kpi("#1d4ed8", duration(total["median_seconds"], lang), t["median"],
                       f"{t['p90']} {duration(total['p90_seconds'], lang)}")  # fmt: skip
    day_rows = days(leads)
    legend = _legend([(COLOURS["placed"], t["placed"], False), (COLOURS["pending"], t["pending"], False),
                      (COLOURS["scheduled"], t["scheduled"], False), (COLOURS["failed"], t["failed_state"], False),
                      (RATE, t["rate"], True)])  # fmt: skip
    waits = [lead.wait for lead in leads if lead.wait is not None]
    wait_part = _both(wait_chart, 470, waits, lang) if waits else f'<p class="empty">{_e(t["no_waits"])}</p>'
    campaigns = top_groups(leads, "utm_campaign")
    sources = top_groups(leads, "utm_source")
    return (
        f'<section class="kpis">{"".join(kpis)}</section>'
        f'<div class="row"><section class="card"><h2>{_e(t["per_day"])}</h2><p class="note">{_e(t["per_day_note"])}'
        f"</p>{legend}{_both(day_chart, 590, day_rows, lang)}</section>"
        f'<section class="card"><h2>{_e(t["wait"])}</h2><p class="note">{_e(t["wait_note"])}</p>{wait_part}</section>'
        f'</div><section class="card"><h2>{_e(t["campaigns"])}</h2><p class="note">{_e(t["campaigns_note"])}</p>'
        f'<div class="pair"><div><h3>{_e(t["by_campaign"])}</h3>'
        f"{_both(group_chart, 530, campaigns, 'utm_campaign', lang)}</div>"
        f"<div><h3>{_e(t['by_source'])}</h3>{_both(group_chart, 530, sources, 'utm_source', lang)}</div>"
        "</div></section>"
        f'<section class="card"><details><summary>{_e(t["detail"])}</summary>{_detail_table(day_rows, lang)}'
        "</details></section>"
    )
