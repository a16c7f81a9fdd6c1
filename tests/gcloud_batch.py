"""gcloud offline, for the tests that put command lines through its argument parser.

With an empty CLOUDSDK_CONFIG and no account, gcloud checks a command's flags and then stops with
"You do not currently have an active account". A gcloud process spends about a second loading its
command tree before it reads its arguments: 140 command lines, one process each, are over two minutes
of CPU. So `run_batch` starts one process (or one per core) that does what the `gcloud` launcher does
(the SDK's `lib/gcloud.py`: its own directories first on sys.path, its vendored `google` package, then
`gcloud_main.main()`), but builds the command tree once and calls `gcloud_main.main()` once per command
line, each with its own `sys.argv`, its own output and its own exit code. `run_offline` is one command
through the launcher itself; tests/test_gcloud_args.py checks the two refuse the same bad lines.

This file is also that process's script (`python gcloud_batch.py SDK_LIB COMMANDS.json RESULTS.json`, run
with the Python the launcher would use), so it imports nothing beyond the standard library.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

GCLOUD = shutil.which("gcloud")
ROOT = Path(__file__).resolve().parent.parent
NO_ACCOUNT = "You do not currently have an active account"
Result = tuple[list[str], int, str]  # the command line, its exit code, its output (stdout then stderr)


def offline_env(config: str) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", ""),
        "HOME": config,
        "CLOUDSDK_CONFIG": config,
        "CLOUDSDK_CORE_DISABLE_PROMPTS": "1",
        "CLOUDSDK_COMPONENT_MANAGER_DISABLE_UPDATE_CHECK": "1",
        "CLOUDSDK_CORE_DISABLE_USAGE_REPORTING": "1",
    }


def run_offline(words: list[str]) -> Result:
    """One command through the `gcloud` launcher itself, as a shell runs it."""
    assert GCLOUD is not None
    with tempfile.TemporaryDirectory(prefix="gcloud-config-") as config:
        result = _offline_run([GCLOUD, *words[1:]], config, timeout=60)
    return words, result.returncode, result.stdout + result.stderr


def _offline_run(argv: list[str], config: str, timeout: float) -> subprocess.CompletedProcess[str]:
    """A process run as the offline checks run gcloud: an empty config folder, no input, from the repo."""
    return subprocess.run(
        argv,
        capture_output=True,
        text=True,
        env=offline_env(config),
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        timeout=timeout,
        check=False,
    )


def sdk_lib_and_python() -> tuple[Path, str] | None:
    """The SDK's lib/ and the Python its launcher picks (CLOUDSDK_PYTHON, else the bundled one), if laid out so."""
    assert GCLOUD is not None
    root = Path(os.path.realpath(GCLOUD)).parent.parent
    if not (root / "lib" / "gcloud.py").is_file() or not (root / "lib" / "googlecloudsdk").is_dir():
        return None
    bundled = root / "platform" / "bundledpythonunix" / "bin" / "python3"
    python = os.environ.get("CLOUDSDK_PYTHON") or (str(bundled) if bundled.is_file() else shutil.which("python3"))
    return (root / "lib", python) if python else None


def run_batch(commands: list[list[str]], processes: int = 1) -> list[Result]:
    """Each command line's result, in order, from `processes` gcloud processes sharing the lines out (one
    process per command through the launcher where the SDK is not laid out as this expects)."""
    if len(commands) > 1 and processes > 1:
        with ThreadPoolExecutor(processes) as pool:
            shares = list(pool.map(run_batch, [commands[i::processes] for i in range(processes)]))
        results: list[Result] = [None] * len(commands)  # type: ignore[list-item]
        for i, share in enumerate(shares):
            results[i::processes] = share
        return results
    found = sdk_lib_and_python()
    if found is None:
        return [run_offline(words) for words in commands]
    lib, python = found
    with tempfile.TemporaryDirectory(prefix="gcloud-config-") as config:
        todo, done = Path(config, "commands.json"), Path(config, "results.json")
        todo.write_text(json.dumps(commands), encoding="utf-8")
        result = _offline_run([python, __file__, str(lib), str(todo), str(done)], config, timeout=300)
        assert result.returncode == 0, result.stdout + result.stderr
        answers = json.loads(done.read_text(encoding="utf-8"))
    assert [answer["words"] for answer in answers] == commands
    return [(answer["words"], answer["code"], answer["output"]) for answer in answers]


# -- the batch process itself (gcloud's interpreter) --


@contextlib.contextmanager
def captured() -> Iterator[list[str]]:
    """Descriptors 1 and 2 into a temp file for the block (gcloud's logger holds the stream, not the name)."""
    out: list[str] = []
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace") as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            yield out
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
            sink.seek(0)
            out.append(sink.read())


def main() -> None:
    lib, commands_path, results_path = sys.argv[1:4]
    with open(commands_path, encoding="utf-8") as f:
        commands: list[list[str]] = json.load(f)
    sys.argv = [os.path.join(lib, "gcloud.py")]
    sys.path[0] = lib  # the launcher's own directory, where this script's (tests/) was
    launcher: Any = importlib.import_module("gcloud")  # the SDK's lib/gcloud.py: sys.path as the launcher sets it
    sys.path = launcher.reorder_sys_path(sys.path)
    launcher._fix_google_module()
    gcloud_main: Any = launcher._import_gcloud_main()
    cli = gcloud_main.CreateCLI([])
    answers: list[dict[str, Any]] = []
    for words in commands:
        assert words[0] == "gcloud", words
        sys.argv = [sys.argv[0], *words[1:]]
        code: Any = 0
        with captured() as output:
            try:
                gcloud_main.main(gcloud_cli=cli)
            except SystemExit as stop:
                code = stop.code
        answers.append({"words": words, "code": code if isinstance(code, int) else 1, "output": output[0]})
    with open(results_path, "w", encoding="utf-8") as f:
        json.dump(answers, f)


if __name__ == "__main__":
    main()
