#!/usr/bin/env bash
# Deploys formcall-webhook on Google Cloud with gcloud: the webhook (Cloud Functions 2nd gen, public),
# the sweeper (a second, private function) and the Cloud Scheduler job that calls it every minute,
# the Firestore database they share, their service accounts, and optionally monitoring.
# It converges: what exists is looked up and kept or updated to match; what is missing is created.
# Each run deploys both functions again (a new revision each, same settings), each in one command
# that carries all its settings: no revision serves without its network, ingress or invoker setting.
# `infra/deploy.sh --help` for the options; `--dry-run` prints the gcloud commands without running any.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

usage() {
  cat <<'USAGE'
Usage: infra/deploy.sh --project PROJECT [options]

Deploys, from the repository root, two Cloud Functions (2nd gen, python312) from the same source:
  FUNCTION (entry point formcall_webhook): public, where forms and webhooks post;
  SWEEP    (entry point formcall_sweep): private, called every minute by Cloud Scheduler with an
           OIDC token, to deliver the leads kept for later.
Each runs as a dedicated service account; builds run as a dedicated build service account.

Where and what:
  --project PROJECT        Google Cloud project id (or the PROJECT environment variable)
  --region REGION          region of both functions (or REGION; default southamerica-west1, Santiago)
  --scheduler-region R     where the Cloud Scheduler job lives (default: REGION when Cloud Scheduler
                           is offered there, else the nearest region that has it: southamerica-east1
                           for Santiago). Every location is checked against infra/locations.py, the
                           table of where Google offers each service, before anything is created.
  --function NAME          the webhook function (default formcall-webhook)
  --sweep-function NAME    the sweeper function (default formcall-sweep)
  --service-account-name N runtime service account id of both functions (default formcall-webhook)
  --scheduler-service-account-name N
                           the account Cloud Scheduler calls the sweeper as (default
                           formcall-scheduler); it may invoke the sweeper and nothing else
  --build-service-account-name N
                           build service account id, created and granted what Cloud Build needs
                           (default formcall-build)
  --build-service-account EMAIL
                           use this existing build account instead (an email or
                           projects/P/serviceAccounts/EMAIL); nothing is created or granted for it

Secrets (Secret Manager, in PROJECT; values are never passed to this script):
  --token-secret NAME      secret holding the FormCall token (default formcall-token); created if
                           missing, but its value you add yourself:
                             gcloud secrets versions add formcall-token --project PROJECT --data-file=-
  --token-version N        pin this version; default: the newest enabled version, resolved now
  --secret ENV=SECRET[:VERSION]
                           another secret, repeatable, e.g. --secret HUBSPOT_APP_SECRET=hubspot-app
                           or --secret ZAPIER_TOKEN=zapier-token:2. ENV may also be an absolute path
                           (a file mount, for `file:` references). VERSION defaults to the newest
                           enabled version, resolved and pinned now. Every env:, file: and secret:
                           reference in the config must be provided this way, or nothing is deployed.
  The store's hash key (leads.hash_key, spec 10): with a shared store (Firestore, Redis) and no
  --secret FORMCALL_HASH_KEY=..., the secret formcall-hash-key is created with a random value on
  the first deploy (never replaced: the store's hashes are made with it) and set as FORMCALL_HASH_KEY.

Function settings (the environment of both functions):
  --popup-uuid UUID        FORMCALL_POPUP_UUID (zero-config, and routes without popup_uuid)
  --config FILE            the TOML config: checked here, deployed with the source, and named in
                           FORMCALL_CONFIG. It must be inside the repository and not excluded by
                           .gcloudignore. Without it: formcall.toml beside main.py if present, else
                           zero-config.
  --default-region CC      FORMCALL_DEFAULT_REGION (e.g. CL)
  --store-url URL          FORMCALL_STORE_URL (default firestore://): firestore:// or
                           firestore://PROJECT/DATABASE (shared, serverless, no network),
                           redis://HOST:PORT/DB (Memorystore: give --network and --subnet), or
                           memory:// (each instance its own leads: no sweeper is deployed).
                           A URL with a password belongs in a secret: --secret FORMCALL_STORE_URL=SECRET
  --firestore-location LOC where the Firestore database is created when missing (default
                           southamerica-west1); an existing database stays where it is
  --network NET --subnet SUBNET
                           Direct VPC egress to Memorystore (redis://): only private ranges go
                           through the VPC; FormCall is reached directly. `gcloud functions deploy`
                           has no flag for it, so both functions are then deployed with
                           `gcloud run deploy --function` (same source and build, one step each)

Scaling and limits (the webhook; the sweeper serves one request at a time on at most 2 instances):
  --max-instances N        default 10     --min-instances N   default 0
  --concurrency N          default 16     --cpu N             default 1 when concurrency > 1
                           (each function serves with THREADS = 2 x concurrency + 4 threads, so
                           stalled uploads cannot take every thread from the requests in flight)
  --timeout SECONDS        default 30     --memory SIZE       default 256Mi

Who may call the webhook:
  --public                 (default) anyone (allUsers holds roles/run.invoker). The normal case:
                           HubSpot, Zapier and browsers' form posts cannot send
                           Google identity tokens. The function protects its routes itself:
                           per-route auth (token, Basic, HubSpot and Standard Webhooks signatures),
                           honeypot, captcha, CORS and rate limits.
  --no-invoker-iam-check   public without an allUsers binding, for organisations whose policy
                           (iam.allowedPolicyMemberDomains) refuses allUsers: Cloud Run's invoker
                           check is turned off on the webhook's service instead, in the same step
                           that deploys it (`gcloud run deploy --function ... --no-invoker-iam-check`)
  --private                only callers with roles/run.invoker and a Google identity token,
                           e.g. another Google Cloud service

Monitoring:
  --monitoring EMAIL       also create, from infra/monitoring/ (as Terraform does), the log-based
                           metrics, the alert policies notifying EMAIL (any lead_failed, FormCall
                           errors 4/7/8, the share of scheduled answers, the 5xx rate,
                           store_unavailable / formcall_unavailable / origination_failed lines,
                           failures answered to browsers as 303; with a sweeper: sweeper_stale, no
                           sweep line for 5 minutes, the sweeper's 5xx, the Scheduler job's errors)
                           and the dashboard
  --scheduled-alert-share F  alert above this share of scheduled answers (default 0.5)
  --error-alert-share F    alert above this share of 5xx answers (default 0.05)

Other:
  --python PATH            Python used for the config check (default .venv/bin/python, else python3)
  --dry-run                print every gcloud command instead of running it; gcloud is never called
  -h, --help               this help

Exit status: 0 deployed (or printed), 1 a check or a gcloud command failed, 2 usage error.
USAGE
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
SCHEDULER_REGION=""
FUNCTION="formcall-webhook"
SWEEP_FUNCTION="formcall-sweep"
SA_NAME="formcall-webhook"
SCHEDULER_SA_NAME="formcall-scheduler"
BUILD_SA_NAME="formcall-build"
BUILD_SA=""
TOKEN_SECRET="formcall-token"
TOKEN_VERSION=""
EXTRA_SECRETS=()
POPUP_UUID=""
CONFIG="${CONFIG:-}"
DEFAULT_REGION=""
# Firestore: shared by every instance and by the sweeper, serverless (nothing to run or pay while
# idle), reached without a VPC. memory:// would give each instance its own leads and limits.
STORE_URL="firestore://"
FIRESTORE_LOCATION="southamerica-west1"
NETWORK=""
SUBNET=""
# Caps the bill and FormCall's load: a flood of bot submissions cannot turn into more than about
# max-instances x concurrency calls in flight (Cloud Run may briefly exceed max-instances).
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
ACCESS=public
MONITORING_EMAIL=""
SCHEDULED_SHARE=0.5
ERROR_SHARE=0.05
DRY_RUN=0
PYTHON="${PYTHON:-}"

# The sweeper: one pass at a time per instance, a pass bounded well inside its timeout, and the
# scheduler's attempt deadline a little longer than that timeout.
SWEEP_TIMEOUT=90
SWEEP_DEADLINE=100s
SWEEP_SCHEDULE="* * * * *"

# Options that take a value; both `--name value` and `--name=value` are accepted.
takes_value() {
  case $1 in
    --project | --region | --scheduler-region | --function | --sweep-function | --service-account-name | \
      --scheduler-service-account-name | --build-service-account-name | --build-service-account | \
      --token-secret | --token-version | --secret | --popup-uuid | --config | --default-region | \
      --store-url | --firestore-location | --network | --subnet | --vpc-connector | --max-instances | \
      --min-instances | --concurrency | --cpu | --timeout | --memory | --monitoring | \
      --scheduled-alert-share | --error-alert-share | --python)
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
    --scheduler-region) SCHEDULER_REGION=$value ;;
    --function) FUNCTION=$value ;;
    --sweep-function) SWEEP_FUNCTION=$value ;;
    --service-account-name) SA_NAME=$value ;;
    --scheduler-service-account-name) SCHEDULER_SA_NAME=$value ;;
    --build-service-account-name) BUILD_SA_NAME=$value ;;
    --build-service-account) BUILD_SA=$value ;;
    --token-secret) TOKEN_SECRET=$value ;;
    --token-version) TOKEN_VERSION=$value ;;
    --secret) EXTRA_SECRETS+=("$value") ;;
    --popup-uuid) POPUP_UUID=$value ;;
    --config) CONFIG=$value ;;
    --default-region) DEFAULT_REGION=$value ;;
    --store-url) STORE_URL=$value ;;
    --firestore-location) FIRESTORE_LOCATION=$value ;;
    --network) NETWORK=$value ;;
    --subnet) SUBNET=$value ;;
    --vpc-connector) usage_error "--vpc-connector is gone: Memorystore is reached by Direct VPC egress, give --network NET --subnet SUBNET" ;;
    --max-instances) MAX_INSTANCES=$value ;;
    --min-instances) MIN_INSTANCES=$value ;;
    --concurrency) CONCURRENCY=$value ;;
    --cpu) CPU=$value ;;
    --timeout) TIMEOUT=${value%s} ;;
    --memory) MEMORY=$value ;;
    --monitoring) MONITORING_EMAIL=$value ;;
    --scheduled-alert-share) SCHEDULED_SHARE=$value ;;
    --error-alert-share) ERROR_SHARE=$value ;;
    --python) PYTHON=$value ;;
    --public) ACCESS=public ;;
    --no-invoker-iam-check) ACCESS=no-invoker-iam-check ;;
    --private) ACCESS=private ;;
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

