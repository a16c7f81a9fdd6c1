"""From a parsed submission to the FormCall payload: templates or the built-in field finder."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator, Mapping
from typing import Any

from .config import Route
from .phones import Lead

# The field names real forms use, most specific first. Keys are compared folded: lower case,
# accents and separators removed, so "Teléfono", "your-phone" and "mobile_phone" all match.
PHONE_NAMES = (
    "phone", "telefono", "celular", "movil", "mobile", "mobilephone", "whatsapp", "yourphone",
    "phonenumber", "telephone", "tel", "fono", "cellphone", "cell", "numerotelefono",
    "numerodetelefono", "numerocelular", "telefonocelular", "telefonomovil", "contactphone",
    "phonemobile", "numero", "wpp",
)  # fmt: skip
NAME_NAMES = (
    "name", "nombre", "fullname", "nombrecompleto", "yourname", "contactname", "firstname",
    "nombres", "first", "givenname",
)  # fmt: skip
LAST_NAME_NAMES = ("lastname", "apellido", "apellidos", "last", "surname", "familyname")
EMAIL_NAMES = ("email", "correo", "correoelectronico", "mail", "youremail", "emailaddress", "emailaddr")
# Keys under which list items carry their own name (Typeform, Tally, WPForms, Gravity).
_ITEM_NAME_KEYS = ("name", "label", "key", "title", "field", "ref", "id")
_MAX_DEPTH = 6
_MAX_VISITED = 2000


def fold(key: str) -> str:
    decomposed = unicodedata.normalize("NFKD", key)
    return "".join(c for c in decomposed if c.isalnum() and not unicodedata.combining(c)).lower()


def _scalar(value: Any) -> str | None:
    """A field's value as text; HubSpot and Elementor wrap it as {"value": ...}."""
    if isinstance(value, Mapping) and "value" in value:
        value = value["value"]
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (str, int, float)):
        text = str(value).strip()
        return text or None
    return None


def _fields(data: Any, depth: int = 0) -> Iterator[tuple[str, Any]]:
    """Every (folded key, value) in the submission, outermost first, breadth before depth."""
    queue: list[tuple[Any, int]] = [(data, depth)]
    visited = 0
    while queue and visited < _MAX_VISITED:
        node, level = queue.pop(0)
        visited += 1
        if isinstance(node, Mapping):
            for key, value in node.items():
                if isinstance(key, str) and "[" not in key:
                    yield fold(key), value
                if level < _MAX_DEPTH and isinstance(value, (Mapping, list)):
                    queue.append((value, level + 1))
        elif isinstance(node, list):
            for item in node:
                if isinstance(item, Mapping):
                    label = next((item[k] for k in _ITEM_NAME_KEYS if isinstance(item.get(k), str)), None)
                    item_value = _item_value(item)
                    if label is not None and item_value is not None:
                        yield fold(label), item_value
                if level < _MAX_DEPTH and isinstance(item, (Mapping, list)):
                    queue.append((item, level + 1))


def _item_value(item: Mapping[str, Any]) -> Any:
    for key in ("value", "answer", "text", "phone_number", "email"):
        if key in item:
            return item[key]
    return None


def find(body: Mapping[str, Any], names: tuple[str, ...]) -> str:
    """The value of the best-named field in the submission, or ""."""
    best: tuple[int, str] | None = None
    rank = {name: index for index, name in enumerate(names)}
    for key, value in _fields(body):
        position = rank.get(key)
        if position is None:
            # "phone_1", "telefono2", "nombre_cliente": a known name with a suffix.
            position = next((len(names) + i for i, n in enumerate(names[:8]) if len(n) > 3 and key.startswith(n)), None)
        if position is None or (best is not None and position >= best[0]):
            continue
        text = _scalar(value)
        if text is not None:
            best = (position, text)
            if position == 0:
                break
    return best[1] if best else ""


def find_phone(body: Mapping[str, Any]) -> str:
    return find(body, PHONE_NAMES)


def builtin_adicional(body: Mapping[str, Any]) -> dict[str, str]:
    """Nombre and Email, as in FormCall's own example."""
    name = find(body, NAME_NAMES)
    last = find(body, LAST_NAME_NAMES)
    if last and last not in name:
        name = f"{name} {last}".strip()
    return {"Nombre": name, "Email": find(body, EMAIL_NAMES)}


def template_context(
    body: Mapping[str, Any], query: Mapping[str, Any], headers: Mapping[str, str], route: str
) -> dict[str, Any]:
    context: dict[str, Any] = {k: v for k, v in body.items() if isinstance(k, str)}
    context.update(body=body, query=query, headers=headers, route=route)
    return context


def typed_phone(route: Route, context: Mapping[str, Any]) -> str:
    """The number as the lead typed it, from the route's phone, phone_parts or the finder."""
    if route.phone_parts is not None:
        cc, area, number = (t.render(context) for t in route.phone_parts)
        if not number:
            return ""
        cc_digits = "".join(c for c in cc if c.isdigit())
        return f"+{cc_digits} {area} {number}" if cc_digits else f"{area} {number}"
    if route.phone is not None:
        return route.phone.render(context)
    return find_phone(context["body"])


def adicional(route: Route, context: Mapping[str, Any]) -> dict[str, str]:
    """The adicional object: empty values left out, each cut to the route's maximum length."""
    if route.adicional is None:
        values = builtin_adicional(context["body"])
    else:
        values = {key: template.render(context) for key, template in route.adicional}
    return {key: value[: route.adicional_max_length] for key, value in values.items() if value}


def lead_context(lead: Lead) -> dict[str, str]:
    return {
        "e164": lead.e164,
        "country_code": lead.country_code,
        "areacode": lead.areacode,
        "phonenumber": lead.phonenumber,
        "region": lead.region,
    }
