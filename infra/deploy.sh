#!/usr/bin/env bash
# Deploys formcall-webhook as a Cloud Functions (2nd gen) HTTP function with gcloud.
# Idempotent: everything it creates is looked up first, so running it again changes nothing that
# already exists; the function itself is redeployed with exactly the settings given here.
# `infra/deploy.sh --help` for the options; `--dry-run` prints the gcloud commands without running any.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

usage() {
  cat <<'EOF'
Usage: infra/deploy.sh --project PROJECT [options]

Deploys formcall-webhook (Cloud Functions 2nd gen, python312, entry point formcall_webhook) from the
repository root, with a dedicated runtime service account that may read only its own secrets.

Where and what:
  --project PROJECT        Google Cloud project id (or the PROJECT environment variable)
  --region REGION          region (or REGION; default southamerica-west1, Santiago)
  --function NAME          function name (default formcall-webhook)
  --service-account-name N runtime service account id (default formcall-webhook, giving
                           formcall-webhook@PROJECT.iam.gserviceaccount.com)
  --build-service-account EMAIL
                           service account Cloud Build uses to build the function (an email or
                           projects/P/serviceAccounts/EMAIL; default: the project's build account)

Secrets (Secret Manager, in PROJECT; values are never passed to this script):
  --token-secret NAME      secret holding the FormCall token (default formcall-token); created if
                           missing, but its value you add yourself:
                             gcloud secrets versions add formcall-token --data-file=-
  --token-version N        pin this version; default: the newest enabled version, resolved now
  --secret ENV=SECRET[:VERSION]
                           another secret, repeatable, e.g. --secret HUBSPOT_APP_SECRET=hubspot-app
                           or --secret ZAPIER_TOKEN=zapier-token:2. ENV may also be an absolute path
                           (a file mount, for `file:` references). VERSION defaults to the newest
                           enabled version, resolved and pinned now.

Function settings (environment of the deployed function):
  --popup-uuid UUID        FORMCALL_POPUP_UUID (zero-config, and routes without popup_uuid)
  --config FILE            the TOML config: checked here, deployed with the source, and named in
                           FORMCALL_CONFIG. It must be inside the repository and not excluded by
                           .gcloudignore. Without it: formcall.toml beside main.py if present, else
                           zero-config.
  --default-region CC      FORMCALL_DEFAULT_REGION (e.g. CL)
  --store-url URL          FORMCALL_STORE_URL: memory:// or redis://HOST:PORT/DB. A URL with a
                           password belongs in a secret: --secret FORMCALL_STORE_URL=SECRET
  --vpc-connector NAME     Serverless VPC Access connector, needed to reach Memorystore (redis://);
                           egress through it is limited to private ranges

Scaling and limits:
  --max-instances N        default 10     --min-instances N   default 0
  --concurrency N          default 16     --cpu N             default 1 when concurrency > 1
  --timeout SECONDS        default 30     --memory SIZE       default 256Mi

Who may call it:
  --public                 (default) anyone may send requests (--allow-unauthenticated). This is the
                           normal case: HubSpot, Zapier and browsers' form posts cannot send Google
                           identity tokens. The function protects public routes itself: per-route
                           auth (token, Basic, HubSpot and Standard Webhooks signatures), honeypot,
                           captcha, CORS and rate limits.
  --private                only callers with roles/run.invoker and a Google identity token
                           (--no-allow-unauthenticated), e.g. another Google Cloud service.

Other:
  --python PATH            Python used for the config check (default .venv/bin/python, else python3)
  --dry-run                print every gcloud command instead of running it; gcloud is never called
  -h, --help               this help

Exit status: 0 deployed (or printed), 1 a check or a gcloud command failed, 2 usage error.
EOF
}

usage_error() {
  printf 'deploy.sh: %s\n' "$*" >&2
  printf 'Run infra/deploy.sh --help for the options.\n' >&2
  exit 2
}

fail() {
  printf 'deploy.sh: %s\n' "$*" >&2
  exit 1
}

note() {
  printf '%s\n' "$*" >&2
}

# ---------------------------------------------------------------------------------------------------
# Options

PROJECT="${PROJECT:-}"
REGION="${REGION:-southamerica-west1}"
FUNCTION="formcall-webhook"
SA_NAME="formcall-webhook"
BUILD_SA=""
TOKEN_SECRET="formcall-token"
TOKEN_VERSION=""
EXTRA_SECRETS=()
POPUP_UUID=""
CONFIG="${CONFIG:-}"
DEFAULT_REGION=""
STORE_URL=""
VPC_CONNECTOR=""
# Caps the bill and FormCall's load: a flood of bot submissions cannot turn into more than
# max-instances x concurrency calls in flight, however fast it comes.
MAX_INSTANCES=10
# Scale to zero: a webhook tolerates a cold start (about a second), and idle instances cost money.
MIN_INSTANCES=0
# The function spends its time waiting on FormCall (I/O), so one instance serves many requests at
# once; 2nd gen allows more than one request per instance (1st gen did not).
CONCURRENCY=16
# 2nd gen requires at least 1 vCPU for concurrency > 1; set below when not given.
CPU=""
# FormCall's timeout (timeout_seconds, default 8 s) twice (one retry after a token refetch), plus
# Secret Manager and margin. Checked below against the config's timeout_seconds.
TIMEOUT=30
# The function holds a parsed config, a connection pool and small bodies (64 KiB at most).
MEMORY="256Mi"
PUBLIC=1
DRY_RUN=0
PYTHON="${PYTHON:-}"

# Options that take a value; both `--name value` and `--name=value` are accepted.
takes_value() {
  case $1 in
    --project | --region | --function | --service-account-name | --build-service-account | \
      --token-secret | --token-version | --secret | --popup-uuid | --config | --default-region | \
      --store-url | --vpc-connector | --max-instances | --min-instances | --concurrency | --cpu | \
      --timeout | --memory | --python)
      return 0
      ;;
  esac
  return 1
}

while (($# > 0)); do
  option=$1
  shift
  value=""
  if [[ $option == --*=* ]]; then
    value=${option#*=}
    option=${option%%=*}
    takes_value "$option" || usage_error "$option takes no value"
  elif takes_value "$option"; then
    (($# > 0)) || usage_error "$option needs a value"
    value=$1
    shift
  fi
  case $option in
    --project) PROJECT=$value ;;
    --region) REGION=$value ;;
    --function) FUNCTION=$value ;;
    --service-account-name) SA_NAME=$value ;;
    --build-service-account) BUILD_SA=$value ;;
    --token-secret) TOKEN_SECRET=$value ;;
    --token-version) TOKEN_VERSION=$value ;;
    --secret) EXTRA_SECRETS+=("$value") ;;
    --popup-uuid) POPUP_UUID=$value ;;
    --config) CONFIG=$value ;;
    --default-region) DEFAULT_REGION=$value ;;
    --store-url) STORE_URL=$value ;;
    --vpc-connector) VPC_CONNECTOR=$value ;;
    --max-instances) MAX_INSTANCES=$value ;;
    --min-instances) MIN_INSTANCES=$value ;;
    --concurrency) CONCURRENCY=$value ;;
    --cpu) CPU=$value ;;
    --timeout) TIMEOUT=${value%s} ;;
    --memory) MEMORY=$value ;;
    --python) PYTHON=$value ;;
    --public) PUBLIC=1 ;;
    --private) PUBLIC=0 ;;
    --dry-run) DRY_RUN=1 ;;
    -h | --help)
      usage
      exit 0
      ;;
    *) usage_error "unknown option: $option" ;;
  esac