ACCOUNT_RE='^[a-z][a-z0-9-]{4,28}[a-z0-9]$'
FUNCTION_RE='^[a-z]([a-z0-9-]{0,47}[a-z0-9])?$'
SHARE_RE='^(0?\.[0-9]+|1(\.0+)?)$'

[[ -n $PROJECT ]] || usage_error "--project (or PROJECT) is required"
matches "$PROJECT" '^[a-z][a-z0-9-]{4,28}[a-z0-9]$' || usage_error "--project: '$PROJECT' is not a project id"
[[ -n $REGION ]] || usage_error "--region must not be empty"
matches "$REGION" '^[a-z]+-[a-z]+[0-9]+$' || usage_error "--region: '$REGION' is not a region such as southamerica-west1"
[[ -z $SCHEDULER_REGION ]] || matches "$SCHEDULER_REGION" '^[a-z]+-[a-z]+[0-9]+$' ||
  usage_error "--scheduler-region: '$SCHEDULER_REGION' is not a region such as southamerica-east1"
matches "$FUNCTION" "$FUNCTION_RE" ||
  usage_error "--function: lower-case letters, digits and dashes, at most 49, starting with a letter"
matches "$SWEEP_FUNCTION" "$FUNCTION_RE" ||
  usage_error "--sweep-function: lower-case letters, digits and dashes, at most 49, starting with a letter"
