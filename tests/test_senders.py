"""Real senders end to end (in-process): each one's sample body, through its documented route config,
to the exact FormCall payload; and what the zero-config mapping makes of the same bodies.

The route configs live in tests/samples/configs/ and are included verbatim in docs/senders/*.md;
test_docs_show_the_tested_config keeps the two equal.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest

from formcall_webhook.app import App, Request, read_stream
from formcall_webhook.simulator import Simulator
from tests.fakes.meta_graph import FakeGraph
from tests.harness import coverage_env
from tests.signing import meta, tally, typeform, webflow

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "tests" / "samples"
CONFIGS = SAMPLES / "configs"
DOCS = ROOT / "docs" / "senders"
POPUP = "e5c98214-d0f6-11e1-8c30-001d09ef4a24"
FORMCALL_TOKEN = "senders-token-5e2b"
SIMULATOR_TOKENS = (FORMCALL_TOKEN,)  # the tokens the module's simulator accepts (tests/conftest.py)

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
# WordPress (wp_remote_post) adds the blog charset.
WP_FORM = "application/x-www-form-urlencoded; charset=UTF-8"
# tests/samples/jotform.multipart is raw multipart bytes written with this boundary.
JOTFORM_BOUNDARY = "------------------------5c1f2d3e4a5b6c7d"
MULTIPART = f"multipart/form-data; boundary={JOTFORM_BOUNDARY}"

# The secrets the route configs name (env:...), as the function's environment would hold them.
SECRETS = {
    "HUBSPOT_APP_SECRET": "hs-app-secret-0c4d",
    "HUBSPOT_WEBHOOK_TOKEN": "hs-wf-token-91aa",
    "ZAPIER_TOKEN": "zap-token-7f3a",
    "ELEMENTOR_TOKEN": "elem-token-22b1",
    "CF7_TOKEN": "cf7-token-5d0e",
    "TYPEFORM_SECRET": "tf-secret-8c3f",
    "TALLY_SIGNING_SECRET": "tally-secret-4b6a",
    "UNBOUNCE_TOKEN": "ub-token-1e9d",
    "JOTFORM_TOKEN": "jf-token-6a7c",
    "WEBFLOW_SECRET": "wf-client-secret-3d8b",
    "WPFORMS_TOKEN": "wpf-token-4c2e",
    "GRAVITY_TOKEN": "gf-token-9b1d",
    "RD_STATION_TOKEN": "rd-token-7e5a",
    "ACTIVECAMPAIGN_TOKEN": "ac-token-2f8c",
    "META_APP_SECRET": "meta-app-secret-5c7e",
    "META_VERIFY_TOKEN": "meta-verify-token-0d3a",
    "META_PAGE_TOKEN": "EAAGmeta-page-token-8e14",
}
HUBSPOT_PUBLIC_URL = "https://REGION-PROJECT.cloudfunctions.net/formcall-webhook/hubspot"


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def make_app(simulator: Simulator, config: str | None) -> App:
    """An App with the sender's config file, or zero-config (only FORMCALL_POPUP_UUID) when None."""
    environ = {"FORMCALL_API_URL": simulator.api_url, "FORMCALL_SECURITY_TOKEN": FORMCALL_TOKEN, **SECRETS}
    if config is None:
        environ["FORMCALL_POPUP_UUID"] = POPUP
    else:
        environ["FORMCALL_CONFIG"] = str(CONFIGS / config)
    return App(environ)


def send(
    app: App,
    path: str,
    body: bytes,
    content_type: str,
    *,
    query: bytes = b"",
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, Any]]:
    all_headers = {"content-type": content_type, **{k.lower(): v for k, v in (headers or {}).items()}}
    stream = io.BytesIO(body)
    request = Request(
        "POST", path, all_headers, query, lambda limit, timeout=None: read_stream(stream, limit, timeout), len(body)
    )
    response = app.handle(request)
    return response.status, json.loads(response.body)


def token_query(name: str) -> bytes:
    return f"token={SECRETS[name]}".encode()


def token_header(name: str) -> dict[str, str]:
    return {"x-webhook-token": SECRETS[name]}


def hubspot_headers(body: bytes, *, secret: str = SECRETS["HUBSPOT_APP_SECRET"]) -> dict[str, str]:
    """Signature v3 as HubSpot computes it: method + URI (as entered in HubSpot) + body + timestamp."""
    timestamp = str(int(time.time() * 1000))
    message = b"POST" + HUBSPOT_PUBLIC_URL.encode() + body + timestamp.encode()
    signature = base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest()).decode()
    return {"x-hubspot-signature-v3": signature, "x-hubspot-request-timestamp": timestamp}


