"""The package stays layered with no import cycles (layout.md's dependency rule), read from the source
with `ast`, so a change that breaks the rule fails here rather than in a review."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from formcall_webhook.simulator import Simulator

PACKAGE = Path(__file__).resolve().parent.parent / "formcall_webhook"
NAME = "formcall_webhook"
# Pure modules: no I/O; they import only errors and each other (plus the standard library).
PURE = {"errors", "parsing", "phones", "templates", "states", "consent", "records", "outcomes", "answers",
        "signing", "figures", "report", "attribution", "keys", "settle", "conversions"}  # fmt: skip
# Families behind one small interface: they import only errors and their own members.
FAMILIES = {"senders", "stores", "clients"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, *, top_level_only: bool) -> set[str]:
    """The package modules `path` imports (resolved), at module level only when asked."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            if target.startswith(NAME):
                found.add(target)
                found.update(f"{target}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith(NAME))
    modules = {module_name(p) for p in PACKAGE.rglob("*.py")}
    return {m for m in found if m in modules}


def graph(top_level_only: bool) -> dict[str, set[str]]:
    return {module_name(p): imports(p, top_level_only=top_level_only) for p in PACKAGE.rglob("*.py")}


def test_no_import_cycles() -> None:
    assert find_cycle(graph(top_level_only=True)) == ""


def test_no_lazy_upward_import() -> None:
    """An import inside a function counts too: a lazy import that points back up the layers (followup ->
    runtime -> sweep -> followup was one) is a cycle that merely waits for its first call."""
    assert find_cycle(graph(top_level_only=False)) == ""


def test_the_cycle_finder_sees_a_lazy_import() -> None:
    edges = {"formcall_webhook.upper": {"formcall_webhook.lower"}, "formcall_webhook.lower": set()}
    assert find_cycle(edges) == ""
    edges["formcall_webhook.lower"] = {"formcall_webhook.upper"}
    assert find_cycle(edges) != ""


def find_cycle(edges: dict[str, set[str]]) -> str:
    state: dict[str, int] = {}
    cycle: list[str] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(edges.get(node, ())):
            if nxt == node or nxt == node.rpartition(".")[0]:
                continue  # a package's __init__ and its own members
            if state.get(nxt) == 1 and not cycle:
                cycle.extend([*path, nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for module in sorted(edges):
        if module not in state:
            visit(module, [module])
    return " -> ".join(cycle)


def test_pure_modules_and_families_keep_to_their_layer() -> None:
    problems = []
    for module, targets in graph(top_level_only=False).items():
        short = module.removeprefix(NAME + ".")
        family = short.split(".")[0]
        if short in PURE:
            allowed = {f"{NAME}.{p}" for p in PURE}
        elif family in FAMILIES:
            allowed = {f"{NAME}.errors", f"{NAME}.signing", f"{NAME}.{family}"}
        else:
            continue
        for target in targets:
            if not any(target == a or target.startswith(a + ".") for a in allowed):
                problems.append(f"{module} imports {target}")
    assert problems == []


# The webhook's first request, in the process `import main` loaded, a submission the simulator places;
# then memory://'s self-sweep thread, which the first request starts and which is there at once.
FIRST_REQUEST = """
import threading, time, flask
body = {"telefono": "+56 9 6123 4567", "nombre": "Ana"}
with flask.Flask("probe").test_request_context("/", method="POST", json=body):
    answer = main.formcall_webhook(flask.request)
    assert answer.status_code == 200 and b'"uuid"' in answer.get_data(), answer.get_data()
deadline = time.monotonic() + 30
while not any(t.name == "formcall-self-sweep" for t in threading.enumerate()):
    assert time.monotonic() < deadline, "no self-sweep thread"
    time.sleep(0.01)
"""


def loaded_at_cold_start(*modules: str, then: str = "", environ: dict[str, str] | None = None) -> list[str]:
    """Which of `modules` `import main` loads (and the code `then` after it), zero-config with memory://
    and no secret references (and `environ`); the self-sweep waits an hour."""
    code = f"import sys, main\n{then}\nprint('loaded:' + ','.join(m for m in {modules!r} if m in sys.modules))\n"
    env = {"FORMCALL_POPUP_UUID": "e5c98214-d0f6-11e1-8c30-001d09ef4a24", "PATH": "/usr/bin:/bin",
           "FORMCALL_SWEEP_SECONDS": "3600", **(environ or {})}  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=PACKAGE.parent, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stdout.splitlines() if line.startswith("loaded:")]
    assert len(lines) == 1, done.stdout
    return [m for m in lines[0].removeprefix("loaded:").split(",") if m]


def test_cold_start_with_memory_imports_no_heavy_client() -> None:
    """memory:// never loads the Firestore or Redis clients, nor Secret Manager without secret: refs."""
    assert loaded_at_cold_start("google.cloud.firestore", "redis", "google.cloud.secretmanager", "holidays") == []


# What a cold start (`import main`, then a first submission, placed) leaves to its first use: the sweeper
# and the outcome work, lost answers, Meta's Graph API, the CLI and reports, the other stores, the sandbox
# of templates with Jinja syntax, holidays and zone data.
_LATE_MODULES = ("sweep", "followup", "outcomes", "failed_report", "unread", "conversions", "conversion_work",
                 "settle", "config_policies", "report", "figures", "cli", "simulator", "clients.hubspot",
                 "clients.meta_graph", "clients.outgoing", "clients.conversions", "stores.firestore",
                 "stores.redis", "stores.sqlite")  # fmt: skip
LATE = (*(f"formcall_webhook.{name}" for name in _LATE_MODULES),
        "jinja2.sandbox", "holidays", "zoneinfo", "concurrent.futures", "redis", "google.cloud.firestore",
        "google.cloud.secretmanager")  # fmt: skip


def test_cold_start_loads_none_of_what_a_request_does_not_need() -> None:
    assert loaded_at_cold_start(*LATE) == []
    assert loaded_at_cold_start("formcall_webhook.app") == ["formcall_webhook.app"]  # the probe sees a load


def test_the_first_submission_loads_none_of_it(simulator: Simulator) -> None:
    """Nor does the first submission, placed: memory://'s self-sweep starts on it, and its thread loads the
    sweeper after its first wait, never while the first requests of a cold start are answered."""
    environ = {"FORMCALL_API_URL": simulator.api_url, "FORMCALL_SECURITY_TOKEN": "dev-token"}
    assert loaded_at_cold_start(*LATE, then=FIRST_REQUEST, environ=environ) == []
    loaded = loaded_at_cold_start("formcall_webhook.self_sweep", "flask.testing", then=FIRST_REQUEST, environ=environ)
    assert loaded == ["formcall_webhook.self_sweep", "flask.testing"]  # the probe sees the request's loads


@pytest.mark.parametrize("config", ["", "[routes.default]\npopup_uuid = 1\n"], ids=["zero-config", "broken-config"])
def test_import_main_leaves_the_collector_on_and_what_it_built_frozen(config: str, tmp_path: Path) -> None:
    """main.py loads with the collector off and freezes what it built before gunicorn forks (Python's gc docs,
    for a pre-fork server); whatever the config says, the collector is on again once main is loaded."""
    environ = {"FORMCALL_POPUP_UUID": "e5c98214-d0f6-11e1-8c30-001d09ef4a24", "PATH": "/usr/bin:/bin"}
    if config:
        (tmp_path / "formcall.toml").write_text(config, encoding="utf-8")
        environ["FORMCALL_CONFIG"] = str(tmp_path / "formcall.toml")
    code = "import gc, main\nprint(gc.isenabled(), gc.get_freeze_count(), main.app.runtime is not None)\n"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=PACKAGE.parent, env=environ, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    enabled, frozen, loaded = done.stdout.split()
    assert (enabled, loaded) == ("True", "True")
    assert int(frozen) > 10_000  # phonenumbers' metadata and the package's classes, at least