[[ $SWEEP_FUNCTION != "$FUNCTION" ]] || usage_error "--sweep-function must differ from --function"
for account in "$SA_NAME" "$SCHEDULER_SA_NAME" "$BUILD_SA_NAME"; do
  matches "$account" "$ACCOUNT_RE" ||
    usage_error "service account '$account': 6-30 lower-case letters, digits and dashes, starting with a letter"
done
[[ $SCHEDULER_SA_NAME != "$SA_NAME" ]] ||
  usage_error "--scheduler-service-account-name must differ from the runtime account: it may only invoke the sweeper"
SECRET_NAME_RE='^[A-Za-z0-9_-]{1,255}$'
VERSION_RE='^([1-9][0-9]*|latest)$'
matches "$TOKEN_SECRET" "$SECRET_NAME_RE" || usage_error "--token-secret: '$TOKEN_SECRET' is not a secret name"
[[ -z $TOKEN_VERSION ]] || matches "$TOKEN_VERSION" "$VERSION_RE" ||
  usage_error "--token-version: a version number such as 3"
[[ -z $POPUP_UUID ]] || matches "$POPUP_UUID" '^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$' ||
  usage_error "--popup-uuid: '$POPUP_UUID' is not a UUID"
[[ -z $DEFAULT_REGION ]] || matches "$DEFAULT_REGION" '^[A-Z]{2}$' ||
  usage_error "--default-region: a two-letter region code such as CL"
matches "$FIRESTORE_LOCATION" '^[a-z][a-z0-9-]+[0-9]$' ||
  usage_error "--firestore-location: '$FIRESTORE_LOCATION' is not a location such as southamerica-west1 or nam5"

# The store: its kind decides what else is deployed (Firestore database, VPC egress, the sweeper).
STORE_KIND=""
FIRESTORE_DATABASE="(default)"
if [[ -n $STORE_URL ]]; then
  [[ $STORE_URL != *@* ]] ||
    usage_error "--store-url must not carry a password (it would be readable in the function's settings); store the URL in a secret and pass --secret FORMCALL_STORE_URL=SECRET"
  [[ $STORE_URL != *,* ]] || usage_error "--store-url must not contain a comma"
  case $STORE_URL in
    memory://) STORE_KIND=memory ;;
    firestore://) STORE_KIND=firestore ;;
    firestore://*)
      STORE_KIND=firestore
      matches "$STORE_URL" '^firestore://([a-z][a-z0-9-]{4,28}[a-z0-9])/(\(default\)|[a-z][a-z0-9-]{2,61}[a-z0-9])$' ||
        usage_error "--store-url: firestore:// or firestore://PROJECT/DATABASE"
      [[ ${BASH_REMATCH[1]} == "$PROJECT" ]] ||
        usage_error "--store-url: the database must be in --project $PROJECT (this script creates and grants it there)"
      FIRESTORE_DATABASE=${BASH_REMATCH[2]}
      ;;
    redis://* | rediss://*) STORE_KIND=redis ;;
    *) usage_error "--store-url: firestore://, firestore://PROJECT/DATABASE, redis://HOST:PORT/DB or memory://" ;;
  esac
fi
if [[ -n $NETWORK || -n $SUBNET ]]; then
  [[ -n $NETWORK && -n $SUBNET ]] || usage_error "--network and --subnet go together (Direct VPC egress)"
  matches "$NETWORK" '^[a-z0-9/_-]+$' || usage_error "--network: '$NETWORK' is not a network name"
  matches "$SUBNET" '^[a-z0-9/_-]+$' || usage_error "--subnet: '$SUBNET' is not a subnet name"
fi
if [[ -n $BUILD_SA ]]; then
  # gcloud wants the full resource name; an email is accepted here and expanded.
  if matches "$BUILD_SA" '^[a-z0-9-]+@[a-z0-9.-]+\.gserviceaccount\.com$'; then
    BUILD_SA="projects/$PROJECT/serviceAccounts/$BUILD_SA"
  fi
  matches "$BUILD_SA" '^projects/[a-z0-9-]+/serviceAccounts/[a-z0-9-]+@[a-z0-9.-]+\.gserviceaccount\.com$' ||
    usage_error "--build-service-account: a service account email or projects/P/serviceAccounts/EMAIL"
fi
if [[ -n $MONITORING_EMAIL ]]; then
  matches "$MONITORING_EMAIL" '^[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$' ||
    usage_error "--monitoring: '$MONITORING_EMAIL' is not an email address"
fi
matches "$SCHEDULED_SHARE" "$SHARE_RE" || usage_error "--scheduled-alert-share: a fraction such as 0.5"
matches "$ERROR_SHARE" "$SHARE_RE" || usage_error "--error-alert-share: a fraction such as 0.05"

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

# The store's hash key (spec 10): made here, once, for a shared store that has none given.
HASH_KEY_SECRET="formcall-hash-key"
AUTO_HASH_KEY=0
STORE_FROM_SECRET=0
for target in "${SECRET_TARGETS[@]+"${SECRET_TARGETS[@]}"}"; do
  case $target in
    THREADS | GOOGLE_CLOUD_PROJECT | FORMCALL_POPUP_UUID | FORMCALL_CONFIG | FORMCALL_DEFAULT_REGION)
      usage_error "--secret $target: that variable is set by this script's own options"
      ;;
    FORMCALL_SWEEP_SECONDS)
      usage_error "--secret FORMCALL_SWEEP_SECONDS: only memory:// sweeps inside the function; deployed, Cloud Scheduler calls the sweeper"
      ;;
    FORMCALL_STORE_URL)
      # A URL with a password: Memorystore with AUTH (Firestore needs no password).
      STORE_FROM_SECRET=1
      STORE_KIND=redis
      STORE_URL=""
      ;;
  esac