def formcall_payload(country_code: str, areacode: str, phonenumber: str, adicional: dict[str, str]) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "popup_uuid": POPUP,
        "country_code": country_code,
        "areacode": areacode,
        "phonenumber": phonenumber,
        "security_token": FORMCALL_TOKEN,
    }
    if adicional:
        payload["adicional"] = adicional
    return payload


def the_one_call(simulator: Simulator) -> dict[str, Any]:
    calls = simulator.calls()
    assert len(calls) == 1, calls
    assert calls[0]["outcome"] == "placed", calls[0]
    payload: dict[str, Any] = calls[0]["payload"]
    return payload


# -- sample bodies reshaped the way the same sender also sends them --


def form_as_json(raw: bytes) -> bytes:
    """A form body as the flat JSON object a sender's JSON mode sends (Zapier json, CF7 JSON plugins)."""
    return json.dumps(dict(parse_qsl(raw.decode(), keep_blank_values=True)), ensure_ascii=False).encode()


def webflow_number_phone() -> bytes:
    # Webflow sends number inputs as JSON numbers (its own example: "Phone Number": 15550000000).
    data = json.loads(sample("webflow.json"))
    data["payload"]["data"]["Phone"] = 56961234567
    return json.dumps(data).encode()


def jotform_unmasked_phone() -> bytes:
    # A Jotform phone field without an input mask sends area code and number apart.
    raw = sample("jotform.multipart")
    assert b'"q4_phoneNumber":{"full":"(32) 212-3456"}' in raw
    return raw.replace(b'{"full":"(32) 212-3456"}', b'{"area":"32","phone":"2123456"}')


# -- every sender, through its documented config --


@dataclass(frozen=True)
class Case:
    config: str
    path: str
    body: bytes
    content_type: str
    expected: dict[str, Any]
    query: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    # Signs the body at send time, as the sender does (a timestamp, where there is one, must be fresh).
    signer: Callable[[bytes], dict[str, str]] | None = None

    def request_headers(self) -> dict[str, str]:
        signed = self.signer(self.body) if self.signer else {}
        return {k.lower(): v for k, v in {**self.headers, **signed}.items()}


def typeform_signed(body: bytes) -> dict[str, str]:
    return typeform(SECRETS["TYPEFORM_SECRET"], body)


def meta_signed(body: bytes) -> dict[str, str]:
    return meta(SECRETS["META_APP_SECRET"], body)


def tally_signed(body: bytes) -> dict[str, str]:
    return tally(SECRETS["TALLY_SIGNING_SECRET"], body)


def webflow_signed(body: bytes) -> dict[str, str]:
    return webflow(SECRETS["WEBFLOW_SECRET"], body)


