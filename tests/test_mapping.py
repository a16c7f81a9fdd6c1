from __future__ import annotations

import json
from pathlib import Path

import pytest

from formcall_webhook import config, mapping
from formcall_webhook.parsing import parse_body

SAMPLES = Path(__file__).parent / "samples"
POPUP = "e5c98214-d0f6-11e1-8c30-001d09ef4a24"
FORM = "application/x-www-form-urlencoded"


def sample(name: str) -> dict[str, object]:
    raw = (SAMPLES / name).read_bytes()
    return parse_body("application/json" if name.endswith(".json") else FORM, raw)


@pytest.mark.parametrize(
    ("name", "phone", "nombre", "email"),
    [
        ("hubspot_legacy_contact.json", "+56 2 2123 4567", "Camila Rojas", "camila.rojas@example.cl"),
        ("elementor.form", "+56 9 5631 1283", "Diego Muñoz", "diego@example.cl"),
        ("contact_form_7.form", "09 6123 4567", "Valentina Soto", "vsoto@example.cl"),
        ("zapier.json", "56 9 8765 4321", "Tomás Fuentes", "tomas@example.cl"),
        ("landing_form.form", "+56 32 212 3456", "Ignacia Vera", "ignacia@example.cl"),
    ],
)
def test_builtin_mapping_finds_real_forms_fields(name: str, phone: str, nombre: str, email: str) -> None:
    body = sample(name)
    assert mapping.find_phone(body) == phone
    assert mapping.builtin_adicional(body) == {"Nombre": nombre, "Email": email}


@pytest.mark.parametrize(
    "key",
    [
        "phone",
        "Teléfono",
        "telefono",
        "celular",
        "Móvil",
        "mobile",
        "mobilephone",
        "whatsapp",
        "your-phone",
        "PHONE_NUMBER",
        "phone_1",
    ],
)
def test_builtin_phone_names(key: str) -> None:
    assert mapping.find_phone({key: "+56961234567", "other": "1"}) == "+56961234567"


def test_exact_names_beat_decorated_ones_and_order_is_by_preference() -> None:
    assert mapping.find_phone({"phone_2": "+56952000002", "telefono": "+56952000001"}) == "+56952000001"
    assert mapping.find_phone({"mobile": "+56952000003", "phone": "+56952000004"}) == "+56952000004"


def test_labelled_list_items() -> None:
    body = {
        "data": {"fields": [{"label": "Teléfono", "value": "+56 9 6123 4567"}, {"label": "Email", "value": "x@y.cl"}]}
    }
    assert mapping.find_phone(body) == "+56 9 6123 4567"
    assert mapping.builtin_adicional(body)["Email"] == "x@y.cl"


def test_empty_and_odd_values_are_skipped() -> None:
    assert mapping.find_phone({"phone": "", "telefono": "+56961234567"}) == "+56961234567"
    assert mapping.find_phone({"phone": None, "mobile": True, "celular": {"x": 1}}) == ""
    assert mapping.find_phone({"phone": ["+56961234567"]}) == "+56961234567"
    assert mapping.find_phone({"phone": 56961234567}) == "56961234567"


def test_finder_is_bounded_on_huge_bodies() -> None:
    wide: dict[str, object] = {f"k{i}": {"v": i} for i in range(5000)}
    wide["phone"] = "+56961234567"
    assert mapping.find_phone(wide) == "+56961234567"
    deep: dict[str, object] = {"phone": "+56961234567"}
    for _ in range(500):
        deep = {"a": deep}
    # Past six levels nobody nests a form field: the search stops rather than walk forever.
    assert mapping.find_phone(deep) == ""


def route_from(tmp_path: Path, text: str) -> config.Route:
    path = tmp_path / "f.toml"
    path.write_text(f"[routes.default]\npopup_uuid = '{POPUP}'\n" + text, encoding="utf-8")
    return config.load({}, path).routes["default"]


def test_adicional_templates_drop_empty_and_cut_long(tmp_path: Path) -> None:
    route = route_from(
        tmp_path,
        'adicional_max_length = 5\n[routes.default.adicional]\nNombre = "{{ nombre }} {{ apellido }}"\n'
        'Email = "{{ email }}"\nOrigen = "Landing verano"\n',
    )
    context = mapping.template_context({"nombre": "Ana"}, {}, {}, "default")
    assert mapping.adicional(route, context) == {"Nombre": "Ana", "Origen": "Landi"}


def test_phone_parts(tmp_path: Path) -> None:
    route = route_from(
        tmp_path,
        'phone_parts = { country_code = "{{ cc }}", areacode = "{{ area }}", phonenumber = "{{ num }}" }\n',
    )
    context = mapping.template_context({"cc": "+56", "area": "9", "num": "6123 4567"}, {}, {}, "default")
    assert mapping.typed_phone(route, context) == "+56 9 6123 4567"
    context = mapping.template_context({"area": "9", "num": "61234567"}, {}, {}, "default")
    assert mapping.typed_phone(route, context) == "9 61234567"
    assert mapping.typed_phone(route, mapping.template_context({}, {}, {}, "default")) == ""


def test_template_context_names(tmp_path: Path) -> None:
    route = route_from(tmp_path, "phone = \"{{ query.tel }}{{ headers['x-tel'] }}{{ body.a }}{{ route }}\"\n")
    context = mapping.template_context({"a": "A"}, {"tel": "Q"}, {"x-tel": "H"}, "default")
    assert mapping.typed_phone(route, context) == "QHAdefault"


