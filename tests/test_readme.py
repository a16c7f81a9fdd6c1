"""README.es.md says what README.md says, section by section, and the guides' commands run.

Parity: the same headings at the same levels in the same order (each English title mapped to its Spanish
one), and in each pair of sections the same code blocks (comments aside), the same number of table rows,
and the same inline code (placeholders such as FILE/ARCHIVO mapped), so a fact added to one README and not
the other fails here.

Guides: every `infra/deploy.sh` command in README.md, README.es.md, docs/ and examples/landing/README.md
is accepted by `deploy.sh --dry-run` with the config the guide builds, every `python -m formcall_webhook
check` of a guide passes on that config, and no guide tells you to hand-run `--set-secrets` (the next
deploy.sh run would drop it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
README_ES = ROOT / "README.es.md"
DEPLOY = ROOT / "infra" / "deploy.sh"
POPUP = "e5c98214-d0f6-11e1-8c30-001d09ef4a24"

# Each heading of README.md and its title in README.es.md, in order.
TITLES = {
    "formcall-webhook": "formcall-webhook",
    "Two commands": "Dos comandos",
    "Deploying": "Publicarla en Google Cloud",
    "First deploy, on a new project": "El primer despliegue, en un proyecto nuevo",
    "Stores compared": "Comparación de almacenes",
    "Daily use": "El día a día",
    "Leads kept for later: retry and service hours": (
        "Prospectos guardados para después: reintentos y horario de atención"
    ),
    "Try the whole loop with `make run`": "Prueba el ciclo completo con `make run`",
    "The `leads` and `sweep` commands": "Los comandos `leads` y `sweep`",
    "Call outcomes": "Resultado de las llamadas",
    "Operations": "Operación",
    "Logs": "Registros (logs)",
    "Configuration": "Configuración",
    "Answers": "Respuestas",
    "Personal data": "Datos personales",
    "Senders": "Remitentes",
    "More documentation": "Más documentación",
}
# Placeholders written in Spanish in README.es.md, as they read in README.md.
PLACEHOLDERS = {
    "ARCHIVO": "FILE",
    "SEGUNDOS": "SECONDS",
    "CORREO": "EMAIL",
    "RUTA": "ROUTE",
    "NOMBRE": "NAME",
    "MUESTRA": "SAMPLE",
    "COMANDO": "COMMAND",
    "Nombre: valor": "Name: value",
    "+código de país": "+country",
}
# Inline code that names a path in one README and a placeholder in the other.
SAME_CODE = {"file:RUTA": "file:PATH"}


@dataclass
class Section:
    level: int
    title: str
    text: str


def sections(path: Path) -> list[Section]:
    """The file cut at its headings (outside code blocks)."""
    found: list[Section] = []
    fence = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            fence = not fence
        heading = None if fence else re.match(r"(#{1,6}) (.+)", line)
        if heading:
            found.append(Section(len(heading[1]), heading[2].strip(), ""))
        elif found:
            found[-1].text += line + "\n"
    return found


def untranslated(text: str) -> str:
    for spanish, english in PLACEHOLDERS.items():
        text = text.replace(spanish, english)
    return text


def code_blocks(text: str) -> list[str]:
    """Each fenced block, with comments and trailing spaces dropped (the comments are translated)."""
    blocks = []
    for block in re.findall(r"```\w*\n(.*?)```", untranslated(text), re.DOTALL):
        lines = []
        for line in block.splitlines():
            line = re.sub(r"\s+#( .*)?$", "", line) if not line.startswith("# {") else line
            if line.strip() and not line.lstrip().startswith("# "):
                lines.append(line.rstrip())
        blocks.append("\n".join(lines))
    return blocks


def inline_code(text: str) -> set[str]:
    """Every `span`, a span broken across lines read as one."""
    text = re.sub(r"```.*?```", "", text, flags=re.DOTALL).replace("\n", " ")
    return {untranslated(SAME_CODE.get(span, span)) for span in re.findall(r"`([^`]+)`", text)}


def table_rows(text: str) -> int:
    return sum(1 for line in text.splitlines() if line.startswith("| ") and not line.startswith("| ---"))


def test_the_spanish_readme_has_the_same_headings() -> None:
    english, spanish = sections(README), sections(README_ES)
    assert [s.title for s in english] == list(TITLES), "README.md's headings changed: update TITLES and README.es.md"
    assert [(s.level, s.title) for s in spanish] == [(s.level, TITLES[s.title]) for s in english]


@pytest.mark.parametrize("title", list(TITLES))
def test_each_spanish_section_says_the_same(title: str) -> None:
    english = next(s for s in sections(README) if s.title == title)
    spanish = next(s for s in sections(README_ES) if s.title == TITLES[title])
    assert code_blocks(spanish.text) == code_blocks(english.text), "the code blocks differ (comments aside)"
    assert table_rows(spanish.text) == table_rows(english.text), "the tables have different rows"
    missing, extra = (
        inline_code(english.text) - inline_code(spanish.text),
        inline_code(spanish.text) - inline_code(english.text),
    )
    assert (missing, extra) == (set(), set()), "inline code differs"


def test_both_readmes_cover_what_a_spanish_speaking_operator_asked_for() -> None:
    for path in (README, README_ES):
        text = path.read_text(encoding="utf-8")
        for needle in ("outcome", "hash_key", "PORT=", "SIM_PORT=", "--csv", "service_hours", "retry = false"):
            assert needle in text, f"{path.name} does not mention {needle}"


def test_the_readmes_agree_on_retry_false() -> None:
    """With retry = false: 503/502 for the sender to retry, and error 2 is a 409 whose lead is kept failed."""
    for path, kept_failed in (
        (README, "that lead is kept as `failed`"),
        (README_ES, "ese prospecto queda guardado como `failed`"),
    ):
        text = path.read_text(encoding="utf-8")
        paragraph = text[text.index("`retry = false`", text.index("[routes.zapier]")) :].split("\n\n")[0]
        for word in ("503\n`formcall_unavailable`", "502 `origination_failed`", "409 `out_of_service_hours`"):
            assert word.replace("\n", " ") in paragraph.replace("\n", " "), (path.name, word)
        assert kept_failed in paragraph.replace("\n", " "), path.name
    spanish = README_ES.read_text(encoding="utf-8")
    assert "no guarda el prospecto cuando FormCall falla" not in spanish  # what README.es.md once said


def test_the_parity_check_catches_a_missing_fact(tmp_path: Path) -> None:
    """The comparison above fails when a Spanish section lacks a fact of the English one."""
    english = next(s for s in sections(README) if s.title == "Two commands")
    spanish = next(s for s in sections(README_ES) if s.title == "Dos comandos")
    assert inline_code(english.text) - inline_code(spanish.text.replace("`SIM_PORT`", "el otro")) == {"SIM_PORT"}
    assert code_blocks(spanish.text.replace("make test", "make tests")) != code_blocks(english.text)