HUBSPOT_LEGACY = sample("hubspot_legacy_contact.json")
CASES = {
    # Legacy contact shape (properties.X.value), signed with the app secret; mobilephone preferred.
    "hubspot-legacy-signed": Case(
        "hubspot.toml",
        "/hubspot",
        HUBSPOT_LEGACY,
        JSON,
        formcall_payload(
            "56",
            "9",
            "74766123",
            {"Nombre": "Camila Rojas", "Email": "camila.rojas@example.cl", "Sucursal": "santiago", "HubSpot": "3751"},
        ),
        signer=hubspot_headers,
    ),
    # "Customize request body": flat properties, empty mobilephone, token in the query string.
    "hubspot-custom-body-token": Case(
        "hubspot.toml",
        "/hubspot-workflow",
        sample("hubspot_custom_body.json"),
        JSON,
        formcall_payload(
            "56",
            "9",
            "61234567",
            {
                "Nombre": "Benjamín Araya",
                "Email": "benja.araya@example.cl",
                "Sucursal": "vina-del-mar",
                "HubSpot": "4102",
            },
        ),
        query=token_query("HUBSPOT_WEBHOOK_TOKEN"),
    ),
    # Zapier, payload type json; keys with spaces; the country code typed without "+".
    "zapier-json": Case(
        "zapier.toml",
        "/zapier",
        sample("zapier.json"),
        JSON,
        formcall_payload(
            "56",
            "9",
            "87654321",
            {"Nombre": "Tomás Fuentes", "Email": "tomas@example.cl", "Origen": "Facebook Lead Ads"},
        ),
        headers=token_header("ZAPIER_TOKEN"),
    ),
    # The same zap with payload type form; parentheses and a dash in the number.
    "zapier-form": Case(
        "zapier.toml",
        "/zapier",
        sample("zapier_form.form"),
        FORM,
        formcall_payload(
            "56",
            "9",
            "56311283",
            {"Nombre": "Francisca Lagos", "Email": "flagos@example.cl", "Origen": "Facebook Lead Ads"},
        ),
        headers=token_header("ZAPIER_TOKEN"),
    ),
    # Data left empty: a HubSpot contact flattened with "__"; a Valparaíso landline without "+56".
    "zapier-raw-form": Case(
        "zapier.toml",
        "/zapier-raw",
        sample("zapier_nested.form"),
        FORM,
        formcall_payload(
            "56",
            "32",
            "2123456",
            {"Nombre": "Ignacio Fuenzalida", "Email": "ifuenzalida@example.cl", "Origen": "Zapier (HubSpot)"},
        ),
        headers=token_header("ZAPIER_TOKEN"),
    ),
    # The same with payload type json and Unflatten "no": the "__" keys stay flat in JSON.
    "zapier-raw-json": Case(
        "zapier.toml",
        "/zapier-raw",
        form_as_json(sample("zapier_nested.form")),
        JSON,
        formcall_payload(
            "56",
            "32",
            "2123456",
            {"Nombre": "Ignacio Fuenzalida", "Email": "ifuenzalida@example.cl", "Origen": "Zapier (HubSpot)"},
        ),
        headers=token_header("ZAPIER_TOKEN"),
    ),
    # Elementor "Advanced Data": form[..], fields[ID][value], meta[..][value]; a field with a random ID.
    "elementor-advanced": Case(
        "elementor.toml",
        "/elementor",
        sample("elementor_advanced.form"),
        WP_FORM,
        formcall_payload(
            "56",
            "9",
            "56311283",
            {
                "Nombre": "Diego Muñoz",
                "Email": "diego.munoz@example.cl",
                "Comuna": "Las Condes",
                "Mensaje": "Llámenme después de las 18:00",
                "Página": "https://acme.cl/landing-verano/",
            },
        ),
        query=token_query("ELEMENTOR_TOKEN"),
    ),
    # The older sample: default field ID "phone" instead of "telefono".
    "elementor-phone-id": Case(
        "elementor.toml",
        "/elementor",
        sample("elementor.form"),
        WP_FORM,
        formcall_payload(
            "56",
            "9",
            "56311283",
            {"Nombre": "Diego Muñoz", "Email": "diego@example.cl", "Página": "https://acme.cl/landing/"},
        ),
        query=token_query("ELEMENTOR_TOKEN"),
    ),
    # "Advanced Data" off: the labels are the keys (UTF-8 "Teléfono"), no meta.
    "elementor-simple": Case(
        "elementor.toml",
        "/elementor",
        sample("elementor_simple.form"),
        WP_FORM,
        formcall_payload(
            "56",
            "9",
            "56311283",
            {
                "Nombre": "Diego Muñoz",
                "Email": "diego.munoz@example.cl",
                "Comuna": "Las Condes",
                "Mensaje": "Llámenme después de las 18:00",
            },
        ),
        query=token_query("ELEMENTOR_TOKEN"),
    ),
    # CF7 tags with hyphens (body['your-phone']); a leftover trunk 0.
    "cf7-form": Case(
        "contact_form_7.toml",
        "/cf7",
        sample("contact_form_7.form"),
        WP_FORM,
        formcall_payload(
            "56",
            "9",
            "61234567",
            {
                "Nombre": "Valentina Soto",
                "Email": "vsoto@example.cl",
                "Asunto": "Cotización",
                "Mensaje": "Hola, quiero que me llamen.",
            },
        ),
        query=token_query("CF7_TOKEN"),
    ),
    # The plugins that post JSON instead: same keys, same config.
    "cf7-json": Case(
        "contact_form_7.toml",
        "/cf7",
        form_as_json(sample("contact_form_7.form")),
        JSON,
        formcall_payload(
            "56",
            "9",
            "61234567",
            {
                "Nombre": "Valentina Soto",
                "Email": "vsoto@example.cl",
                "Asunto": "Cotización",
                "Mensaje": "Hola, quiero que me llamen.",
            },
        ),
        query=token_query("CF7_TOKEN"),
    ),
    # Typeform answers picked by type and by their question's title; phone in E.164; choice label; hidden.
    "typeform": Case(
        "typeform.toml",
        "/typeform",
        sample("typeform.json"),
        JSON,
        formcall_payload(
            "56",
            "9",
            "56311283",
            {
                "Nombre": "Martina Reyes",
                "Email": "martina.reyes@example.cl",
                "Sucursal": "Viña del Mar",
                "Campaña": "verano-2026",
            },
        ),
        signer=typeform_signed,
    ),
    # Typeform's documented shape: answers name their question by id only (no ref), titles in definition.
    "typeform-documented": Case(
        "typeform.toml",
        "/typeform",
        sample("typeform_documented.json"),
        JSON,
        formcall_payload("56", "9", "56311283", {"Nombre": "Laura Navarro", "Email": "laura.navarro@example.cl"}),
        signer=typeform_signed,
    ),
    # Tally fields picked by type and label; a Santiago landline; a dropdown's option id turned into its text.
    "tally": Case(
        "tally.toml",
        "/tally",
        sample("tally.json"),
        JSON,
        formcall_payload(
            "56",
            "2",
            "21234567",
            {
                "Nombre": "Joaquín Tapia",
                "Email": "jtapia@example.cl",
                "Sucursal": "Providencia",
                "Formulario": "Te llamamos gratis",
            },
        ),
        signer=tally_signed,
    ),
    # Tally's documented shape: every block type, a file upload and a signature; no "Nombre" label.
    "tally-documented": Case(
        "tally.toml",
        "/tally",
        sample("tally_documented.json"),
        JSON,
        formcall_payload("56", "9", "61234567", {"Email": "ana.perez@example.cl", "Formulario": "Webhook payloads"}),
        signer=tally_signed,
    ),
    # Unbounce: JSON in the data.json form field, list values; dashes in the number.
    "unbounce": Case(
        "unbounce.toml",
        "/unbounce",
        sample("unbounce.form"),
        FORM,
        formcall_payload(
            "56",
            "9",
            "56311283",
            {
                "Nombre": "Catalina Vergara",
                "Email": "cata.vergara@example.cl",
                "Comuna": "Viña del Mar",
                "Página": "Verano 2026 - Te llamamos (b)",
            },
        ),
        query=token_query("UNBOUNCE_TOKEN"),
    ),
    # Jotform: multipart, answers as JSON in rawRequest; {"full": ...} phone, {"first", "last"} name.
    "jotform": Case(
        "jotform.toml",
        "/jotform",
        sample("jotform.multipart"),
        MULTIPART,
        formcall_payload(
            "56",
            "32",
            "2123456",
            {
                "Nombre": "Valentina Orellana",
                "Email": "vorellana@example.cl",
                "Comuna": "Valparaíso",
                "Formulario": "Te llamamos",
            },
        ),
        query=token_query("JOTFORM_TOKEN"),
    ),
    # Without an input mask the phone comes as {"area", "phone"}.
    "jotform-unmasked-phone": Case(
        "jotform.toml",
        "/jotform",
        jotform_unmasked_phone(),
        MULTIPART,
        formcall_payload(
            "56",
            "32",
            "2123456",
            {
                "Nombre": "Valentina Orellana",
                "Email": "vorellana@example.cl",
                "Comuna": "Valparaíso",
                "Formulario": "Te llamamos",
            },
        ),
        query=token_query("JOTFORM_TOKEN"),
    ),
    # Webflow: payload.data keyed by the fields' Designer names.
    "webflow": Case(
        "webflow.toml",
        "/webflow",
        sample("webflow.json"),
        JSON,
        formcall_payload(
            "56",
            "9",
            "61234567",
            {
                "Nombre": "Sofía Contreras",
                "Email": "sofia.contreras@example.cl",
                "Comuna": "Ñuñoa",
                "Formulario": "Formulario Contacto (/contacto)",
            },
        ),
        signer=webflow_signed,
    ),
    # Webflow's documented shape: "First Name", "Last Name", "email", "Phone Number" as a JSON number.
    "webflow-documented": Case(
        "webflow.toml",
        "/webflow",
        sample("webflow_documented.json"),
        JSON,
        formcall_payload(
            "56",
            "9",
            "61234567",
            {
                "Nombre": "Gabriel Sepúlveda",
                "Email": "gabriel.sepulveda@example.cl",
                "Formulario": "Contact Us (/contact-us)",
            },
        ),
        signer=webflow_signed,
    ),
    # A number input arrives as a JSON number, country code included, no "+".
    "webflow-number-phone": Case(
        "webflow.toml",
        "/webflow",
        webflow_number_phone(),
        JSON,
        formcall_payload(
            "56",
            "9",
            "61234567",
            {
                "Nombre": "Sofía Contreras",
                "Email": "sofia.contreras@example.cl",
                "Comuna": "Ñuñoa",
                "Formulario": "Formulario Contacto (/contacto)",
            },
        ),
        signer=webflow_signed,
    ),
    # WPForms Webhooks addon: the Request Body keys typed in the form's settings, Request Format JSON...
    "wpforms-json": Case(
        "wpforms.toml",
        "/wpforms",
        sample("wpforms.json"),
        JSON,
        formcall_payload(
            "56",
            "9",
            "54321987",
            {
                "Nombre": "Matías Carrasco",
                "Email": "matias.carrasco@example.cl",
                "Comuna": "La Florida",
                "Mensaje": "Prefiero que me llamen en la tarde",
            },
        ),
        headers=token_header("WPFORMS_TOKEN"),
    ),
    # ...or FORM.
    "wpforms-form": Case(
        "wpforms.toml",
        "/wpforms",
        sample("wpforms.form"),
        WP_FORM,
        formcall_payload(
            "56",
            "9",
            "54321987",
            {
                "Nombre": "Matías Carrasco",
                "Email": "matias.carrasco@example.cl",
                "Comuna": "La Florida",
                "Mensaje": "Prefiero que me llamen en la tarde",
            },
        ),
        headers=token_header("WPFORMS_TOKEN"),
    ),
    # Gravity Forms Webhooks Add-On, Request Body "Select Fields": the keys chosen in Field Values.
    "gravity-select-fields": Case(
        "gravity_forms.toml",
        "/gravity",
        sample("gravity_forms.json"),
        JSON,
        formcall_payload(
            "56",
            "9",
            "76543210",
            {"Nombre": "Ignacia Morales", "Email": "ignacia.morales@example.cl", "Comuna": "Ñuñoa"},
        ),
        headers=token_header("GRAVITY_TOKEN"),
    ),
    # "All Fields": the whole entry, each field under its numeric ID ("1.3" first name, "3" the phone).
    "gravity-all-fields": Case(
        "gravity_forms.toml",
        "/gravity",
        sample("gravity_forms_all_fields.json"),
        JSON,
        formcall_payload(
            "56",
            "9",
            "76543210",
            {"Nombre": "Ignacia Morales", "Email": "ignacia.morales@example.cl", "Comuna": "Ñuñoa"},
        ),
        headers=token_header("GRAVITY_TOKEN"),
    ),
    # RD Station Marketing webhook, API 2.0 (WEBHOOK.CONVERTED): the contact; a custom field cf_comuna.
    "rd-station": Case(
        "rd_station.toml",
        "/rd-station",
        sample("rd_station.json"),
        JSON,
        formcall_payload(
            "56",
            "9",
            "82345671",
            {
                "Nombre": "Rodrigo Alarcón",
                "Email": "rodrigo.alarcon@example.cl",
                "Comuna": "Providencia",
                "Conversion": "te-llamamos-landing",
            },
        ),
        query=token_query("RD_STATION_TOKEN"),
    ),
    # API 1.x: leads[], the form's own fields in Portuguese in the conversion's content.
    "rd-station-legacy": Case(
        "rd_station.toml",
        "/rd-station-legacy",
        sample("rd_station_legacy.json"),
        JSON,
        formcall_payload(
            "56",
            "9",
            "65432109",
            {"Nombre": "Fernanda Ríos", "Email": "fernanda.rios@example.cl", "Conversion": "te-llamamos"},
        ),
        query=token_query("RD_STATION_TOKEN"),
    ),
    # ActiveCampaign webhook: POST parameters contact[...], custom fields as contact[fields][ID].
    "activecampaign": Case(
        "activecampaign.toml",
        "/activecampaign",
        sample("activecampaign.form"),
        FORM,
        formcall_payload(
            "56",
            "9",
            "71234567",
            {"Nombre": "Daniela Pizarro", "Email": "daniela.pizarro@example.cl", "Comuna": "Las Condes"},
        ),
        query=token_query("ACTIVECAMPAIGN_TOKEN"),
    ),
    # Meta Lead Ads: the delivery names the lead; its fields are read from the Graph API (meta_lead.json).
    "meta": Case(
        "meta.toml",
        "/meta",
        sample("meta_leadgen.json"),
        JSON,
        formcall_payload(
            "56",
            "9",
            "62410101",
            {
                "Nombre": "Valentina Soto",
                "Email": "valentina.soto@example.cl",
                "Comuna": "Ñuñoa",
                "Formulario": "1046852300000101",
            },
        ),
        signer=meta_signed,
    ),
}


