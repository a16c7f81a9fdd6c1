#!/usr/bin/env bash
# Static checks of the deploy tooling, as nothing here can run gcloud or terraform for real:
#   - ShellCheck on infra/deploy.sh, this script and .ci/run
#   - checkov on the Terraform module and its examples (a failing check needs a fix or an inline
#     `#checkov:skip=CKV_...:reason` on the resource)
# Exits non-zero when any of them fails. Installs what is missing: shellcheck from apt (as root),
# checkov into its own virtual environment .venv-checkov (its pins clash with the project's).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

CHECKOV_VERSION=3.3.30
CHECKOV_VENV=.venv-checkov
PYTHON=${PYTHON:-python3}

say() { printf '== %s\n' "$*"; }

if ! command -v shellcheck >/dev/null 2>&1; then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
    say "installing shellcheck (apt)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends shellcheck >/dev/null
  else
    printf 'check.sh: shellcheck is not installed; install it (apt-get install shellcheck, brew install shellcheck) and run again\n' >&2
    exit 1
  fi
fi

if [[ ! -x $CHECKOV_VENV/bin/checkov ]] || ! "$CHECKOV_VENV/bin/checkov" --version 2>/dev/null | grep -qx "$CHECKOV_VERSION"; then
  say "installing checkov $CHECKOV_VERSION into $CHECKOV_VENV"
  "$PYTHON" -m venv "$CHECKOV_VENV"
  # Keeps git, ruff and friends from looking inside (Python 3.13's venv writes the same file).
  printf '*\n' >"$CHECKOV_VENV/.gitignore"
  "$CHECKOV_VENV/bin/python" -m pip install --quiet --disable-pip-version-check "checkov==$CHECKOV_VERSION"
fi

failed=0

say "shellcheck $(shellcheck --version | sed -n 's/^version: //p')"
if shellcheck infra/deploy.sh infra/check.sh .ci/run; then
  echo "shellcheck: no findings"
else
  failed=1
fi

# --skip-download: no network calls to Prisma Cloud (guidelines, severities); the checks are local.
checkov_args=(--framework terraform --quiet --compact --skip-download)
# The module with its examples (each example calls it, so checkov evaluates it as they set it up),
# then each example on its own, as a user's root module would be scanned.
examples=()
for dir in infra/terraform/examples/*/; do
  examples+=(-d "${dir%/}")
done
say "checkov $CHECKOV_VERSION: infra/terraform"
"$CHECKOV_VENV/bin/checkov" -d infra/terraform "${checkov_args[@]}" || failed=1
say "checkov $CHECKOV_VERSION: ${examples[*]}"
"$CHECKOV_VENV/bin/checkov" "${examples[@]}" "${checkov_args[@]}" || failed=1

if ((failed)); then
  say "FAILED"
  exit 1
fi
say "all static checks passed"
