"""Render infra/monitoring's templates for gcloud, as Terraform's templatefile() renders them.

    python3 infra/monitoring/render.py OUTDIR webhook_service=formcall-webhook sweep_service=formcall-sweep \
        notification_channels='["projects/P/notificationChannels/1"]' scheduled_share=0.5 error_share=0.05

The files use ${name} placeholders and $${ for a literal ${ (both Terraform's and string.Template's
syntax), so the two deploy paths create exactly the same metrics, alert policies and dashboard.
Each rendered file is checked to be JSON. Standard library only: deploy.sh runs it before any install.
"""

from __future__ import annotations

import json
import string
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
NAMES = ("webhook_service", "sweep_service", "notification_channels", "scheduled_share", "error_share")


def render(text: str, values: dict[str, str]) -> str:
    return string.Template(text).substitute(values)


def main(argv: list[str]) -> int:
    if len(argv) < 1:
        print(__doc__, file=sys.stderr)
        return 2
    out = Path(argv[0])
    values = dict(arg.split("=", 1) for arg in argv[1:])
    missing = [name for name in NAMES if name not in values]
    if missing:
        print(f"render.py: missing {', '.join(missing)}", file=sys.stderr)
        return 2
    for source in sorted(HERE.glob("**/*.json")):
        target = out / source.relative_to(HERE)
        target.parent.mkdir(parents=True, exist_ok=True)
        text = render(source.read_text(encoding="utf-8"), values)
        json.loads(text)
        partial = target.with_suffix(".json.partial")
        partial.write_text(text, encoding="utf-8")
        partial.replace(target)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