@pytest.fixture(scope="module")
def meta_config(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """meta.toml with its leads read from a loopback Graph API that holds meta_lead.json."""
    lead = json.loads(sample("meta_lead.json"))
    graph = FakeGraph(SECRETS["META_PAGE_TOKEN"]).start()
    graph.add_lead(lead["id"], lead["field_data"], lead["created_time"])
    path = tmp_path_factory.mktemp("meta") / "meta.toml"
    text = (CONFIGS / "meta.toml").read_text(encoding="utf-8")
    path.write_text(f'{text}\n[defaults.auth]\ngraph_url = "{graph.url}"\n', encoding="utf-8")
    yield str(path)
    graph.stop()


@pytest.mark.parametrize("name", list(CASES))
def test_sender_through_its_documented_route(name: str, simulator: Simulator, request: pytest.FixtureRequest) -> None:
    case = CASES[name]
    config = request.getfixturevalue("meta_config") if case.config == "meta.toml" else case.config
    app = make_app(simulator, config)
    headers = case.request_headers()
    status, answer = send(app, case.path, case.body, case.content_type, query=case.query, headers=headers)
    assert (status, answer.get("success")) == (200, True), answer
    assert the_one_call(simulator) == case.expected
    # A Meta delivery answers for each lead it names.
    first = answer["leads"][0] if "leads" in answer else answer
    assert first["uuid"] == simulator.placed()[0]["uuid"]


# -- who may submit: each documented route refuses a sender without its credential --
# These need the route auth of spec section 5 (formcall_webhook/senders/).

AUTHENTICATED = ["hubspot-custom-body-token", "zapier-json", "zapier-raw-form", "elementor-advanced", "cf7-form",
                 "unbounce", "jotform", "wpforms-json", "gravity-all-fields", "rd-station", "rd-station-legacy",
                 "activecampaign"]  # fmt: skip


@pytest.mark.parametrize("name", AUTHENTICATED)
def test_token_routes_refuse_a_missing_or_wrong_token(name: str, simulator: Simulator) -> None:
    case = CASES[name]
    app = make_app(simulator, case.config)
    status, answer = send(app, case.path, case.body, case.content_type)
    assert (status, answer["error"]) == (401, "unauthorized"), answer
    wrong_query = case.query.replace(b"-token-", b"-nekot-")
    wrong_headers = {k: v.replace("-token-", "-nekot-") for k, v in case.headers.items()}
    assert (wrong_query, wrong_headers) != (case.query, case.headers)
    status, answer = send(app, case.path, case.body, case.content_type, query=wrong_query, headers=wrong_headers)
    assert (status, answer["error"]) == (401, "unauthorized"), answer
    assert simulator.calls() == []


def test_hubspot_route_refuses_an_unsigned_or_missigned_body(simulator: Simulator) -> None:
    app = make_app(simulator, "hubspot.toml")
    status, answer = send(app, "/hubspot", HUBSPOT_LEGACY, JSON)
    assert (status, answer["error"]) == (401, "unauthorized"), answer
    status, answer = send(app, "/hubspot", HUBSPOT_LEGACY, JSON, headers=hubspot_headers(HUBSPOT_LEGACY, secret="nope"))
    assert (status, answer["error"]) == (401, "unauthorized"), answer
    tampered = HUBSPOT_LEGACY.replace(b"9 7476 6123", b"9 7476 6124")
    status, answer = send(app, "/hubspot", tampered, JSON, headers=hubspot_headers(HUBSPOT_LEGACY))
    assert (status, answer["error"]) == (401, "unauthorized"), answer
    assert simulator.calls() == []


SIGNED = ["hubspot-legacy-signed", "typeform", "tally", "webflow"]


@pytest.mark.parametrize("name", SIGNED)
def test_signed_routes_refuse_unsigned_missigned_or_tampered_bodies(name: str, simulator: Simulator) -> None:
    case = CASES[name]
    assert case.signer is not None
    app = make_app(simulator, case.config)
    tampered = case.body.replace(b"example.cl", b"example.com")
    assert tampered != case.body
    for body, headers in (
        (case.body, {}),
        (tampered, case.signer(case.body)),
        (case.body, {k: v[:-2] + ("AA" if v[-2:] != "AA" else "BB") for k, v in case.signer(case.body).items()}),
    ):
        status, answer = send(app, case.path, body, case.content_type, headers=headers)
        assert (status, answer["error"]) == (401, "unauthorized"), (headers, answer)
    assert simulator.calls() == []


def test_zapier_routes_refuse_the_token_in_the_url(simulator: Simulator) -> None:
    # query_token = false: a token in the URL would sit in Cloud Run's request logs.
    case = CASES["zapier-json"]
    app = make_app(simulator, case.config)
    status, answer = send(app, case.path, case.body, case.content_type, query=token_query("ZAPIER_TOKEN"))
    assert (status, answer["error"]) == (401, "unauthorized"), answer
    assert simulator.calls() == []


# -- zero-config: only FORMCALL_POPUP_UUID, the built-in finder --
# Every sender here, including the shapes a finder has to work for: Zapier's "__"-flattened keys,
# JSON inside a text field (Unbounce data.json, Jotform rawRequest), Jotform's q<N>_ prefixes and
# {"full"} / {"first", "last"} values, a form's own name beside the lead's, Typeform's field.ref.

ZERO_CONFIG = {
    "hubspot_legacy_contact.json": (JSON, ("56", "2", "21234567"), "Camila Rojas", "camila.rojas@example.cl"),
    "hubspot_custom_body.json": (JSON, ("56", "9", "61234567"), "Benjamín Araya", "benja.araya@example.cl"),
    "zapier.json": (JSON, ("56", "9", "87654321"), "Tomás Fuentes", "tomas@example.cl"),
    "zapier_form.form": (FORM, ("56", "9", "56311283"), "Francisca Lagos", "flagos@example.cl"),
    "zapier_nested.form": (FORM, ("56", "32", "2123456"), "Ignacio Fuenzalida", "ifuenzalida@example.cl"),
    "elementor.form": (WP_FORM, ("56", "9", "56311283"), "Diego Muñoz", "diego@example.cl"),
    "elementor_advanced.form": (WP_FORM, ("56", "9", "56311283"), "Diego Muñoz", "diego.munoz@example.cl"),
    "elementor_simple.form": (WP_FORM, ("56", "9", "56311283"), "Diego Muñoz", "diego.munoz@example.cl"),
    "contact_form_7.form": (WP_FORM, ("56", "9", "61234567"), "Valentina Soto", "vsoto@example.cl"),
    "typeform.json": (JSON, ("56", "9", "56311283"), "Martina Reyes", "martina.reyes@example.cl"),
    "tally.json": (JSON, ("56", "2", "21234567"), "Joaquín Tapia", "jtapia@example.cl"),
    "unbounce.form": (FORM, ("56", "9", "56311283"), "Catalina Vergara", "cata.vergara@example.cl"),
    "jotform.multipart": (MULTIPART, ("56", "32", "2123456"), "Valentina Orellana", "vorellana@example.cl"),
    "webflow.json": (JSON, ("56", "9", "61234567"), "Sofía Contreras", "sofia.contreras@example.cl"),
    # The senders' documented payload shapes: fields found by input type and title; a file is no name.
    "tally_documented.json": (JSON, ("56", "9", "61234567"), "", "ana.perez@example.cl"),
    "typeform_documented.json": (JSON, ("56", "9", "56311283"), "Laura Navarro", "laura.navarro@example.cl"),
    "elementor_default_ids.form": (WP_FORM, ("56", "9", "61234567"), "Rocío Álvarez", "rocio.alvarez@example.cl"),
    "webflow_documented.json": (JSON, ("56", "9", "61234567"), "Gabriel Sepúlveda", "gabriel.sepulveda@example.cl"),
    # Request Body keys named in Spanish; a contact with custom fields; Portuguese conversion fields.
    "wpforms.json": (JSON, ("56", "9", "54321987"), "Matías Carrasco", "matias.carrasco@example.cl"),
    "wpforms.form": (WP_FORM, ("56", "9", "54321987"), "Matías Carrasco", "matias.carrasco@example.cl"),
    "gravity_forms.json": (JSON, ("56", "9", "76543210"), "Ignacia Morales", "ignacia.morales@example.cl"),
    "rd_station.json": (JSON, ("56", "9", "82345671"), "Rodrigo Alarcón", "rodrigo.alarcon@example.cl"),
    "rd_station_legacy.json": (JSON, ("56", "9", "65432109"), "Fernanda Ríos", "fernanda.rios@example.cl"),
    "activecampaign.form": (FORM, ("56", "9", "71234567"), "Daniela Pizarro", "daniela.pizarro@example.cl"),
}


def zero_config_call(simulator: Simulator, name: str) -> tuple[int, dict[str, Any]]:
    content_type = ZERO_CONFIG[name][0]
    status, answer = send(make_app(simulator, None), "/", sample(name), content_type)
    calls = simulator.calls()
    return status, (calls[0]["payload"] if calls else answer)


@pytest.mark.parametrize("name", list(ZERO_CONFIG))
def test_zero_config_finds_the_phone(name: str, simulator: Simulator) -> None:
    status, payload = zero_config_call(simulator, name)
    assert status == 200, payload
    split = (payload["popup_uuid"], payload["country_code"], payload["areacode"], payload["phonenumber"])
    assert split == (POPUP, *ZERO_CONFIG[name][1])


@pytest.mark.parametrize("name", list(ZERO_CONFIG))
def test_zero_config_finds_name_and_email(name: str, simulator: Simulator) -> None:
    _, cc_area_number, nombre, email = ZERO_CONFIG[name]
    status, payload = zero_config_call(simulator, name)
    assert status == 200, payload
    expected = {key: value for key, value in {"Nombre": nombre, "Email": email}.items() if value}
    assert payload == formcall_payload(*cc_area_number, expected)


def test_zero_config_on_gravity_all_fields_is_phone_missing(simulator: Simulator) -> None:
    """ "All Fields" keys each field by its numeric ID: nothing is named like a phone (the guide says
    to use "Select Fields" or body['3'])."""
    status, answer = send(make_app(simulator, None), "/", sample("gravity_forms_all_fields.json"), JSON)
    assert (status, answer["error"]) == (422, "phone_missing")
    assert simulator.calls() == []


# -- the same samples through `python -m formcall_webhook try`, as the guides tell the reader to check --

TRIED = ["wpforms-json", "wpforms-form", "gravity-select-fields", "gravity-all-fields", "rd-station",
         "rd-station-legacy", "activecampaign"]  # fmt: skip


def try_sample(*args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "formcall_webhook", "try", *args],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "FORMCALL_SECURITY_TOKEN": FORMCALL_TOKEN, **coverage_env()},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stderr) == (0, ""), (done.stdout, done.stderr)
    result: dict[str, Any] = json.loads(done.stdout)
    return result