done

# ---------------------------------------------------------------------------------------------------
# Validation: every mistake we can see here is a usage error (exit 2) before anything runs.

matches() { [[ $1 =~ $2 ]]; }
is_int() { matches "$1" '^(0|[1-9][0-9]{0,5})$'; }

[[ -n $PROJECT ]] || usage_error "--project (or PROJECT) is required"
matches "$PROJECT" '^[a-z][a-z0-9-]{4,28}[a-z0-9]$' || usage_error "--project: '$PROJECT' is not a project id"
[[ -n $REGION ]] || usage_error "--region must not be empty"
matches "$REGION" '^[a-z]+-[a-z]+[0-9]+$' || usage_error "--region: '$REGION' is not a region such as southamerica-west1"
matches "$FUNCTION" '^[a-z]([a-z0-9-]{0,47}[a-z0-9])?$' ||
  usage_error "--function: lower-case letters, digits and dashes, at most 49, starting with a letter"
matches "$SA_NAME" '^[a-z][a-z0-9-]{4,28}[a-z0-9]$' ||
  usage_error "--service-account-name: 6-30 lower-case letters, digits and dashes, starting with a letter"
SECRET_NAME_RE='^[A-Za-z0-9_-]{1,255}$'
VERSION_RE='^([1-9][0-9]*|latest)$'
matches "$TOKEN_SECRET" "$SECRET_NAME_RE" || usage_error "--token-secret: '$TOKEN_SECRET' is not a secret name"
[[ -z $TOKEN_VERSION ]] || matches "$TOKEN_VERSION" "$VERSION_RE" ||
  usage_error "--token-version: a version number such as 3"
