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

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.gcloud_batch import GCLOUD, NO_ACCOUNT, run_batch

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


# -- the guides' commands: deploy.sh --dry-run accepts them with the config the guide builds --

GUIDES = sorted(
    {README, README_ES, *(ROOT / "docs").rglob("*.md"), ROOT / "examples" / "landing" / "README.md"},
)
DEPLOY_BLOCK = re.compile(r"(?:<!-- deploy(?:: (?P<base>\S+))? -->\n)?```sh\n(?P<sh>.*?)```", re.DOTALL)
TOML_BLOCK = re.compile(r"```toml\n(.*?)```", re.DOTALL)


@dataclass
class DeployCommand:
    guide: str
    args: list[str]
    config: dict[str, Any] | None  # None: zero-config


def merged(into: dict[str, Any], more: dict[str, Any]) -> dict[str, Any]:
    for key, value in more.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            merged(into[key], value)
        else:
            into[key] = value
    return into


def guide_config(text: str, end: int, base: str | None) -> dict[str, Any] | None:
    """The base file, then the TOML blocks of the guide's opening (before its first `##`) and of the
    deploy's own section up to the command; a block of bare keys goes into the first route ("in the
    route: captcha = ...")."""
    config: dict[str, Any] = tomllib.loads((ROOT / base).read_text(encoding="utf-8")) if base else {}
    opening = text.find("\n## ")
    section = text.rfind("\n## ", 0, end)
    spans = [(0, opening if opening >= 0 else end), (max(section, 0), end)]
    blocks = [m[1] for start, stop in dict.fromkeys(spans) for m in TOML_BLOCK.finditer(text, start, stop)]
    for block in blocks:
        snippet = tomllib.loads(block)
        if any(line.startswith("[") for line in block.splitlines()):
            merged(config, snippet)
        else:
            first = next(iter(config["routes"]))
            merged(config["routes"][first], snippet)
    return config or None


def sh_lines(block: str) -> list[str]:
    return [line for line in block.replace("\\\n", " ").splitlines() if line.strip()]


def deploy_commands() -> list[DeployCommand]:
    found = []
    for path in GUIDES:
        text = path.read_text(encoding="utf-8")
        name = str(path.relative_to(ROOT))
        for match in DEPLOY_BLOCK.finditer(text):
            lines = [line for line in sh_lines(match["sh"]) if line.startswith("infra/deploy.sh")]
            if not lines:
                continue
            marked = match[0].startswith("<!--")
            # The READMEs' first deploy is zero-config; a guide says which config its deploy is for.
            assert marked or path in (README, README_ES), f"{name}: mark the deploy block with <!-- deploy: ... -->"
            config = guide_config(text, match.start(), match["base"]) if marked else None
            found += [DeployCommand(name, shlex.split(line, comments=True)[1:], config) for line in lines]
    return found


def toml_text(table: dict[str, Any], prefix: str = "") -> str:
    """A small TOML writer, enough for configs: tables, strings, numbers, booleans and lists of them."""
    scalars = [
        f"{key} = {json.dumps(value, ensure_ascii=False)}"
        for key, value in table.items()
        if not isinstance(value, dict)
    ]
    out = (f"[{prefix}]\n" if prefix and scalars else "") + "".join(line + "\n" for line in scalars)
    for key, value in table.items():
        if isinstance(value, dict):
            out += "\n" + toml_text(value, f"{prefix}.{json.dumps(key)}" if prefix else json.dumps(key))
    return out


@pytest.fixture
def sandbox(tmp_path: Path) -> Path:
    """The repository, so that a test's formcall.toml sits where deploy.sh and `check` look for it: the
    package is copied (it finds the file beside itself, symlinks resolved), the rest linked."""
    for entry in ROOT.iterdir():
        if entry.name == "formcall_webhook":
            shutil.copytree(entry, tmp_path / entry.name, ignore=shutil.ignore_patterns("__pycache__"))
        elif entry.name not in (".git", "formcall.toml"):
            (tmp_path / entry.name).symlink_to(entry)
    return tmp_path


def dry_run(sandbox: Path, args: list[str], config: dict[str, Any] | None) -> subprocess.CompletedProcess[str]:
    if config is not None:
        (sandbox / "formcall.toml").write_text(toml_text(config), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FORMCALL_", "COVERAGE_"))}
    for name in ("PROJECT", "REGION", "CONFIG", "PYTHON"):
        env.pop(name, None)
    if "--dry-run" not in args:
        args = [*args, "--dry-run"]
    return subprocess.run(
        ["bash", str(sandbox / "infra" / "deploy.sh"), *args, "--python", sys.executable],
        capture_output=True,
        text=True,
        env=env,
        cwd=sandbox,
        stdin=subprocess.DEVNULL,
        timeout=120,
        check=False,
    )


COMMANDS = deploy_commands()


def test_the_guides_deploy_with_deploy_sh() -> None:
    guides = {command.guide for command in COMMANDS}
    for guide in ("README.md", "README.es.md", "docs/senders/README.md", "docs/senders/hubspot.md"):
        assert guide in guides, guide
    assert {"docs/senders/zapier.md", "docs/landing-page.md", "examples/landing/README.md"} <= guides
    # Each deploy is tried with what its guide adds to the route.
    configs = {c.guide: c.config for c in COMMANDS if c.config}
    assert configs["docs/senders/hubspot.md"]["routes"]["hubspot"]["outcome"]["hubspot"]["token"] == "env:HUBSPOT_TOKEN"
    assert configs["docs/senders/zapier.md"]["routes"]["zapier"]["outcome"]["url"].startswith("https://hooks.zapier")
    assert configs["docs/landing-page.md"]["routes"]["default"]["captcha"]["secret"] == "env:TURNSTILE_SECRET"
    assert configs["examples/landing/README.md"]["routes"]["default"]["captcha"]["provider"] == "turnstile"


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: f"{c.guide}:{' '.join(c.args)[:60]}")
def test_each_guides_deploy_is_accepted_by_a_dry_run(sandbox: Path, command: DeployCommand) -> None:
    result = dry_run(sandbox, command.args, command.config)
    assert result.returncode == 0, result.stderr
    deploys = [line for line in result.stdout.splitlines() if line.startswith("gcloud functions deploy")]
    assert deploys, result.stdout
    secrets = [
        arg.split("=", 1)[0] for flag, arg in zip(command.args, command.args[1:], strict=False) if flag == "--secret"
    ]
    for line in deploys:
        for env_name in secrets:
            assert f"{env_name}=" in line.split("--set-secrets", 1)[1], (env_name, line)


