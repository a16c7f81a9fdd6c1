"""From a parsed submission to the FormCall payload: templates or the built-in field finder."""

from __future__ import annotations

import functools
import json
import re
import unicodedata
from collections import deque
from collections.abc import Callable, Collection, Iterator, Mapping
from typing import Any

from .config import Route
from .phones import Number

# The field names real forms use, most specific first. Keys are compared folded: lower case,
# accents and separators removed, so "Teléfono", "your-phone" and "mobile_phone" all match.
PHONE_NAMES = (
    "phone", "telefono", "celular", "movil", "mobile", "mobilephone", "whatsapp", "yourphone",
    "phonenumber", "telephone", "tel", "fono", "cellphone", "cell", "numerotelefono",
    "numerodetelefono", "numerocelular", "telefonocelular", "telefonomovil", "contactphone",
    "phonemobile", "numero", "wpp", "telefone",  # Portuguese: RD Station's forms (telefone, nome)
)  # fmt: skip
NAME_NAMES = (
    "name", "nombre", "fullname", "nombrecompleto", "yourname", "contactname", "firstname",
    "nombres", "first", "givenname", "nome",
)  # fmt: skip
LAST_NAME_NAMES = ("lastname", "apellido", "apellidos", "last", "surname", "familyname", "sobrenome")
EMAIL_NAMES = ("email", "correo", "correoelectronico", "mail", "youremail", "emailaddress", "emailaddr")
# Keys under which list items carry their own name (Typeform, Tally, WPForms, Gravity).
_ITEM_NAME_KEYS = ("label", "name", "title", "field", "ref", "key", "id")
_MAX_DEPTH = 6
_MAX_VISITED = 2000
_MAX_EMBEDDED = 64 * 1024
# Fewer digits than any country's shortest subscriber numbers: not a phone.
_MIN_PHONE_DIGITS = 6
_JOTFORM_PREFIX = re.compile(r"^q\d+_")
# Children under which a sender puts the lead's fields; their parent describes the form.
_CONTAINERS = frozenset({"data", "fields", "answers", "formresponse", "values"})
# Objects that describe the form or page, not the lead (Elementor's form[name], meta[...]).
# Typeform's "variables" are the form's own logic variables (a "name" among them), not answers.
_FORM_KEYS = frozenset({"form", "page", "site", "meta", "definition", "website", "variables"})
# Input types (folded) that say what a field holds, whatever its label or id.
_TYPED_FIELDS = {
    "tel": "phone", "phone": "phone", "phonenumber": "phone", "inputphonenumber": "phone",
    "email": "email", "inputemail": "email",
}  # fmt: skip
_FILE_KEYS = ("mimeType", "mimetype", "mime_type", "contentType", "content_type")


# The caches below are bounded in entries AND in key length: a sender controls the keys, and one
# 63 KB key per request (NFKD makes U+FDFA 18 characters) once grew a worker by 650 MB.
_MAX_NAME = 64  # longer than any name above, decorated: such a key matches nothing
_MAX_CACHED_KEY = 128  # raw keys (Zapier's "a__b__c" paths) cached up to this length


def fold(key: str) -> str:
    """ "Teléfono", "your-phone", "MOBILE_PHONE" -> "telefono", "yourphone", "mobilephone".
    "" for a name longer than _MAX_NAME, before or after folding: it matches nothing."""
    return "" if len(key) > _MAX_NAME else _fold(key)


@functools.lru_cache(maxsize=4096)
def _fold(key: str) -> str:
    """Cached: forms send the same few dozen keys again and again."""
    decomposed = unicodedata.normalize("NFKD", key)
    folded = "".join(c for c in decomposed if c.isalnum() and not unicodedata.combining(c)).lower()
    return folded if len(folded) <= _MAX_NAME else ""


def _position(key: str, names: tuple[str, ...]) -> int | None:
    """How well a folded key matches a list of names: its index when exact, after every exact name
    for a decorated one ("phone_1", "telefono2", "nombre_cliente"), None when it does not."""
    return None if not key or len(key) > _MAX_NAME else _cached_position(key, names)