[[ -z $POPUP_UUID ]] || matches "$POPUP_UUID" '^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$' ||
  usage_error "--popup-uuid: '$POPUP_UUID' is not a UUID"
[[ -z $DEFAULT_REGION ]] || matches "$DEFAULT_REGION" '^[A-Z]{2}$' ||
  usage_error "--default-region: a two-letter region code such as CL"
if [[ -n $STORE_URL ]]; then
  matches "$STORE_URL" '^(memory|redis|rediss)://' || usage_error "--store-url: memory:// or redis://HOST:PORT/DB"
  [[ $STORE_URL != *@* ]] ||
    usage_error "--store-url must not carry a password (it would be readable in the function's settings); store the URL in a secret and pass --secret FORMCALL_STORE_URL=SECRET"
  [[ $STORE_URL != *,* ]] || usage_error "--store-url must not contain a comma"
fi
[[ -z $VPC_CONNECTOR ]] || matches "$VPC_CONNECTOR" '^[a-z0-9/_-]+$' || usage_error "--vpc-connector: '$VPC_CONNECTOR' is not a connector name"
if [[ -n $BUILD_SA ]]; then
  # gcloud wants the full resource name; an email is accepted here and expanded.
  if matches "$BUILD_SA" '^[a-z0-9-]+@[a-z0-9.-]+\.gserviceaccount\.com$'; then
    BUILD_SA="projects/$PROJECT/serviceAccounts/$BUILD_SA"
  fi
  matches "$BUILD_SA" '^projects/[a-z0-9-]+/serviceAccounts/[a-z0-9-]+@[a-z0-9.-]+\.gserviceaccount\.com$' ||
    usage_error "--build-service-account: a service account email or projects/P/serviceAccounts/EMAIL"
fi

# Numbers are checked to be digits before any arithmetic sees them.
in_range() { is_int "$1" && (($1 >= $2 && $1 <= $3)); }
in_range "$MAX_INSTANCES" 1 1000 || usage_error "--max-instances: a whole number from 1 to 1000"
in_range "$MIN_INSTANCES" 0 "$MAX_INSTANCES" || usage_error "--min-instances: a whole number, at most --max-instances"
in_range "$CONCURRENCY" 1 1000 || usage_error "--concurrency: 1 to 1000"
in_range "$TIMEOUT" 1 3600 || usage_error "--timeout: 1 to 3600 seconds"
matches "$MEMORY" '^[0-9]+(k|M|G|Ki|Mi|Gi)$' || usage_error "--memory: a size such as 256Mi or 1Gi"
if [[ -n $CPU ]]; then
  matches "$CPU" '^([0-9]+|[0-9]*\.[0-9]+)$' || usage_error "--cpu: a number of vCPUs such as 1 or 0.5"