done
if [[ $STORE_KIND == redis && -z $NETWORK ]]; then
  note "warning: a redis:// store without --network/--subnet: Memorystore is reachable only through the VPC (Direct VPC egress)"
fi
if [[ $STORE_KIND == memory ]] && ((MAX_INSTANCES > 1)); then
  note "warning: --store-url memory:// with --max-instances $MAX_INSTANCES: each instance has its own leads, dedupe and rate limits (a resend may ring twice, limits multiply, and a kept lead waits for the instance that kept it). Use firestore:// (the default), or --max-instances 1."
fi

SA_EMAIL="$SA_NAME@$PROJECT.iam.gserviceaccount.com"
SCHEDULER_SA_EMAIL="$SCHEDULER_SA_NAME@$PROJECT.iam.gserviceaccount.com"
BUILD_SA_EMAIL="$BUILD_SA_NAME@$PROJECT.iam.gserviceaccount.com"
CREATE_BUILD_SA=0
if [[ -z $BUILD_SA ]]; then
  CREATE_BUILD_SA=1
  BUILD_SA="projects/$PROJECT/serviceAccounts/$BUILD_SA_EMAIL"
fi
# With memory:// no other process can see a function's leads: it sweeps them itself.
DEPLOY_SWEEPER=1
[[ $STORE_KIND != memory ]] || DEPLOY_SWEEPER=0

# The caller's relative --config path, made absolute before we change directory.
if [[ -n $CONFIG && -e $CONFIG ]]; then
  CONFIG="$(cd "$(dirname "$CONFIG")" && pwd)/$(basename "$CONFIG")"
fi
cd "$ROOT"

if [[ -z $PYTHON ]]; then
  if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi

# ---------------------------------------------------------------------------------------------------
# Locations: every resource where Google offers its service (infra/locations.py), checked before
# anything is created. The sweep job gets its own location: Cloud Scheduler is not offered in every
# region that runs functions (not in Santiago).

place_args=(--region "$REGION" --scheduler-region "$SCHEDULER_REGION")
[[ $STORE_KIND != firestore ]] || place_args+=(--firestore-location "$FIRESTORE_LOCATION")
((!DEPLOY_SWEEPER)) || place_args+=(--sweeper)
placed=$("$PYTHON" infra/locations.py place "${place_args[@]}") || exit 2
if ((DEPLOY_SWEEPER)); then
  SCHEDULER_REGION=$(sed -n 's/^scheduler=//p' <<<"$placed")
  [[ -n $SCHEDULER_REGION ]] || fail "infra/locations.py chose no scheduler region"
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
# Checked with the store it deploys, so its shared-store warnings (leads.hash_key unset) show here. The
# check reads only the URL's kind and never connects. A URL held in a secret is Memorystore's (redis).
if ((STORE_FROM_SECRET)); then
  check_env+=("FORMCALL_STORE_URL=redis://store-url-from-a-secret:6379/0")
else
  check_env+=("FORMCALL_STORE_URL=${STORE_URL:-firestore://}")
fi

note "Checking the config: $PYTHON -m formcall_webhook check ${CONFIG:-(default)}"
check_args=(-m formcall_webhook check)
[[ -z $CONFIG ]] || check_args+=("$CONFIG")
if ! "${check_env[@]}" "$PYTHON" "${check_args[@]}" >&2; then
  fail "the config check failed; nothing was deployed"
fi

# The config file the functions will read ("" for zero-config).
config_file=$CONFIG
[[ -n $config_file || ! -f formcall.toml ]] || config_file=formcall.toml

# Every secret reference in the config must be something this deploy provides: env:NAME a variable
# it sets (a --secret, the token), file:PATH a --secret mount, secret:projects/P/secrets/S/... a
# secret the runtime account is granted here. Otherwise the function would answer `misconfigured`
# to every lead on the routes that use it, after a deploy that looked fine.
env_provided=" FORMCALL_SECURITY_TOKEN "
for target in "${SECRET_TARGETS[@]+"${SECRET_TARGETS[@]}"}"; do env_provided+="$target "; done
if [[ $STORE_KIND != memory && $env_provided != *" FORMCALL_HASH_KEY "* ]]; then
  AUTO_HASH_KEY=1
  env_provided+="FORMCALL_HASH_KEY "