@functools.lru_cache(maxsize=8192)
def _cached_position(key: str, names: tuple[str, ...]) -> int | None:
    if key in names:
        return names.index(key)
    return next((len(names) + i for i, name in enumerate(names[:8]) if len(name) > 3 and key.startswith(name)), None)


def _scalar(value: Any) -> str | None:
    """A field's value as text, unwrapping how senders wrap it: HubSpot and Elementor as
    {"value": ...}, Jotform as {"full": ...}, {"area", "phone"} or {"first", "last"}, Unbounce
    as one-item lists."""
    if isinstance(value, dict):
        if "value" in value:
            value = value["value"]
        elif "full" in value:
            value = value["full"]
        elif "phone" in value and "area" in value:
            value = f"{value.get('area') or ''} {value.get('phone') or ''}"
        elif "first" in value or "last" in value:
            value = f"{value.get('first') or ''} {value.get('last') or ''}"
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (str, int, float)):
        text = str(value).strip()
        return text or None
    return None


def _has_phone_digits(text: str) -> bool:
    return sum(c.isdigit() for c in text) >= _MIN_PHONE_DIGITS


def _key_names(key: str) -> tuple[str, ...]:
    """The folded names a key stands for: Zapier's "properties__phone__value" is "phone";
    Jotform's "q4_phoneNumber" is "phonenumber"."""
    return _names_of(key) if len(key) > _MAX_CACHED_KEY else _cached_key_names(key)


def _names_of(key: str) -> tuple[str, ...]:
    if "__" in key:
        parts = [p for p in key.split("__") if p and p.lower() not in ("value", "values")]
        key = parts[-1] if parts else key
    return (fold(_JOTFORM_PREFIX.sub("", key)),)


_cached_key_names = functools.lru_cache(maxsize=4096)(_names_of)


def _embedded_json(value: str) -> Any:
    """JSON a sender put inside a text field (Unbounce's data.json, Jotform's rawRequest)."""
    if len(value) > _MAX_EMBEDDED or not value.lstrip().startswith(("{", "[")):
        return None
    try:
        return json.loads(value)
    except (ValueError, RecursionError):
        return None


class Finder:
    """The submission's fields, walked once, searched by name for the built-in mapping."""

    def __init__(self, body: Mapping[str, Any]) -> None:
        self.body = body
        self._fields: list[tuple[str, Any, bool, int]] | None = None

    @property
    def fields(self) -> list[tuple[str, Any, bool, int]]:
        if self._fields is None:
            self._fields = list(_walk(self.body))
        return self._fields

    def find(
        self, names: tuple[str, ...], *, skip_meta: bool = False, accept: Callable[[str], bool] | None = None
    ) -> str:
        """The value of the best-named field, or "": exact names by preference, then prefixed ones."""
        # Exact names before decorated ones, then the outermost field ({"telefono": lead, "empresa":
        # {"phone": company}} is the lead's number), then the preferred name.
        best: tuple[tuple[bool, int, int], str] | None = None
        for key, value, meta, depth in self.fields:
            if skip_meta and meta:
                continue
            position = _position(key, names)
            if position is None:
                continue
            rank = (position >= len(names), depth, position)
            if best is not None and rank >= best[0]:
                continue
            text = _scalar(value)
            if text is not None and (accept is None or accept(text)):
                best = (rank, text)
        return best[1] if best else ""

    def phone(self) -> str:
        # A "phone" field holding "false" or "n/a" is no number: the next best field may hold one.
        # When none does, what was typed is still the answer (invalid_phone, not phone_missing).
        return self.find(PHONE_NAMES, accept=_has_phone_digits) or self.find(PHONE_NAMES)

    def adicional(self) -> dict[str, str]:
        """Nombre and Email, as in FormCall's own example."""
        # A form's own name ("Contacto Landing") sits beside its fields: not the lead's name.
        name = self.find(NAME_NAMES, skip_meta=True)
        last = self.find(LAST_NAME_NAMES, skip_meta=True)
        if last and last not in name:
            name = f"{name} {last}".strip()
        return {"Nombre": name, "Email": self.find(EMAIL_NAMES)}