fi
if ((CONCURRENCY > 1)); then
  [[ -n $CPU ]] || CPU=1
  awk -v cpu="$CPU" 'BEGIN { exit !(cpu >= 1) }' ||
    usage_error "--cpu $CPU: 2nd gen needs at least 1 vCPU to serve more than one request per instance (--concurrency $CONCURRENCY)"
fi

# --secret ENV=SECRET[:VERSION], parsed into parallel arrays.
SECRET_TARGETS=()
SECRET_NAMES=()
SECRET_VERSIONS=()
for spec in "${EXTRA_SECRETS[@]+"${EXTRA_SECRETS[@]}"}"; do
  [[ $spec == *=* ]] || usage_error "--secret $spec: expected ENV=SECRET[:VERSION]"
  target=${spec%%=*}
  ref=${spec#*=}
  name=${ref%%:*}
  version=""
  [[ $ref != *:* ]] || version=${ref#*:}
  matches "$target" '^([A-Z_][A-Z0-9_]*|/[A-Za-z0-9_./-]+)$' ||
    usage_error "--secret $spec: '$target' is neither an environment variable name nor an absolute path"
  [[ $target != FORMCALL_SECURITY_TOKEN ]] || usage_error "--secret: the token is set with --token-secret and --token-version"
  matches "$name" "$SECRET_NAME_RE" || usage_error "--secret $spec: '$name' is not a secret name"
  [[ -z $version ]] || matches "$version" "$VERSION_RE" || usage_error "--secret $spec: '$version' is not a version number"
  for seen in "${SECRET_TARGETS[@]+"${SECRET_TARGETS[@]}"}"; do
    [[ $seen != "$target" ]] || usage_error "--secret: $target given twice"
  done
  SECRET_TARGETS+=("$target")
  SECRET_NAMES+=("$name")
  SECRET_VERSIONS+=("$version")
done

for target in "${SECRET_TARGETS[@]+"${SECRET_TARGETS[@]}"}"; do
  case $target in
    THREADS | FORMCALL_POPUP_UUID | FORMCALL_CONFIG | FORMCALL_DEFAULT_REGION)
      usage_error "--secret $target: that variable is set by this script's own options"
      ;;
    FORMCALL_STORE_URL)
      [[ -z $STORE_URL ]] || usage_error "--store-url and --secret FORMCALL_STORE_URL=...: give one"
      [[ -n $VPC_CONNECTOR ]] || note "warning: FORMCALL_STORE_URL from a secret without --vpc-connector: Memorystore is reachable only through a VPC connector"
      ;;
  esac
done
if [[ $STORE_URL == redis* && -z $VPC_CONNECTOR ]]; then
  note "warning: --store-url $STORE_URL without --vpc-connector: Memorystore is reachable only through a VPC connector"
fi

SA_EMAIL="$SA_NAME@$PROJECT.iam.gserviceaccount.com"

# The caller's relative --config path, made absolute before we change directory.
if [[ -n $CONFIG && -e $CONFIG ]]; then
  CONFIG="$(cd "$(dirname "$CONFIG")" && pwd)/$(basename "$CONFIG")"
fi
cd "$ROOT"

if [[ -z $PYTHON ]]; then
  if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi

# ---------------------------------------------------------------------------------------------------
# The config check, as the deployed function will see it: only the variables this deploy sets.

# Relative path of the config inside the upload, for FORMCALL_CONFIG ("" when not given).
CONFIG_IN_SOURCE=""

