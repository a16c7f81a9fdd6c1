"""A call's outcome from FormCall's /calls/list, and what is reported about it (spec section 9). Pure."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

# The only status value FormCall documents; others (the platform's own words) are kept as given.
CONNECTED = "Conectada"
KNOWN_STATUSES = frozenset({CONNECTED})
# The platform's glossary: a call is successful when the customer leg lasts 25 seconds or more.
SUCCESSFUL_SECONDS = 25
_CALL_AT_FORMAT = "%Y/%m/%d %H:%M:%S %z"  # "2019/04/02 10:05:03 -0300", as documented
_UUID = re.compile(r"^[0-9a-fA-F-]{16,64}$")
# A status is the platform's word, but it is still outside input: keep it short and printable.
_STATUS_MAX = 64
_DURATION_MAX = 7 * 24 * 3600
_DURATION = re.compile(r"^[0-9]{1,9}(\.[0-9]{1,6})?$")

PAYLOAD_KEYS = (
    "lead_id",
    "route",
    "uuid",
    "call_number",
    "call_status",
    "connected",
    "successful",
    "duration_customer",
    "call_at",
    "received_at",
)


# ------------------------------------------------------------------------------------ outcome and recall
# The policies a route's `outcome` and `recall` tables become (config_policies.py reads them); here rather
# than in states.py so that the webhook's cold start, which needs neither, never builds their classes.

OUTCOME_AFTER = 600
OUTCOME_GIVE_UP = 10800
HUBSPOT_API_URL = "https://api.hubapi.com"


@dataclass(frozen=True)
class HubSpotOutcome:
    """Where a route writes the call status on its HubSpot contact (spec 9)."""

    token: str
    property: str = "formcall_call_status"
    api_url: str = HUBSPOT_API_URL


@dataclass(frozen=True)
class OutcomePolicy:
    """Spec 9: when to look up a placed call's result, and where to report it."""

    after: int = OUTCOME_AFTER
    give_up: int = OUTCOME_GIVE_UP
    url: str | None = None
    secret: str | None = None
    hubspot: HubSpotOutcome | None = None


@dataclass(frozen=True)
class RecallPolicy:
    """Spec 11: call a lead again after a call that settled not connected: the waits (the last repeats)
    and the most calls a lead gets, the first one included."""

    schedule: tuple[int, ...] = (600, 7200, 86400)
    max_calls: int = 3

    def wait(self, calls: int) -> int:
        """The wait after the lead's `calls`-th call (1-based)."""
        return self.schedule[min(max(calls, 1), len(self.schedule)) - 1]


# ------------------------------------------------------------------------------------------ /calls/list


@dataclass(frozen=True)
class CallResult:
    """One call as /calls/list shows it, with call_at in ISO 8601 (offset kept)."""

    uuid: str
    call_status: str
    connected: bool
    successful: bool
    duration_customer: int | None
    duration_company: int | None
    call_at: str | None

    def fingerprint(self) -> tuple[str, int | None, int | None]:
        """What must stay the same between two lookups for the outcome to count as settled."""
        return (self.call_status, self.duration_customer, self.duration_company)


def parse_rows(rows: Any) -> tuple[dict[str, CallResult], int]:
    """Calls by lower-cased uuid, and how many rows could not be read (skipped, never raised)."""
    if not isinstance(rows, list):
        return {}, 0
    results: dict[str, CallResult] = {}
    skipped = 0
    for row in rows:
        result = parse_row(row)
        if result is None:
            skipped += 1
        else:
            results[result.uuid] = result
    return results, skipped


def parse_row(row: Any) -> CallResult | None:
    """One row, or None when it has no usable uuid or status."""
    if not isinstance(row, dict):
        return None
    uuid = row.get("uuid")
    status = _status(row.get("status"))
    if not isinstance(uuid, str) or not _UUID.match(uuid.strip()) or status is None:
        return None
    customer = _seconds(row.get("duration_customer"))
    return CallResult(
        uuid=uuid.strip().lower(),
        call_status=status,
        connected=status.casefold() == CONNECTED.casefold(),
        successful=customer is not None and customer >= SUCCESSFUL_SECONDS,
        duration_customer=customer,
        duration_company=_seconds(row.get("duration_company")),
        call_at=call_at_iso(row.get("call_at")),
    )


