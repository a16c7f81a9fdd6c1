"""Run many gcloud command lines in one gcloud process: `python gcloud_batch.py SDK_LIB COMMANDS.json RESULTS.json`.

A gcloud process spends about a second loading its command tree before it reads its arguments; 120
commands one process each are two minutes of CPU. This does what the `gcloud` launcher does
(`lib/gcloud.py`: the SDK's own directories first on sys.path, its vendored `google` package, then
`gcloud_main.main()`), but builds the command tree once and calls `gcloud_main.main()` once per command
line, each with its own `sys.argv`, its own output file and its own exit code. Run it with the Python
the launcher would use. No test imports it: it runs in gcloud's interpreter, not the suite's.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import sys
import tempfile
from collections.abc import Iterator
from typing import Any


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
    sys.path.insert(0, lib)
    launcher: Any = importlib.import_module("gcloud")  # the SDK's lib/gcloud.py: sys.path as the launcher sets it
    sys.path = launcher.reorder_sys_path(sys.path)
    launcher._fix_google_module()
    gcloud_main: Any = launcher._import_gcloud_main()
    cli = gcloud_main.CreateCLI([])
    results: list[dict[str, Any]] = []
    for words in commands:
        assert words[0] == "gcloud", words
        sys.argv = [sys.argv[0], *words[1:]]
        code: Any = 0
        with captured() as output:
            try:
                gcloud_main.main(gcloud_cli=cli)
            except SystemExit as stop:
                code = stop.code
        results.append({"words": words, "code": code if isinstance(code, int) else 1, "output": output[0]})
    with open(results_path, "w", encoding="utf-8") as f:
        json.dump(results, f)


if __name__ == "__main__":
    main()