gcloudignored() {
  local rel=$1 line pattern part parts
  [[ -f .gcloudignore ]] || return 1
  while IFS= read -r line || [[ -n $line ]]; do
    [[ -n $line && $line != \#* && $line != \!* ]] || continue
    pattern=${line%/}
    pattern=${pattern#/}
    # Glob matching is the point here: .gcloudignore lines are patterns.
    # shellcheck disable=SC2053
    if [[ $rel == $pattern || $rel == $pattern/* ]]; then return 0; fi
    if [[ $pattern != */* ]]; then
      IFS=/ read -r -a parts <<<"$rel"
      for part in "${parts[@]}"; do
        # shellcheck disable=SC2053
        if [[ $part == $pattern ]]; then return 0; fi
      done
    fi
  done <.gcloudignore
  return 1
}

check_env=(env)
while IFS= read -r name; do
  check_env+=(-u "$name")
done < <(compgen -e | grep '^FORMCALL_' || true)
# The token comes from --set-secrets at run time; naming its secret here keeps the check from
# warning that no token is configured (nothing is fetched).
check_env+=("FORMCALL_SECURITY_TOKEN_SECRET=projects/$PROJECT/secrets/$TOKEN_SECRET/versions/${TOKEN_VERSION:-latest}")
[[ -z $POPUP_UUID ]] || check_env+=("FORMCALL_POPUP_UUID=$POPUP_UUID")
[[ -z $DEFAULT_REGION ]] || check_env+=("FORMCALL_DEFAULT_REGION=$DEFAULT_REGION")
[[ -z $STORE_URL ]] || check_env+=("FORMCALL_STORE_URL=$STORE_URL")

note "Checking the config: $PYTHON -m formcall_webhook check ${CONFIG:-(default)}"
check_args=(-m formcall_webhook check)
[[ -z $CONFIG ]] || check_args+=("$CONFIG")
if ! "${check_env[@]}" "$PYTHON" "${check_args[@]}" >&2; then
  fail "the config check failed; nothing was deployed"
fi

if [[ -n $CONFIG ]]; then
  case $CONFIG in
    "$ROOT"/*) CONFIG_IN_SOURCE=${CONFIG#"$ROOT"/} ;;
    *) fail "--config $CONFIG is outside $ROOT: the function can only read files deployed with its source" ;;
  esac
  if gcloudignored "$CONFIG_IN_SOURCE"; then
    fail "--config $CONFIG_IN_SOURCE is excluded by .gcloudignore, so it would not be uploaded; copy it to formcall.toml (or another kept path)"
  fi
  [[ $CONFIG_IN_SOURCE != *,* ]] || fail "--config: the path must not contain a comma"
fi

# The function's own timeout must outlast FormCall's, twice (a refused token is refetched and the
# call retried once), plus a few seconds for Secret Manager.
# Read with tomllib alone (no package import: fast); 8 is the package's default.
timeout_file=$CONFIG
[[ -n $timeout_file || ! -f formcall.toml ]] || timeout_file=formcall.toml
formcall_timeout=8
if [[ -n $timeout_file ]]; then
  formcall_timeout=$(
    "$PYTHON" -c '
import sys, tomllib
with open(sys.argv[1], "rb") as handle:
    print(tomllib.load(handle).get("formcall", {}).get("timeout_seconds", 8))
' "$timeout_file"
  ) || fail "could not read timeout_seconds from $timeout_file"
fi
if ! awk -v f="$TIMEOUT" -v t="$formcall_timeout" 'BEGIN { exit !(f >= 2 * t + 5) }'; then
  usage_error "--timeout ${TIMEOUT}s is too short for FormCall's timeout_seconds = $formcall_timeout: give at least 2 x $formcall_timeout + 5 s"
fi

if [[ -d .venv-checkov ]] && ! gcloudignored .venv-checkov; then
  note "warning: .venv-checkov/ is not in .gcloudignore and would be uploaded with the source; add it there"
fi

# ---------------------------------------------------------------------------------------------------
# gcloud, or its printout in --dry-run.

# A word as the shell would need it: plain when safe, else single-quoted (an --option= prefix stays
# outside the quotes, as a person would write it).
quote() {
  local word=$1 prefix=""
  if [[ $word =~ ^[A-Za-z0-9_@%+=:,./-]+$ ]]; then
    printf '%s' "$word"
    return
  fi
  if [[ $word =~ ^(--[a-z-]+=)(.*)$ ]]; then
    prefix=${BASH_REMATCH[1]}
    word=${BASH_REMATCH[2]}
  fi
  printf "%s'%s'" "$prefix" "${word//\'/\'\\\'\'}"
}

show() {
  local out="" word
  for word in "$@"; do
    out+="$(quote "$word") "
  done
  printf '%s\n' "${out% }"
}

run() {
  if ((DRY_RUN)); then
    show "$@"
  else
    note "+ $(show "$@")"
    "$@"
  fi
}

# ensure DESCRIBE... -- CREATE...: create only when describe says it is missing.
ensure() {
  local describe=() create=()
  while [[ $1 != -- ]]; do
    describe+=("$1")
    shift
  done
  shift
  create=("$@")
  if ((DRY_RUN)); then
    printf '%s >/dev/null 2>&1 || %s\n' "$(show "${describe[@]}")" "$(show "${create[@]}")"
  elif "${describe[@]}" >/dev/null 2>&1; then
    note "exists: $(show "${describe[@]:0:4}")"
  else
    run "${create[@]}"
  fi
}

comment() {
  if ((DRY_RUN)); then printf '# %s\n' "$*"; else note "== $*"; fi
}

# PINNED: the version a secret is pinned to, resolved from "" or "latest" to a number.
# Pinned because a function that reads "latest" would silently change the token it uses at its next
# cold start after someone adds a version; pinned, a rotation takes effect when you redeploy (and
# rolls back by redeploying the previous version).
pin_version() {
  local secret=$1 version=$2 found
  if [[ -n $version && $version != latest ]]; then
    if ((DRY_RUN)); then
      show gcloud secrets versions describe "$version" --secret "$secret" --project "$PROJECT" --format='value(state)'
    else
      found=$(gcloud secrets versions describe "$version" --secret "$secret" --project "$PROJECT" --format='value(state)') ||
        fail "secret $secret has no version $version"
      [[ $found == ENABLED ]] || fail "secret $secret version $version is $found, not ENABLED"
    fi
    PINNED=$version
    return
  fi
  local list=(gcloud secrets versions list "$secret" --project "$PROJECT" --filter=state:ENABLED
    --sort-by=~createTime --limit=1 --format='value(name)')
  if ((DRY_RUN)); then
    printf '# %s: pinned to the newest enabled version, the one this prints:\n' "$secret"
    show "${list[@]}"
    PINNED="<newest-enabled-version-of-$secret>"
    return
  fi
  found=$("${list[@]}")
  found=${found##*/}
  if [[ -z $found ]]; then
    note "Secret $secret has no enabled version. Add its value (from a file or the terminal, never a flag):"
    note "  gcloud secrets versions add $secret --project $PROJECT --data-file=-"
    note "then run this again."
    exit 1
  fi
  PINNED=$found
}

if ((!DRY_RUN)) && ! command -v gcloud >/dev/null 2>&1; then
  fail "gcloud is not installed (https://cloud.google.com/sdk); --dry-run prints the commands without it"
fi

comment "formcall-webhook -> $FUNCTION in $PROJECT/$REGION"

comment "APIs (enabling an enabled API changes nothing)"
apis=(cloudfunctions.googleapis.com run.googleapis.com cloudbuild.googleapis.com
  artifactregistry.googleapis.com secretmanager.googleapis.com iam.googleapis.com)
[[ -z $VPC_CONNECTOR ]] || apis+=(vpcaccess.googleapis.com)
run gcloud services enable "${apis[@]}" --project "$PROJECT"

comment "Dedicated runtime service account: no project roles, only access to its own secrets"
ensure gcloud iam service-accounts describe "$SA_EMAIL" --project "$PROJECT" -- \
  gcloud iam service-accounts create "$SA_NAME" --project "$PROJECT" \
  --display-name "formcall-webhook runtime" \
  --description "Runs the $FUNCTION function; reads only its own secrets"

# Every secret the function reads: the token first, then the --secret ones.
all_targets=(FORMCALL_SECURITY_TOKEN "${SECRET_TARGETS[@]+"${SECRET_TARGETS[@]}"}")
all_names=("$TOKEN_SECRET" "${SECRET_NAMES[@]+"${SECRET_NAMES[@]}"}")
all_versions=("$TOKEN_VERSION" "${SECRET_VERSIONS[@]+"${SECRET_VERSIONS[@]}"}")
set_secrets=()
granted=" "
for i in "${!all_targets[@]}"; do
  secret=${all_names[$i]}
  comment "Secret $secret -> ${all_targets[$i]}"
  # Created empty when missing; the value is added out of band, never from this script's arguments.
  ensure gcloud secrets describe "$secret" --project "$PROJECT" -- \
    gcloud secrets create "$secret" --project "$PROJECT" --replication-policy=automatic \
    --labels=app=formcall-webhook
  pin_version "$secret" "${all_versions[$i]}"
  set_secrets+=("${all_targets[$i]}=$secret:$PINNED")
  if [[ $granted != *" $secret "* ]]; then
    # On the secret itself, never project-wide: the account can read these secrets and no other.
    # Adding a binding that exists changes nothing.
    run gcloud secrets add-iam-policy-binding "$secret" --project "$PROJECT" \
      --member "serviceAccount:$SA_EMAIL" --role roles/secretmanager.secretAccessor \
      --condition=None --quiet
    granted+="$secret "
  fi
done

env_vars=("THREADS=$CONCURRENCY")
# functions-framework runs gunicorn with THREADS threads (default 4 x CPUs): as many as the
# concurrency, or requests would queue inside an instance that Cloud Run thinks has room.
[[ -z $POPUP_UUID ]] || env_vars+=("FORMCALL_POPUP_UUID=$POPUP_UUID")
[[ -z $CONFIG_IN_SOURCE ]] || env_vars+=("FORMCALL_CONFIG=$CONFIG_IN_SOURCE")
[[ -z $DEFAULT_REGION ]] || env_vars+=("FORMCALL_DEFAULT_REGION=$DEFAULT_REGION")
[[ -z $STORE_URL ]] || env_vars+=("FORMCALL_STORE_URL=$STORE_URL")

join() {
  local IFS=,
  printf '%s' "$*"
}

deploy=(gcloud functions deploy "$FUNCTION" --gen2 --runtime python312 --entry-point formcall_webhook
  --region "$REGION" --project "$PROJECT" --source . --trigger-http)
if ((PUBLIC)); then
  # Public: senders (HubSpot, Zapier, browsers) cannot present Google identity tokens; each route
  # authenticates requests itself (signatures, tokens, honeypot, captcha, rate limits).
  deploy+=(--allow-unauthenticated)
else
  deploy+=(--no-allow-unauthenticated)
fi
deploy+=(--ingress-settings all --service-account "$SA_EMAIL")
[[ -z $BUILD_SA ]] || deploy+=(--build-service-account "$BUILD_SA")
deploy+=(--max-instances "$MAX_INSTANCES" --min-instances "$MIN_INSTANCES" --concurrency "$CONCURRENCY")
[[ -z $CPU ]] || deploy+=(--cpu "$CPU")
deploy+=(--memory "$MEMORY" --timeout "${TIMEOUT}s")
# --set-*: the function ends up with exactly these variables and secrets, whatever it had before.
deploy+=(--set-env-vars "$(join "${env_vars[@]}")" --set-secrets "$(join "${set_secrets[@]}")")
if [[ -n $VPC_CONNECTOR ]]; then
  # Only private ranges (Memorystore) go through the connector; FormCall is reached directly.
  deploy+=(--vpc-connector "$VPC_CONNECTOR" --egress-settings private-ranges-only)
fi

comment "The function (the source is this directory, less what .gcloudignore excludes)"
run "${deploy[@]}"

comment "Its URL"
run gcloud functions describe "$FUNCTION" --gen2 --region "$REGION" --project "$PROJECT" \
  --format='value(serviceConfig.uri)'