def settled(previous: CallResult | None, current: CallResult) -> bool:
    """The status stopped changing: two consecutive lookups agree on status and both durations."""
    return previous is not None and previous.fingerprint() == current.fingerprint()


def is_known(status: str) -> bool:
    """Whether FormCall documents this status (only "Conectada" so far)."""
    return status in KNOWN_STATUSES


def call_at_iso(value: Any) -> str | None:
    """FormCall's "2019/04/02 10:05:03 -0300" as "2019-04-02T10:05:03-03:00"; None when unreadable."""
    if not isinstance(value, str):
        return None
    try:
        return datetime.strptime(value.strip(), _CALL_AT_FORMAT).isoformat()
    except ValueError:
        return None


def outcome_payload(lead: Mapping[str, Any]) -> dict[str, Any]:
    """The outcome webhook's body (spec section 9), from a lead record holding the outcome's fields."""
    payload: dict[str, Any] = {"type": "call.outcome"}
    for key in PAYLOAD_KEYS:
        payload[key] = lead.get(key)
    # Spec 11: which of the lead's calls this is (1 for a lead called once).
    payload["call_number"] = payload["call_number"] or 1
    payload["connected"] = payload["connected"] is True
    payload["successful"] = payload["successful"] is True
    return payload


def note_text(lead: Mapping[str, Any] | CallResult) -> str:
    """The HubSpot note, one fact a line, in Spanish: outcome, customer duration, FormCall uuid, lead_id."""
    fields = _fields(lead)
    status = _status(fields.get("call_status")) or "sin estado"
    connected = fields.get("connected") is True
    successful = fields.get("successful") is True
    if connected and successful:
        verdict = f"conectada y exitosa ({SUCCESSFUL_SECONDS} s o más con el cliente)"
    elif connected:
        verdict = f"conectada, pero menos de {SUCCESSFUL_SECONDS} s con el cliente"
    else:
        verdict = "no conectada"
    lines = [f"Llamada FormCall: {status}", f"Resultado: {verdict}"]
    duration = fields.get("duration_customer")
    if isinstance(duration, int) and not isinstance(duration, bool):
        lines.append(f"Duración con el cliente: {_human_seconds(duration)}")
    call_at = fields.get("call_at")
    if isinstance(call_at, str) and call_at:
        lines.append(f"Hora de la llamada: {call_at[:32]}")
    if fields.get("uuid"):
        lines.append(f"FormCall uuid: {str(fields['uuid'])[:64]}")
    if fields.get("lead_id"):
        lines.append(f"lead_id: {str(fields['lead_id'])[:64]}")
    return "\n".join(lines)


def _fields(lead: Mapping[str, Any] | CallResult) -> Mapping[str, Any]:
    if isinstance(lead, CallResult):
        return {
            "call_status": lead.call_status,
            "connected": lead.connected,
            "successful": lead.successful,
            "duration_customer": lead.duration_customer,
            "call_at": lead.call_at,
            "uuid": lead.uuid,
        }
    return lead


def _human_seconds(seconds: int) -> str:
    minutes, rest = divmod(seconds, 60)
    return f"{minutes} min {rest} s ({seconds} s)" if minutes else f"{seconds} s"


def _status(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    text = "".join(c for c in value if c.isprintable()).strip()[:_STATUS_MAX]
    return text or None


def _seconds(value: Any) -> int | None:
    """A duration as the list gives it ("95", 95, "95.0"); None when absent or unreadable."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str) and _DURATION.match(value.strip()):
        number = float(value.strip())
    else:
        return None
    # NaN fails both comparisons; infinities and absurd values are unreadable too.
    return int(number) if 0 <= number <= _DURATION_MAX else None
