"""`python -m formcall_webhook`: the commands live in formcall_webhook/cli/."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