@pytest.mark.parametrize("name", TRIED)
def test_try_shows_the_payload_the_route_sends(name: str) -> None:
    case = CASES[name]
    sample_path = next(p for p in SAMPLES.iterdir() if p.is_file() and p.read_bytes() == case.body)
    route = case.path.strip("/")
    result = try_sample("--config", str(CONFIGS / case.config), "--route", route,
                        "--content-type", case.content_type, str(sample_path))  # fmt: skip
    assert result["payload"] == {**case.expected, "security_token": "***"}
    assert FORMCALL_TOKEN not in json.dumps(result)


@pytest.mark.parametrize("name", ["wpforms.json", "rd_station.json", "rd_station_legacy.json", "activecampaign.form"])
def test_try_zero_config_finds_the_same(name: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "formcall_webhook", "try", str(SAMPLES / name)],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "FORMCALL_POPUP_UUID": POPUP, **coverage_env()},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout
    payload = json.loads(done.stdout)["payload"]
    _, cc_area_number, nombre, email = ZERO_CONFIG[name]
    assert payload == {**formcall_payload(*cc_area_number, {"Nombre": nombre, "Email": email}), "security_token": "***"}


# -- the docs show exactly the configs tested here --

CONFIG_BLOCK = re.compile(r"<!-- config: (?P<path>\S+) -->\n```toml\n(?P<toml>.*?)```\n", re.DOTALL)


