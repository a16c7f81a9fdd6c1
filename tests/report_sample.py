"""A week of lead records as the stores keep them, built directly: the figures', stats' and report's tests
read them (and `python tests/report_sample.py FILE` writes the report of them, to look at)."""

from __future__ import annotations

import random
import sys
from datetime import UTC, datetime
from typing import Any

POPUPS = ("e5c98214-d0f6-11e1-8c30-001d09ef4a24", "0f1e2d3c-4b5a-4697-8877-665544332211")
CAMPAIGNS = (("verano-2026", "google", 5), ("black-friday", "facebook", 4), ("retargeting", "instagram", 2),
             ("marca", "google", 2), ("newsletter-dic", "newsletter", 1), ("", "", 2))  # fmt: skip


def record(received: float, *, route: str = "default", state: str = "placed", wait: float | None = 20.0,
           outcome: dict[str, Any] | None = None, **fields: Any) -> dict[str, Any]:  # fmt: skip
    """One record with the fields records.new_record writes and a delivery changes."""
    found: dict[str, Any] = {
        "lead_id": f"ld_{random.Random(received).getrandbits(80):020x}",
        "version": 2,
        "route": route,
        "state": state,
        "received_at": datetime.fromtimestamp(received, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "received_ts": received,
        "attempts": 1,
        "next_attempt_at": None,
        "due_at": None,
        "last_error": "formcall_unavailable" if state in ("failed", "scheduled") else None,
        "uuid": None,
        "popup_uuid": POPUPS[route != "default"],
        "phone": "+56*****567",
        "phone_hash": "0" * 64,
        "payload": None,
        "claims": [],
        "consent": None,
        "expires_at": received + 30 * 86400,
        "attempt_since": None,
        "outcome": outcome,
        "minimized": True,
        **fields,
    }
    if state in ("placed", "pending") and wait is not None:
        found["uuid"] = f"{random.Random(received + 1).getrandbits(128):032x}"
        found["placed_at"] = received + wait
    return found


def week(now: float, seed: int = 7) -> list[dict[str, Any]]:
    """Seven days of leads: two routes (only "default" tracks outcomes), six campaigns, waits from seconds
    to hours (the ones received out of service hours), a few failed or still scheduled."""
    rng = random.Random(seed)
    weights = [w for _, _, w in CAMPAIGNS]
    found = []
    for day in range(7):
        for _ in range(rng.randint(9, 26)):
            received = now - (day + rng.random()) * 86400
            campaign, source, _ = rng.choices(CAMPAIGNS, weights)[0]
            route = "default" if rng.random() < 0.7 else "hubspot"
            state = rng.choices(("placed", "pending", "scheduled", "failed"), (80, 4, 6, 10))[0]
            spans = ((3, 28), (28, 110), (60, 280), (3600, 40000))  # out of hours: called at the next opening
            wait = rng.uniform(*rng.choice(spans))
            outcome = None
            if route == "default" and state == "placed":
                connected = rng.random() < (0.75 if campaign == "black-friday" else 0.55)
                outcome = {"call_status": "Conectada" if connected else "No contesta", "connected": connected,
                           "successful": connected and rng.random() < 0.8, "duration_customer": 40}  # fmt: skip
            utm = {"utm_campaign": campaign, "utm_source": source, "utm_medium": "cpc"} if campaign else {}
            found.append(record(received, route=route, state=state, wait=wait, outcome=outcome, **utm))
    return found


if __name__ == "__main__":
    from formcall_webhook import figures, report

    now = datetime.now(UTC).timestamp()
    leads = figures.leads_of(week(now))
    lang = sys.argv[2] if len(sys.argv) > 2 else "es"
    page = report.render(leads, lang=lang, window="7d", zone="America/Santiago",
                         generated=datetime.now(figures.zone_named(None)))  # fmt: skip
    with open(sys.argv[1], "w", encoding="utf-8") as handle:
        handle.write(page)