fi
secrets_granted=" $TOKEN_SECRET "
for name in "${SECRET_NAMES[@]+"${SECRET_NAMES[@]}"}"; do secrets_granted+="$name "; done
if [[ -n $config_file ]]; then
  refs=$(
    "$PYTHON" -c '
import sys, tomllib
def walk(value, path):
    if isinstance(value, dict):
        for key, item in value.items():
            yield from walk(item, f"{path}.{key}" if path else key)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from walk(item, f"{path}[{index}]")
    elif isinstance(value, str) and value.startswith(("env:", "file:", "secret:")):
        yield path, value
with open(sys.argv[1], "rb") as handle:
    for path, ref in walk(tomllib.load(handle), ""):
        print(f"{path}\t{ref}")
' "$config_file"
  ) || fail "could not read the secret references of $config_file"
  missing=()
  while IFS=$'\t' read -r key ref; do
    [[ -n $ref ]] || continue
    case $ref in
      env:*)
        [[ $env_provided == *" ${ref#env:} "* ]] ||
          missing+=("$key = \"$ref\": pass --secret ${ref#env:}=SECRET")
        ;;
      file:*)
        [[ $env_provided == *" ${ref#file:} "* ]] ||
          missing+=("$key = \"$ref\": pass --secret ${ref#file:}=SECRET (a file mount)")
        ;;
      secret:*)
        if [[ $ref =~ ^secret:projects/([^/]+)/secrets/([^/]+)(/versions/[^/]+)?$ ]]; then
          ref_project=${BASH_REMATCH[1]}
          ref_secret=${BASH_REMATCH[2]}
          if [[ $ref_project != "$PROJECT" ]]; then
            missing+=("$key = \"$ref\": a secret in project $ref_project; grant $SA_EMAIL roles/secretmanager.secretAccessor on it there, or move it to $PROJECT")
          elif [[ $secrets_granted != *" $ref_secret "* ]]; then
            missing+=("$key = \"$ref\": pass --secret ENV=$ref_secret (any unused ENV name) so the runtime account may read it")
          fi
        else
          missing+=("$key = \"$ref\": not projects/P/secrets/S/versions/V")
        fi
        ;;
    esac
  done <<<"$refs"
  if ((${#missing[@]})); then
    note "deploy.sh: $config_file refers to secrets this deploy does not provide; nothing was deployed:"
    for line in "${missing[@]}"; do note "  $line"; done
    exit 1
  fi
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
formcall_timeout=8
if [[ -n $config_file ]]; then
  formcall_timeout=$(
    "$PYTHON" -c '
import sys, tomllib
with open(sys.argv[1], "rb") as handle:
    print(tomllib.load(handle).get("formcall", {}).get("timeout_seconds", 8))
' "$config_file"
  ) || fail "could not read timeout_seconds from $config_file"
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

# converge DESCRIBE... -- UPDATE... -- CREATE...: update what exists, create what does not.
converge() {
  local describe=() update=() create=()
  while [[ $1 != -- ]]; do
    describe+=("$1")
    shift
  done
  shift
  while [[ $1 != -- ]]; do
    update+=("$1")
    shift
  done
  shift
  create=("$@")
  if ((DRY_RUN)); then
    printf '%s >/dev/null 2>&1 && %s || %s\n' "$(show "${describe[@]}")" "$(show "${update[@]}")" "$(show "${create[@]}")"
  elif "${describe[@]}" >/dev/null 2>&1; then
    run "${update[@]}"
  else
    run "${create[@]}"
  fi
}

# lookup VAR PLACEHOLDER COMMAND...: VAR = what COMMAND prints (its first line); in --dry-run the
# command is printed and VAR is PLACEHOLDER.
lookup() {
  local var=$1 placeholder=$2 found
  shift 2
  if ((DRY_RUN)); then
    show "$@"
    printf -v "$var" '%s' "$placeholder"
  else
    found=$("$@") || fail "failed: $(show "$@")"
    printf -v "$var" '%s' "${found%%$'\n'*}"
  fi
}

comment() {
  if ((DRY_RUN)); then printf '# %s\n' "$*"; else note "== $*"; fi
}

# run_retrying COMMAND...: run, and again when gcloud says a service account does not exist (yet):
# IAM is eventually consistent, and an account created a moment ago may take a minute to be seen by
# policy bindings and deploys. Any other failure stops the deploy at once. Waits 5, 10, 20, 40, 60 s.
run_retrying() {
  local wait status log
  if ((DRY_RUN)); then
    show "$@"
    return
  fi
  note "+ $(show "$@")"
  log=$(mktemp)
  for wait in 5 10 20 40 60 0; do
    status=0
    "$@" 2>&1 | tee "$log" >&2 || status=${PIPESTATUS[0]}
    if ((status == 0)); then
      rm -f "$log"
      return 0
    fi
    if ((wait == 0)) || ! grep -qiE 'service account .*(does not exist|not found)|SERVICE_ACCOUNT_NOT_FOUND' "$log"; then
      rm -f "$log"
      fail "failed (exit $status): $(show "${@:1:4}") ..."
    fi
    note "a service account is not visible yet (IAM is eventually consistent); again in ${wait}s"
    sleep "$wait"
  done
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

if ((DEPLOY_SWEEPER)); then
  comment "formcall-webhook -> $FUNCTION and $SWEEP_FUNCTION in $PROJECT/$REGION, store ${STORE_URL:-from a secret}, sweep job in $SCHEDULER_REGION"
else
  comment "formcall-webhook -> $FUNCTION in $PROJECT/$REGION, store $STORE_URL (the function sweeps itself)"
fi

comment "APIs (enabling an enabled API changes nothing)"
apis=(cloudfunctions.googleapis.com run.googleapis.com cloudbuild.googleapis.com
  artifactregistry.googleapis.com secretmanager.googleapis.com iam.googleapis.com)
[[ $STORE_KIND != firestore ]] || apis+=(firestore.googleapis.com)
((!DEPLOY_SWEEPER)) || apis+=(cloudscheduler.googleapis.com)
[[ -z $NETWORK ]] || apis+=(compute.googleapis.com)
[[ -z $MONITORING_EMAIL ]] || apis+=(monitoring.googleapis.com logging.googleapis.com)
run gcloud services enable "${apis[@]}" --project "$PROJECT"

comment "Dedicated runtime service account: its own secrets and, with Firestore, the database"
ensure gcloud iam service-accounts describe "$SA_EMAIL" --project "$PROJECT" -- \
  gcloud iam service-accounts create "$SA_NAME" --project "$PROJECT" \
  --display-name "formcall-webhook runtime" \
  --description "Runs $FUNCTION and $SWEEP_FUNCTION; reads only their own secrets"

if ((CREATE_BUILD_SA)); then
  # Since mid-2024 a new project's default build account may lack what a function build needs, or
  # be disabled by policy. Google's build-account page (run/docs/configuring/services/build-service-account)
  # lists these roles for a user-specified one: build logs (logging.logWriter), the built image in
  # Artifact Registry (artifactregistry.writer), and Storage Object Admin to read the function's
  # source from its bucket and store build images.
  comment "Build service account: what Cloud Build needs to build the functions, nothing more"
  ensure gcloud iam service-accounts describe "$BUILD_SA_EMAIL" --project "$PROJECT" -- \
    gcloud iam service-accounts create "$BUILD_SA_NAME" --project "$PROJECT" \
    --display-name "formcall-webhook build" \
    --description "Builds $FUNCTION and $SWEEP_FUNCTION (Cloud Build)"
  for role in roles/logging.logWriter roles/artifactregistry.writer roles/storage.objectAdmin; do
    run_retrying gcloud projects add-iam-policy-binding "$PROJECT" --member "serviceAccount:$BUILD_SA_EMAIL" \
      --role "$role" --condition=None --quiet
  done
fi

if [[ $STORE_KIND == firestore ]]; then
  comment "Firestore ($FIRESTORE_DATABASE, native mode): leads, dedupe claims and rate counters"
  ensure gcloud firestore databases describe --database="$FIRESTORE_DATABASE" --project "$PROJECT" -- \
    gcloud firestore databases create --database="$FIRESTORE_DATABASE" --location="$FIRESTORE_LOCATION" \
    --type=firestore-native --project "$PROJECT"
  # Records carry expires_at; Firestore deletes them after it (within a day or so), at no query cost.
  for collection in formcall_claims formcall_leads; do
    run gcloud firestore fields ttls update expires_at --collection-group="$collection" \
      --database="$FIRESTORE_DATABASE" --enable-ttl --async --project "$PROJECT"
  done
  # Single-field index exemptions. Nothing queries claims by a field, and at a campaign's burst
  # (100 leads/s: about 600 claim writes and deletes a second) indexes on their time-ordered fields
  # would pass Firestore's documented 500 writes/s for such fields. The leads' record (json) is a large
  # string no query reads by value; expires_at (the TTL field) is never queried in either collection.
  for exempt in formcall_claims:value formcall_claims:expires formcall_claims:expires_at \
    formcall_leads:json formcall_leads:expires_at; do
    run gcloud firestore indexes fields update "${exempt#*:}" --collection-group="${exempt%%:*}" \
      --disable-indexes --database="$FIRESTORE_DATABASE" --async --project "$PROJECT" --quiet
  done
  # The one composite index the store needs (`leads list --state` by age); the sweep's due_at order
  # is a single-field index Firestore makes itself.
  # The commas belong to --field-config values.
  # shellcheck disable=SC2054
  index=(gcloud firestore indexes composite create --collection-group=formcall_leads
    --field-config=field-path=state,order=ascending --field-config=field-path=received_at,order=ascending
    --database="$FIRESTORE_DATABASE" --async --project "$PROJECT")
  index_list=(gcloud firestore indexes composite list --database="$FIRESTORE_DATABASE" --project "$PROJECT"
    --format='value(fields)')
  if ((DRY_RUN)); then
    printf '%s | grep -q received_at || %s\n' "$(show "${index_list[@]}")" "$(show "${index[@]}")"
  elif "${index_list[@]}" | grep -q received_at; then
    note "exists: the formcall_leads (state, received_at) index"
  else
    run "${index[@]}"
  fi
  # Read and write documents; no admin rights. Project-wide: Firestore has no per-database role
  # binding, and a dedicated project holds nothing else.
  run_retrying gcloud projects add-iam-policy-binding "$PROJECT" --member "serviceAccount:$SA_EMAIL" \
    --role roles/datastore.user --condition=None --quiet
fi

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
    run_retrying gcloud secrets add-iam-policy-binding "$secret" --project "$PROJECT" \
      --member "serviceAccount:$SA_EMAIL" --role roles/secretmanager.secretAccessor \
      --condition=None --quiet
    granted+="$secret "
  fi
done

if ((AUTO_HASH_KEY)); then
  # Spec 10: the keyed hashes of numbers (opt-out list, dedupe, per_phone) need a key nobody reading the
  # store has. Made from Python's secrets module, never from an argument, and only when the secret is
  # missing: replacing it would orphan every hash already in the store (the function would refuse it).
  comment "Secret $HASH_KEY_SECRET -> FORMCALL_HASH_KEY: the store's hash key, made once, never replaced"
  describe=(gcloud secrets describe "$HASH_KEY_SECRET" --project "$PROJECT")
  create=(gcloud secrets create "$HASH_KEY_SECRET" --project "$PROJECT" --replication-policy=automatic
    --labels=app=formcall-webhook --data-file=-)
  make_key=("$PYTHON" -c 'import secrets; print(secrets.token_urlsafe(32), end="")')
  if ((DRY_RUN)); then
    printf '%s >/dev/null 2>&1 || %s | %s\n' "$(show "${describe[@]}")" "$(show "${make_key[@]}")" "$(show "${create[@]}")"
  elif "${describe[@]}" >/dev/null 2>&1; then
    note "exists: $HASH_KEY_SECRET (kept: the store's hashes are made with it)"
  else
    note "+ $(show "${make_key[@]}") | $(show "${create[@]}")"
    "${make_key[@]}" | "${create[@]}"
  fi
  pin_version "$HASH_KEY_SECRET" ""
  set_secrets+=("FORMCALL_HASH_KEY=$HASH_KEY_SECRET:$PINNED")
  run_retrying gcloud secrets add-iam-policy-binding "$HASH_KEY_SECRET" --project "$PROJECT" \
    --member "serviceAccount:$SA_EMAIL" --role roles/secretmanager.secretAccessor \
    --condition=None --quiet
fi

# GOOGLE_CLOUD_PROJECT: log lines link to their request's trace (projects/P/traces/T) without asking
# the metadata server. FORMCALL_SWEEP_SECONDS stays unset: Cloud Scheduler runs the sweep.
env_vars=("GOOGLE_CLOUD_PROJECT=$PROJECT")
[[ -z $POPUP_UUID ]] || env_vars+=("FORMCALL_POPUP_UUID=$POPUP_UUID")
[[ -z $CONFIG_IN_SOURCE ]] || env_vars+=("FORMCALL_CONFIG=$CONFIG_IN_SOURCE")
[[ -z $DEFAULT_REGION ]] || env_vars+=("FORMCALL_DEFAULT_REGION=$DEFAULT_REGION")
((STORE_FROM_SECRET)) || env_vars+=("FORMCALL_STORE_URL=$STORE_URL")

join() {
  local IFS=,
  printf '%s' "$*"
}

# deploy_function NAME ENTRY_POINT CONCURRENCY MAX MIN TIMEOUT AUTH: the command, in DEPLOY.
# One command per function, with every setting it serves with: no revision ever runs without its
# network (a 503 per lead with Redis) or its invoker setting (a 403 per lead). `gcloud functions deploy`
# has no flag for Direct VPC egress or Cloud Run's invoker check (release 528), so a function that needs
# either is deployed by `gcloud run deploy --function`, which builds the same source the same way and
# has both flags. A function keeps the command that created it: do not switch an existing function
# between the two (add or drop --network or --no-invoker-iam-check only on a fresh function name).
deploy_function() {
  local name=$1 entry=$2 concurrency=$3 max=$4 min=$5 timeout=$6 auth=$7 kind=functions
  [[ -z $NETWORK ]] || kind=run
  [[ $name != "$FUNCTION" || $ACCESS != no-invoker-iam-check ]] || kind=run
  DEPLOYED_BY[$name]=$kind
  # functions-framework serves with THREADS gunicorn threads (default 4 x CPUs): more than the
  # concurrency (Cloud Run's cap on requests in flight per instance), so requests never queue inside an
  # instance that Cloud Run thinks has room, and uploads stalled up to body_timeout_seconds leave
  # threads for the rest (issue 18.9: 2 x concurrency + 4).
  local threads=$((concurrency * 2 + 4))
  if [[ $kind == functions ]]; then
    DEPLOY=(gcloud functions deploy "$name" --gen2 --runtime python312 --entry-point "$entry"
      --region "$REGION" --project "$PROJECT" --source . --trigger-http "$auth"
      --ingress-settings all --service-account "$SA_EMAIL" --build-service-account "$BUILD_SA")
  else
    DEPLOY=(gcloud run deploy "$name" --source . --function "$entry" --base-image python312
      --region "$REGION" --project "$PROJECT" "$auth" --ingress all
      --service-account "$SA_EMAIL" --build-service-account "$BUILD_SA")
    [[ $name != "$FUNCTION" || $ACCESS != no-invoker-iam-check ]] || DEPLOY+=(--no-invoker-iam-check)
    # Direct VPC egress: no connector VMs to pay for; only private ranges (Memorystore) go through it.
    [[ -z $NETWORK ]] || DEPLOY+=(--network "$NETWORK" --subnet "$SUBNET" --vpc-egress private-ranges-only)
  fi
  DEPLOY+=(--max-instances "$max" --min-instances "$min" --concurrency "$concurrency")
  [[ -z $CPU ]] || DEPLOY+=(--cpu "$CPU")
  # --set-*: the function ends up with exactly these variables and secrets, whatever it had before.
  DEPLOY+=(--memory "$MEMORY" --timeout "${timeout}s"
    --set-env-vars "$(join "THREADS=$threads" "${env_vars[@]}")" --set-secrets "$(join "${set_secrets[@]}")")
}
declare -A DEPLOYED_BY=()

case $ACCESS in
  # Public: senders (HubSpot, Zapier, browsers) cannot present Google identity tokens; each route
  # authenticates requests itself (signatures, tokens, honeypot, captcha, rate limits).
  public) webhook_auth=--allow-unauthenticated ;;
  # Public without allUsers (an organisation policy refuses it): Cloud Run's invoker check is off.
  *) webhook_auth=--no-allow-unauthenticated ;;
esac

comment "The webhook (the source is this directory, less what .gcloudignore excludes)"
deploy_function "$FUNCTION" formcall_webhook "$CONCURRENCY" "$MAX_INSTANCES" "$MIN_INSTANCES" "$TIMEOUT" "$webhook_auth"
run_retrying "${DEPLOY[@]}"

if ((DEPLOY_SWEEPER)); then
  # Private: no allUsers. Only the scheduler's own account may invoke it. Ingress stays `all`: the
  # pages of Google's ingress documentation read for this deploy did not show Cloud Scheduler among
  # the sources an `internal` service accepts, and a sweeper it cannot reach would keep every lead
  # waiting; IAM (an OIDC token from the scheduler's account) is what keeps others out.
  comment "The sweeper: private, same source, environment and secrets"
  deploy_function "$SWEEP_FUNCTION" formcall_sweep 1 2 0 "$SWEEP_TIMEOUT" --no-allow-unauthenticated
  run_retrying "${DEPLOY[@]}"

comment "Cloud Scheduler's account: may invoke $SWEEP_FUNCTION and nothing else"
  ensure gcloud iam service-accounts describe "$SCHEDULER_SA_EMAIL" --project "$PROJECT" -- \
    gcloud iam service-accounts create "$SCHEDULER_SA_NAME" --project "$PROJECT" \
    --display-name "formcall-webhook scheduler" \
    --description "Calls $SWEEP_FUNCTION every minute with an OIDC token"
  # roles/run.invoker on the sweeper's Cloud Run service alone, never project-wide. Retried: a
  # service account just created may not be visible to IAM for a minute.
  if [[ ${DEPLOYED_BY[$SWEEP_FUNCTION]} == functions ]]; then
    run_retrying gcloud functions add-invoker-policy-binding "$SWEEP_FUNCTION" --region "$REGION" --project "$PROJECT" \
      --member "serviceAccount:$SCHEDULER_SA_EMAIL"
  else
    run_retrying gcloud run services add-iam-policy-binding "$SWEEP_FUNCTION" --region "$REGION" --project "$PROJECT" \
      --member "serviceAccount:$SCHEDULER_SA_EMAIL" --role roles/run.invoker --condition=None --quiet
  fi

  comment "The sweeper's URL, the OIDC token's audience"
  lookup SWEEP_URL "https://$SWEEP_FUNCTION-000000000000.$REGION.run.app" \
    gcloud run services describe "$SWEEP_FUNCTION" --region "$REGION" --project "$PROJECT" --format='value(status.url)'
  [[ -n $SWEEP_URL ]] || fail "$SWEEP_FUNCTION has no URL"

  comment "Cloud Scheduler in $SCHEDULER_REGION: POST the sweeper every minute"
  job_flags=(--location "$SCHEDULER_REGION" --project "$PROJECT" --schedule "$SWEEP_SCHEDULE" --time-zone Etc/UTC
    --uri "$SWEEP_URL" --http-method POST --attempt-deadline "$SWEEP_DEADLINE"
    --oidc-service-account-email "$SCHEDULER_SA_EMAIL" --oidc-token-audience "$SWEEP_URL"
    --max-retry-attempts 0 --description "formcall-webhook: deliver the leads kept for later")
  # No retries: the next minute's run is the retry, and a late duplicate would only find nothing due.
  converge gcloud scheduler jobs describe "$SWEEP_FUNCTION" --location "$SCHEDULER_REGION" --project "$PROJECT" -- \
    gcloud scheduler jobs update http "$SWEEP_FUNCTION" "${job_flags[@]}" -- \
    gcloud scheduler jobs create http "$SWEEP_FUNCTION" "${job_flags[@]}"
fi

if [[ -n $MONITORING_EMAIL ]]; then
  comment "Monitoring: log-based metrics, alerts to $MONITORING_EMAIL, dashboard (infra/monitoring/)"
  channel_list=(gcloud beta monitoring channels list --project "$PROJECT"
    --filter="type=\"email\" AND labels.email_address=\"$MONITORING_EMAIL\"" --format='value(name)')
  channel_create=(gcloud beta monitoring channels create --project "$PROJECT" --type email
    --display-name "formcall-webhook: $MONITORING_EMAIL" --channel-labels "email_address=$MONITORING_EMAIL"
    --format='value(name)')
  if ((DRY_RUN)); then
    printf '%s | grep . || %s\n' "$(show "${channel_list[@]}")" "$(show "${channel_create[@]}")"
    CHANNEL="projects/$PROJECT/notificationChannels/0000000000000000000"
  else
    CHANNEL=$("${channel_list[@]}")
    CHANNEL=${CHANNEL%%$'\n'*}
    [[ -n $CHANNEL ]] || CHANNEL=$("${channel_create[@]}") || fail "could not create the notification channel"
  fi

  # Rendered as Terraform renders them, into build/ (left out of the upload and of git).
  rendered="$ROOT/build/monitoring/$PROJECT-$FUNCTION"
  "$PYTHON" infra/monitoring/render.py "$rendered" "webhook_service=$FUNCTION" "sweep_service=$SWEEP_FUNCTION" \
    "notification_channels=[\"$CHANNEL\"]" "scheduled_share=$SCHEDULED_SHARE" "error_share=$ERROR_SHARE" ||
    fail "could not render infra/monitoring"

  for file in "$rendered"/metrics/*.json; do
    metric=$(basename "$file" .json)
    converge gcloud logging metrics describe "$metric" --project "$PROJECT" -- \
      gcloud logging metrics update "$metric" --config-from-file "$file" --project "$PROJECT" -- \
      gcloud logging metrics create "$metric" --config-from-file "$file" --project "$PROJECT"
  done

  for file in "$rendered"/policies/*.json; do
    # sweeper_*.json watch the sweeper and its job: none with memory:// (no sweeper is deployed).
    ((DEPLOY_SWEEPER)) || [[ $(basename "$file") != sweeper_* ]] || continue
    title=$("$PYTHON" -c 'import json, sys; print(json.load(open(sys.argv[1]))["displayName"])' "$file")
    lookup policy "" gcloud alpha monitoring policies list --project "$PROJECT" \
      --filter="displayName=\"$title\"" --format='value(name)'
    if [[ -n $policy ]]; then
      run gcloud alpha monitoring policies update "$policy" --policy-from-file "$file" --project "$PROJECT"
    else
      run gcloud alpha monitoring policies create --policy-from-file "$file" --project "$PROJECT"
    fi
  done

  board_title=$("$PYTHON" -c 'import json, sys; print(json.load(open(sys.argv[1]))["displayName"])' "$rendered/dashboard.json")
  lookup board "" gcloud monitoring dashboards list --project "$PROJECT" \
    --filter="displayName=\"$board_title\"" --format='value(name)'
  if [[ -n $board ]]; then
    # The etag makes the update replace exactly the version just read.
    etag=$(gcloud monitoring dashboards describe "$board" --project "$PROJECT" --format='value(etag)')
    "$PYTHON" -c 'import json, sys; d = json.load(open(sys.argv[1])); d["etag"] = sys.argv[2]; json.dump(d, open(sys.argv[1], "w"))' \
      "$rendered/dashboard.json" "$etag"
    run gcloud monitoring dashboards update "$board" --config-from-file "$rendered/dashboard.json" --project "$PROJECT"
  else
    run gcloud monitoring dashboards create --config-from-file "$rendered/dashboard.json" --project "$PROJECT"
  fi
fi

comment "The webhook's URLs: both serve it; paste one of them into HubSpot, Zapier or a form's action"
if [[ ${DEPLOYED_BY[$FUNCTION]} == functions ]]; then
  run gcloud functions describe "$FUNCTION" --gen2 --region "$REGION" --project "$PROJECT" \
    --format='value(url,serviceConfig.uri)'
else
  run gcloud run services describe "$FUNCTION" --region "$REGION" --project "$PROJECT" --format='value(status.url,urls)'
fi
if ((!DRY_RUN)); then
  note "Use the same URL everywhere you paste it: a HubSpot route's auth.public_url must be exactly that URL (plus /ROUTE)."
fi