@pytest.mark.parametrize("config", sorted(p.name for p in CONFIGS.glob("*.toml")))
def test_docs_show_the_tested_config(config: str) -> None:
    page = DOCS / f"{Path(config).stem}.md"
    blocks = {m["path"]: m["toml"] for m in CONFIG_BLOCK.finditer(page.read_text(encoding="utf-8"))}
    path = f"tests/samples/configs/{config}"
    assert path in blocks, f"{page.name} must include {path} between <!-- config: {path} --> and a ```toml block"
    assert blocks[path] == (CONFIGS / config).read_text(encoding="utf-8")


def test_senders_index_links_every_page() -> None:
    index = (DOCS / "README.md").read_text(encoding="utf-8")
    pages = sorted(p.name for p in DOCS.glob("*.md") if p.name != "README.md")
    assert pages, "no sender pages"
    for page in pages:
        assert f"]({page})" in index, f"docs/senders/README.md does not link {page}"
        # The guide proper (up to the end of its Quirks); later sections (call outcomes...) stand apart.
        text = (DOCS / page).read_text(encoding="utf-8")
        quirks = text.find("\n## Quirks")
        later = text.find("\n## ", quirks + 1) if quirks >= 0 else -1
        guide = text if later < 0 else text[:later]
        assert len(guide.splitlines()) <= 70, f"{page} is too long"