def _walk(data: Any) -> Iterator[tuple[str, Any, bool, int]]:
    """Every (folded name, value, is-form-metadata, depth) in the submission, outermost first.
    Parsed bodies are plain dicts and lists: isinstance(dict) is several times cheaper than Mapping."""
    queue: deque[tuple[Any, int, bool]] = deque([(data, 0, False)])
    visited = 0
    while queue and visited < _MAX_VISITED:
        node, level, meta = queue.popleft()
        visited += 1
        if isinstance(node, dict):
            if _is_file(node):
                continue
            describes_form = meta or _describes_form(node)
            yield from _typeform_titled(node, level)
            for key, value in node.items():
                if not isinstance(key, str) or "[" in key:
                    continue
                for name in _key_names(key):
                    yield name, value, describes_form, level
                if level >= _MAX_DEPTH:
                    continue
                if isinstance(value, dict):
                    child_meta = fold(key) in _FORM_KEYS
                    # Elementor's fields[field_5c2e9d1] = {title, type, value}: an item under a random id.
                    yield from _item_fields(value, describes_form or child_meta, level)
                    queue.append((value, level + 1, child_meta))
                elif isinstance(value, list):
                    queue.append((value, level + 1, fold(key) in _FORM_KEYS))
                elif isinstance(value, str):
                    embedded = _embedded_json(value)
                    if embedded is not None:
                        queue.append((embedded, level + 1, False))
        elif isinstance(node, list):
            for item in node:
                if isinstance(item, dict):
                    yield from _item_fields(item, meta, level)
                if level < _MAX_DEPTH and isinstance(item, (dict, list)):
                    queue.append((item, level + 1, meta))


def _item_fields(item: Mapping[str, Any], meta: bool, level: int) -> Iterator[tuple[str, Any, bool, int]]:
    """A field described by an object: its own name (label, title, ref...) and, for phone and email
    inputs, the name its type stands for (Elementor "tel", Tally INPUT_PHONE_NUMBER, Typeform phone_number)."""
    if _is_file(item):
        return
    value = _item_value(item)
    if value is None:
        return
    label = _item_label(item)
    if label is not None:
        yield fold(label), value, meta, level
    kind = item.get("type")
    if isinstance(kind, str) and (typed := _TYPED_FIELDS.get(fold(kind))) is not None:
        yield typed, value, meta, level


def _typeform_titled(node: Mapping[str, Any], level: int) -> Iterator[tuple[str, Any, bool, int]]:
    """Typeform's answers under their questions' titles: an answer names its field only by id (and a ref
    that is often random); the title is in definition.fields."""
    answers, definition = node.get("answers"), node.get("definition")
    if not isinstance(answers, list) or not isinstance(definition, dict):
        return
    fields = definition.get("fields")
    if not isinstance(fields, list):
        return
    titles = {f["id"]: f.get("title") for f in fields if isinstance(f, dict) and isinstance(f.get("id"), str)}
    for answer in answers:
        field = answer.get("field") if isinstance(answer, dict) else None
        field_id = field.get("id") if isinstance(field, dict) else None
        if not isinstance(field_id, str):
            continue
        title = titles.get(field_id)
        value = _item_value(answer)
        if isinstance(title, str) and value is not None:
            yield fold(title), value, False, level + 1


def _is_file(item: Mapping[str, Any]) -> bool:
    """An uploaded file (Tally FILE_UPLOAD and SIGNATURE, Typeform file_url...): its "name" is a file name."""
    return any(k in item for k in _FILE_KEYS) or ("url" in item and "size" in item)


def _item_label(item: Mapping[str, Any]) -> str | None:
    """A list item's own name: Tally's label, WPForms' name, Elementor's title, Typeform's field.ref."""
    for key in _ITEM_NAME_KEYS:
        label = item.get(key)
        if isinstance(label, dict):
            label = next((label[k] for k in ("ref", "title", "label") if isinstance(label.get(k), str)), None)
        if isinstance(label, str):
            return label
    return None