def test_fromjson_in_a_route(tmp_path: Path) -> None:
    route = route_from(tmp_path, 'phone = "{{ (data_json | fromjson).telefono }}"\n')
    body = {"data_json": json.dumps({"telefono": "+56961234567"})}
    assert mapping.typed_phone(route, mapping.template_context(body, {}, {}, "default")) == "+56961234567"


def test_flattened_and_prefixed_keys() -> None:
    assert mapping.find_phone({"properties__phone__value": "+56961234567"}) == "+56961234567"
    assert mapping.find_phone({"q4_phoneNumber": {"full": "(32) 212-3456"}}) == "(32) 212-3456"
    assert mapping.find_phone({"q4_phone": {"area": "32", "phone": "2123456"}}) == "32 2123456"
    assert mapping.builtin_adicional({"q3_name": {"first": "Ana", "last": "Vera"}})["Nombre"] == "Ana Vera"


def test_json_inside_a_text_field() -> None:
    body = {"data.json": json.dumps({"phone_number": ["9-5631-1283"], "email": ["a@b.cl"]}), "page_id": "x"}
    assert mapping.find_phone(body) == "9-5631-1283"
    assert mapping.builtin_adicional(body)["Email"] == "a@b.cl"
    assert mapping.find_phone({"note": "{not json", "phone": "961234567"}) == "961234567"


def test_a_forms_own_name_is_not_the_leads() -> None:
    webflow = {"payload": {"name": "Formulario Contacto", "data": {"Name": "Sofía", "Phone": "1"}}}
    assert mapping.builtin_adicional(webflow)["Nombre"] == "Sofía"
    elementor = {"form": {"id": "a1", "name": "Contacto Landing"}, "fields": {"name": {"value": "Diego"}}}
    assert mapping.builtin_adicional(elementor)["Nombre"] == "Diego"


def test_list_items_labelled_by_a_nested_field_ref() -> None:
    answers = {"answers": [{"type": "text", "text": "Martina", "field": {"id": "x1", "ref": "nombre"}}]}
    assert mapping.builtin_adicional(answers)["Nombre"] == "Martina"


def test_the_outermost_number_is_the_leads() -> None:
    # A nested "phone" (the company's) must not win over the lead's top-level "telefono".
    assert mapping.find_phone({"telefono": "+56 9 4000 0011", "empresa": {"phone": "+56 2 2123 4567"}}) == (
        "+56 9 4000 0011"
    )


def test_a_phone_field_without_digits_is_passed_over() -> None:
    assert mapping.find_phone({"phone": "false", "telefono": "+56 9 6123 4567"}) == "+56 9 6123 4567"
    assert mapping.find_phone({"phone": "n/a"}) == "n/a"  # then invalid_phone, not phone_missing


# -- the senders' documented payloads (issue 21) --


def test_rd_station_documented_contact_keeps_its_email_out_of_nombre() -> None:
    """RD Station's own sample (WEBHOOK.CONVERTED, "payload padrão"): a contact named "Contact Name" with an
    email was read as a field named "Contact Name" holding the email, and that beat contact.name."""
    body = {
        "event_type": "WEBHOOK.CONVERTED",
        "entity_type": "CONTACT",
        "event_identifier": "my-event-identifier",
        "contact": {
            "uuid": "c2f3d2b3-7250-4d27-97f4-eef38be32f7f",
            "email": "contact@example.com",
            "name": "Contact Name",
            "personal_phone": "48 30252598",
            "mobile_phone": "48 30252598",
            "legal_bases": [{"category": "communications", "type": "consent", "status": "granted"}],
            "company": {"name": "Company Example 0"},
            "funnel": {"name": "default", "contact_owner_email": "owner@example.com"},
        },
    }
    assert mapping.builtin_adicional(body) == {"Nombre": "Contact Name", "Email": "contact@example.com"}
    assert mapping.find_phone(body) == "48 30252598"


def test_typeform_typed_answers_still_name_their_value_by_type() -> None:
    email = {"type": "email", "email": "ana@acme.cl", "field": {"id": "x1", "type": "email"}}
    phone = {"type": "phone_number", "phone_number": "+56961234567", "field": {"id": "x2"}}
    answers = {"answers": [email, phone]}
    assert mapping.find_phone(answers) == "+56961234567"
    assert mapping.builtin_adicional(answers)["Email"] == "ana@acme.cl"


def test_rd_station_legacy_portuguese_fields() -> None:
    body = {"leads": [{"email": "f@example.cl", "name": None, "personal_phone": None, "mobile_phone": None,
                       "last_conversion": {"content": {"nome": "Fernanda", "sobrenome": "Ríos",
                                                       "telefone": "(9) 6543-2109"}}}]}  # fmt: skip
    assert mapping.find_phone(body) == "(9) 6543-2109"
    assert mapping.builtin_adicional(body) == {"Nombre": "Fernanda Ríos", "Email": "f@example.cl"}


def test_activecampaign_contact_with_custom_fields_keeps_its_name() -> None:
    """contact[fields][7]=... made the contact look like a form around its fields: its name was skipped."""
    raw = (b"type=subscribe&contact[email]=d%40example.cl&contact[first_name]=Daniela&contact[last_name]=Pizarro"
           b"&contact[phone]=%2B56971234567&contact[fields][7]=Las+Condes&form[id]=12")  # fmt: skip
    body = parse_body("application/x-www-form-urlencoded", raw)
    assert mapping.builtin_adicional(body) == {"Nombre": "Daniela Pizarro", "Email": "d@example.cl"}


def test_a_form_around_its_fields_is_still_not_the_lead() -> None:
    body = {"name": "Formulario Contacto", "data": {"telefono": "+56961234567", "nombre": "Ana"}}
    assert mapping.builtin_adicional(body)["Nombre"] == "Ana"