# -- each guide's claims are tested: its samples go through its config, and zero-config where it says so --

CLAIM = re.compile(r"<!-- (?P<kind>samples|zero-config): (?P<names>[^>]*?) -->")


def guide_claims(page: Path) -> dict[str, list[str]]:
    claims: dict[str, list[str]] = {"samples": [], "zero-config": []}
    for match in CLAIM.finditer(page.read_text(encoding="utf-8")):
        claims[match["kind"]] += match["names"].split()
    return claims


@pytest.mark.parametrize("page", sorted(p.name for p in DOCS.glob("*.md") if p.name != "README.md"))
def test_each_guide_claim_is_tested(page: str) -> None:
    claims = guide_claims(DOCS / page)
    config = f"{Path(page).stem}.toml"
    tested_through_config = {c.body for c in CASES.values() if c.config == config}
    assert claims["samples"], f"{page}: name its samples in <!-- samples: ... -->"
    for name in claims["samples"]:
        assert (SAMPLES / name).is_file(), f"{page} names a missing sample {name}"
        assert sample(name) in tested_through_config, f"{page}: {name} is not sent through {config} in CASES"
    for name in claims["zero-config"]:
        assert name in ZERO_CONFIG, f"{page} says zero-config works on {name}, but no test does it"
    text = (DOCS / page).read_text(encoding="utf-8").lower()
    # A guide says zero-config works, or where it falls short; never that it "finds nothing" while tests pass.
    if claims["zero-config"]:
        assert "finds nothing" not in text and "does not look inside" not in text, page