def _item_value(item: Mapping[str, Any]) -> Any:
    for key in ("value", "answer", "text"):
        if key in item:
            return item[key]
    # Typeform's typed answers hold their value under their type ({"type": "email", "email": ...}).
    # A record with an "email" and no such type is a person (RD Station's contact, with its name):
    # taking its email as the value of a field named after the person put the email in Nombre.
    kind = item.get("type")
    if kind in ("phone_number", "email", "number") and kind in item:
        return item[kind]
    return None


_PERSON_NAMES = frozenset(EMAIL_NAMES[:1] + LAST_NAME_NAMES)


def _describes_form(node: Mapping[str, Any]) -> bool:
    """{"name": "Contact form", "data": {...}}: an object around the lead's fields describes the form.
    One with an email or a last name of its own is a person with custom fields (ActiveCampaign's
    contact[first_name] beside contact[fields][7]): its name is the lead's."""
    holds_fields = any(
        isinstance(v, (dict, list)) and fold(k) in _CONTAINERS for k, v in node.items() if isinstance(k, str)
    )
    return holds_fields and not _is_person(node)


def _is_person(node: Mapping[str, Any]) -> bool:
    """An object holding a person's email or last name as text: a lead, not a form's description."""
    return any(isinstance(v, str) and isinstance(k, str) and fold(k) in _PERSON_NAMES for k, v in node.items())


def find_phone(body: Mapping[str, Any]) -> str:
    return Finder(body).phone()


def builtin_adicional(body: Mapping[str, Any]) -> dict[str, str]:
    return Finder(body).adicional()


# Credentials and signatures of every scheme: never in the `headers` template variable (spec 5), so a
# template cannot copy them into adicional, where the call centre would read them.
PRIVATE_HEADERS = frozenset({
    "authorization", "proxy-authorization", "cookie", "x-webhook-token", "webhook-signature",
    "typeform-signature", "tally-signature", "x-webflow-signature", "x-hub-signature-256", "x-hub-signature",
})  # fmt: skip
_PRIVATE_PREFIXES = ("x-hubspot-signature",)


def template_context(
    body: Mapping[str, Any],
    query: Mapping[str, Any],
    headers: Mapping[str, str],
    route: str,
    drop: Collection[str] = (),
) -> dict[str, Any]:
    """What templates see. `drop`: more header names to leave out (lower case), beyond
    PRIVATE_HEADERS, such as the route's own auth.header."""
    context: dict[str, Any] = {k: v for k, v in body.items() if isinstance(k, str)}
    hidden = {name.lower() for name in drop}
    visible = {name: value for name, value in headers.items() if not _private(name.lower(), hidden)}
    context.update(body=body, query=query, headers=visible, route=route)
    return context


def _private(name: str, hidden: set[str]) -> bool:
    return name in PRIVATE_HEADERS or name in hidden or name.startswith(_PRIVATE_PREFIXES)


def typed_phone(route: Route, context: Mapping[str, Any], finder: Finder | None = None) -> str:
    """The number as the lead typed it, from the route's phone, phone_parts or the finder."""
    if route.phone_parts is not None:
        cc, area, number = (t.render(context) for t in route.phone_parts)
        if not number:
            return ""
        cc_digits = "".join(c for c in cc if c.isdigit())
        return f"+{cc_digits} {area} {number}" if cc_digits else f"{area} {number}"
    if route.phone is not None:
        return route.phone.render(context)
    return (finder or Finder(context["body"])).phone()


def adicional(route: Route, context: Mapping[str, Any], finder: Finder | None = None) -> dict[str, str]:
    """The adicional object: empty values left out, each cut to the route's maximum length."""
    if route.adicional is None:
        values = (finder or Finder(context["body"])).adicional()
    else:
        values = {key: template.render(context) for key, template in route.adicional}
    return {key: value[: route.adicional_max_length] for key, value in values.items() if value}


def lead_context(lead: Number) -> dict[str, str]:
    return {
        "e164": lead.e164,
        "country_code": lead.country_code,
        "areacode": lead.areacode,
        "phonenumber": lead.phonenumber,
        "region": lead.region,
    }