def test_a_reference_to_a_made_up_secret_is_refused(sandbox: Path) -> None:
    """What the HubSpot guide used to say: a secret: reference in another project stops the deploy."""
    config = tomllib.loads((ROOT / "tests/samples/configs/hubspot.toml").read_text(encoding="utf-8"))
    config["routes"]["hubspot"]["outcome"] = {
        "hubspot": {"token": "secret:projects/acme/secrets/hubspot-token/versions/latest", "property": "p"}
    }
    secrets = ["--secret", "HUBSPOT_APP_SECRET=a", "--secret", "HUBSPOT_WEBHOOK_TOKEN=b"]
    result = dry_run(sandbox, ["--project", "acme-prod", "--popup-uuid", POPUP, *secrets], config)
    assert result.returncode == 1
    assert "a secret in project acme;" in result.stderr


def test_no_guide_hand_runs_set_secrets() -> None:
    """A hand-run --set-secrets is dropped by the next deploy.sh run, which sets exactly its own."""
    for path in GUIDES:
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"--set-secrets [A-Z_]+=", text), path
        assert "gcloud functions deploy ..." not in text, path


def gcloud_lines() -> list[tuple[str, list[str]]]:
    found = []
    for path in GUIDES:
        for block in re.findall(r"```sh\n(.*?)```", path.read_text(encoding="utf-8"), re.DOTALL):
            for line in sh_lines(block):
                for part in re.split(r" \| | && | \|\| ", line):
                    words = shlex.split(part, comments=True)
                    if words and words[0] == "gcloud":
                        found.append((str(path.relative_to(ROOT)), words))
    return found


GCLOUD_LINES = gcloud_lines()


@pytest.fixture(scope="module")
def gcloud_answers() -> dict[str, tuple[int, str]]:
    """Every guide's gcloud line through the real gcloud's parser, in one gcloud process (tests/gcloud_batch.py)
    with an empty configuration, as one shell would run them in turn."""
    unique = list({shlex.join(words): words for _, words in GCLOUD_LINES}.values())
    return {shlex.join(words): (code, output) for words, code, output in run_batch(unique)}


@pytest.mark.skipif(GCLOUD is None, reason="gcloud is not installed (Google Cloud SDK)")
@pytest.mark.parametrize(("guide", "words"), GCLOUD_LINES, ids=lambda v: " ".join(v)[:70] if isinstance(v, list) else v)
def test_each_guides_gcloud_command_parses(
    guide: str, words: list[str], gcloud_answers: dict[str, tuple[int, str]]
) -> None:
    """Through the real gcloud with an empty configuration: it may only stop for the missing account."""
    code, output = gcloud_answers[shlex.join(words)]
    assert code == 0 or NO_ACCOUNT in output, (guide, output[-2000:])


def test_the_example_configs_own_deploy_line_is_accepted(sandbox: Path) -> None:
    """examples/formcall.toml names the deploy that provides each of its secrets; a dry run agrees."""
    text = (ROOT / "examples" / "formcall.toml").read_text(encoding="utf-8")
    [line] = [line.lstrip("# ") for line in text.splitlines() if line.lstrip("# ").startswith("infra/deploy.sh")]
    result = dry_run(sandbox, shlex.split(line)[1:], tomllib.loads(text))
    assert result.returncode == 0, result.stderr
    # Without the hash key's secret, the same deploy makes it (spec 10): created when missing, never replaced.
    short = shlex.split(line.replace(" --secret FORMCALL_HASH_KEY=formcall-hash-key", ""))[1:]
    made = dry_run(sandbox, short, tomllib.loads(text))
    assert made.returncode == 0, made.stderr
    assert "gcloud secrets describe formcall-hash-key " in made.stdout
    assert "FORMCALL_HASH_KEY=formcall-hash-key:" in made.stdout


def anchors(path: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation but '-' and '_' dropped, spaces to '-'."""
    found = set()
    for section in sections(path):
        slug = re.sub(r"[^\w\- ]", "", section.title.lower().replace("`", "")).replace(" ", "-")
        found.add(slug)
    return found


def test_every_link_of_the_readmes_and_docs_leads_somewhere() -> None:
    """The move to docs/ kept every link: each relative link names a file, and each #anchor a heading."""
    for path in GUIDES:
        text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.DOTALL)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target):
                continue
            file, _, anchor = target.partition("#")
            linked = (path.parent / file).resolve() if file else path
            assert linked.exists(), f"{path.relative_to(ROOT)}: {target}"
            if anchor and linked.suffix == ".md":
                assert anchor in anchors(linked), f"{path.relative_to(ROOT)}: {target}"
