# Where and what -------------------------------------------------------------------------------

variable "project_id" {
  description = "Google Cloud project id the function, its secrets and its service account live in."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a project id: 6-30 lower-case letters, digits and dashes."
  }
}

variable "region" {
  description = "Region of both functions (and of Memorystore when enable_redis). Santiago by default."
  type        = string
  default     = "southamerica-west1"

  validation {
    condition     = trimspace(var.region) != "" && can(regex("^[a-z]+-[a-z]+[0-9]+$", var.region))
    error_message = "region must be a non-empty region name such as southamerica-west1."
  }
  # locations.tf.json: where Google offers each service (infra/locations.py, with its sources and date).
  validation {
    condition     = contains(local.locations.functions, var.region)
    error_message = "Cloud Run functions is not offered in region ${var.region} (Google's list, read ${local.locations_read_on}: https://cloud.google.com/run/docs/locations)."
  }
  validation {
    condition     = !var.enable_redis || contains(local.locations.memorystore, var.region)
    error_message = "Memorystore for Redis is not offered in region ${var.region}, where enable_redis would create it (Google's list, read ${local.locations_read_on}: https://cloud.google.com/memorystore/docs/redis/regions)."
  }
}

variable "scheduler_region" {
  description = "Where the Cloud Scheduler job that calls the sweeper lives; null for region when Cloud Scheduler is offered there, else the nearest region that has it (southamerica-east1 for Santiago)."
  type        = string
  default     = null

  validation {
    condition     = var.scheduler_region == null || contains(local.locations.scheduler, coalesce(var.scheduler_region, "-"))
    error_message = "Cloud Scheduler is not offered in scheduler_region ${coalesce(var.scheduler_region, "-")} (Google's list, read ${local.locations_read_on}: https://docs.cloud.google.com/scheduler/docs/locations)."
  }
}

variable "function_name" {
  description = "Name of the function (and of its Cloud Run service)."
  type        = string
  default     = "formcall-webhook"

  validation {
    condition     = can(regex("^[a-z]([a-z0-9-]{0,47}[a-z0-9])?$", var.function_name))
    error_message = "function_name: lower-case letters, digits and dashes, at most 49, starting with a letter."
  }
}

variable "service_account_id" {
  description = "Account id of the dedicated runtime service account (formcall-webhook@PROJECT.iam.gserviceaccount.com)."
  type        = string
  default     = "formcall-webhook"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.service_account_id))
    error_message = "service_account_id: 6-30 lower-case letters, digits and dashes, starting with a letter."
  }
}

variable "sweep_function_name" {
  description = "Name of the private sweeper function (entry point formcall_sweep) that Cloud Scheduler calls every minute; also the scheduler job's name."
  type        = string
  default     = "formcall-sweep"

  validation {
    condition     = can(regex("^[a-z]([a-z0-9-]{0,47}[a-z0-9])?$", var.sweep_function_name))
    error_message = "sweep_function_name: lower-case letters, digits and dashes, at most 49, starting with a letter."
  }
}

variable "scheduler_service_account_id" {
  description = "Account id of the service account Cloud Scheduler calls the sweeper as; it holds run.invoker on the sweeper's service alone."
  type        = string
  default     = "formcall-scheduler"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.scheduler_service_account_id))
    error_message = "scheduler_service_account_id: 6-30 lower-case letters, digits and dashes, starting with a letter."
  }
}

variable "build_service_account" {
  description = "Full resource name (projects/P/serviceAccounts/EMAIL) of an existing service account for Cloud Build; null to create build_service_account_id with the roles Google's build-custom-sa page lists."
  type        = string
  default     = null
}

variable "build_service_account_id" {
  description = "Account id of the build service account created when build_service_account is null."
  type        = string
  default     = "formcall-build"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.build_service_account_id))
    error_message = "build_service_account_id: 6-30 lower-case letters, digits and dashes, starting with a letter."
  }
}

variable "source_dir" {
  description = "Directory holding main.py, formcall_webhook/ and requirements.txt; null for the repository root this module sits in."
  type        = string
  default     = null
}

variable "source_excludes" {
  description = "Paths and glob patterns (relative to source_dir) left out of the uploaded archive: what .gcloudignore leaves out of a gcloud deploy, and local tool directories."
  type        = list(string)
  default = [
    # As in .gcloudignore (tests/test_infra.py keeps the two in step):
    ".gcloudignore", ".git", ".gitignore", ".venv", ".ci", ".env", ".env.*", ".github", "build", ".terraform",
    "**/__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", ".coverage*", "htmlcov", "tests", "docs",
    "examples", "infra", "bench", "Makefile", "pyproject.toml", "requirements-dev.txt", "README*.md",
    "formcall_webhook/simulator*",
    # Local tools and scratch, never needed at run time:
    ".venv-checkov", "**/*.pyc", "**/.terraform",
  ]
}

variable "source_bucket_name" {
  description = "Name of the bucket the source archive is uploaded to; null for \"<project_id>-<function_name>-source\"."
  type        = string
  default     = null
}

variable "labels" {
  description = "Labels put on every resource that takes them."
  type        = map(string)
  default     = {}
}

variable "enable_apis" {
  description = "Enable the APIs the function needs (never disabled on destroy)."
  type        = bool
  default     = true
}

# The function's settings ----------------------------------------------------------------------

variable "popup_uuid" {
  description = "FORMCALL_POPUP_UUID: the FormCall popup for zero-config and for routes without popup_uuid; null to leave it unset."
  type        = string
  default     = null

  validation {
    condition     = var.popup_uuid == null || can(regex("^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$", var.popup_uuid))
    error_message = "popup_uuid must be a UUID such as e5c98214-d0f6-11e1-8c30-001d09ef4a24."
  }
}

variable "config_path" {
  description = "FORMCALL_CONFIG: path of the TOML config inside the uploaded source (e.g. formcall.toml); null for formcall.toml beside main.py when present, else zero-config. Check it first: python -m formcall_webhook check FILE."
  type        = string
  default     = null

  validation {
    condition     = var.config_path == null || can(regex("^[^,]+\\.toml$", var.config_path))
    error_message = "config_path must name a .toml file."
  }
}

variable "default_phone_region" {
  description = "FORMCALL_DEFAULT_REGION: region code for numbers written without +country code."
  type        = string
  default     = "CL"

  validation {
    condition     = can(regex("^[A-Z]{2}$", var.default_phone_region))
    error_message = "default_phone_region must be a two-letter region code such as CL."
  }
}

variable "store_url" {
  description = "FORMCALL_STORE_URL when enable_redis is false: firestore:// (the default: the database below, shared, serverless, no network), memory:// (one instance's own memory; no sweeper is deployed) or a redis:// URL without a password. With enable_redis the module sets it."
  type        = string
  default     = "firestore://"

  validation {
    condition     = can(regex("^(memory://|firestore://|redis://[^@,]*|rediss://[^@,]*)$", var.store_url))
    error_message = "store_url must be firestore://, memory:// or redis://HOST:PORT/DB without a password (the database is firestore_database; put a password in a secret)."
  }
}

variable "firestore_database" {
  description = "Firestore database (native mode) for the leads, dedupe claims and rate counters, when store_url is firestore://."
  type        = string
  default     = "(default)"
}

variable "firestore_location" {
  description = "Where the Firestore database is created (it cannot move later)."
  type        = string
  default     = "southamerica-west1"

  validation {
    condition     = var.enable_redis || var.store_url != "firestore://" || contains(local.locations.firestore, var.firestore_location)
    error_message = "Firestore is not offered in firestore_location ${var.firestore_location} (Google's list, read ${local.locations_read_on}: https://docs.cloud.google.com/firestore/native/docs/locations)."
  }
}

variable "create_firestore_database" {
  description = "Create the Firestore database; false when it exists already (the TTL policies, index and grant are still made)."
  type        = bool
  default     = true
}

variable "environment_variables" {
  description = "More plain environment variables (e.g. FORMCALL_LOG_LEVEL). Never secrets: use extra_secrets."
  type        = map(string)
  default     = {}

  validation {
    condition = length(setintersection(keys(var.environment_variables), [
      "FORMCALL_SECURITY_TOKEN", "FORMCALL_SECURITY_TOKEN_SECRET", "FORMCALL_STORE_URL", "FORMCALL_POPUP_UUID",
      "FORMCALL_CONFIG", "FORMCALL_DEFAULT_REGION", "THREADS", "GOOGLE_CLOUD_PROJECT", "FORMCALL_SWEEP_SECONDS",
    ])) == 0
    error_message = "environment_variables must not set what the module sets (token, store URL, popup, config, region, THREADS, GOOGLE_CLOUD_PROJECT) nor FORMCALL_SWEEP_SECONDS (Cloud Scheduler runs the sweep)."
  }
}

# Secrets ----------------------------------------------------------------------------------------

variable "token_secret_id" {
  description = "Secret Manager secret holding the FormCall token. The module creates it empty; add the value out of band: gcloud secrets versions add formcall-token --data-file=-"
  type        = string
  default     = "formcall-token"

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,255}$", var.token_secret_id))
    error_message = "token_secret_id must be a secret id (letters, digits, _ and -)."
  }
}

variable "token_secret_version" {
  description = "The token's secret version the function reads, pinned (a number): a rotation takes effect when this changes and Terraform redeploys, never silently."
  type        = string

  validation {
    condition     = can(regex("^[1-9][0-9]*$", var.token_secret_version))
    error_message = "token_secret_version must be a version number such as \"1\" (not \"latest\": the version is pinned)."
  }
}

variable "extra_secrets" {
  description = "More secrets for the function, keyed by environment variable (e.g. HUBSPOT_APP_SECRET): existing secret ids in project_id with a pinned version. The service account gets secretAccessor on each."
  type = map(object({
    secret  = string
    version = string
  }))
  default = {}

  validation {
    condition = alltrue([
      for name, s in var.extra_secrets :
      can(regex("^[A-Z_][A-Z0-9_]*$", name)) && name != "FORMCALL_SECURITY_TOKEN" && name != "FORMCALL_STORE_URL" &&
      can(regex("^[A-Za-z0-9_-]{1,255}$", s.secret)) && can(regex("^[1-9][0-9]*$", s.version))
    ])
    error_message = "extra_secrets: keys are environment variable names (not FORMCALL_SECURITY_TOKEN or FORMCALL_STORE_URL), secrets are secret ids, versions are numbers."
  }
}

# Scaling and limits -----------------------------------------------------------------------------

variable "max_instances" {
  description = "Most instances at once: with concurrency, caps calls in flight, so a flood of bot submissions cannot become a flood of calls and cost."
  type        = number
  default     = 10

  validation {
    condition     = var.max_instances >= 1 && floor(var.max_instances) == var.max_instances
    error_message = "max_instances must be a whole number >= 1."
  }
}

variable "min_instances" {
  description = "Instances kept warm: 0 scales to zero (a webhook tolerates a cold start; idle instances cost)."
  type        = number
  default     = 0

  validation {
    condition     = var.min_instances >= 0 && floor(var.min_instances) == var.min_instances
    error_message = "min_instances must be a whole number >= 0."
  }
}

variable "concurrency" {
  description = "Requests one instance serves at once: the function mostly waits on FormCall (I/O). More than 1 needs available_cpu >= 1."
  type        = number
  default     = 16

  validation {
    condition     = var.concurrency >= 1 && var.concurrency <= 1000 && floor(var.concurrency) == var.concurrency
    error_message = "concurrency must be a whole number from 1 to 1000."
  }
}

variable "available_cpu" {
  description = "vCPUs per instance. 2nd gen requires at least 1 for concurrency > 1."
  type        = string
  default     = "1"

  validation {
    condition     = can(tonumber(var.available_cpu)) && tonumber(var.available_cpu) > 0
    error_message = "available_cpu must be a number of vCPUs such as \"1\"."
  }
}

variable "available_memory" {
  description = "Memory per instance: a parsed config, a connection pool and bodies of 64 KiB at most fit in 256Mi."
  type        = string
  default     = "256Mi"

  validation {
    condition     = can(regex("^[0-9]+(k|M|G|Ki|Mi|Gi)$", var.available_memory))
    error_message = "available_memory must be a size such as 256Mi or 1Gi."
  }
}

variable "timeout_seconds" {
  description = "Request timeout. Must exceed FormCall's timeout_seconds (8) twice (one retry after a token refetch) plus Secret Manager and margin."
  type        = number
  default     = 30

  validation {
    condition     = var.timeout_seconds >= 1 && var.timeout_seconds <= 3600
    error_message = "timeout_seconds must be from 1 to 3600."
  }
}

# Access -----------------------------------------------------------------------------------------

variable "public" {
  description = "Let anyone invoke the function (roles/run.invoker for allUsers). True is the normal case: HubSpot, Zapier and browsers cannot send Google identity tokens, and the function protects its routes itself (auth, signatures, honeypot, captcha, rate limits). False: only callers with run.invoker."
  type        = bool
  default     = true
}

variable "invoker_iam_disabled" {
  description = "Public without an allUsers binding, for organisations whose policy (iam.allowedPolicyMemberDomains) refuses allUsers: Cloud Run's invoker check is turned off on the webhook instead. google_cloudfunctions2_function has no such field (provider v7.21.0), so the webhook is then a google_cloud_run_v2_service built from the same source (build_config), with invoker_iam_disabled = true; the sweeper stays a private function."
  type        = bool
  default     = false

  validation {
    condition     = !var.invoker_iam_disabled || var.public
    error_message = "invoker_iam_disabled makes the webhook public: it needs public = true (false means private, only callers with run.invoker)."
  }
}

# Memorystore ------------------------------------------------------------------------------------

variable "enable_redis" {
  description = "Create a Memorystore for Redis instance (STANDARD_HA, AUTH, TLS) reached by Direct VPC egress, and point FORMCALL_STORE_URL at it: for high volume. Firestore (the default) needs no network."
  type        = bool
  default     = false
}

variable "network" {
  description = "VPC network (name or self link) for Memorystore and the functions' Direct VPC egress, when enable_redis."
  type        = string
  default     = "default"
}

variable "subnetwork" {
  description = "Subnet in network, in region, the functions' Direct VPC egress takes addresses from (a /26 or larger leaves room to scale), when enable_redis."
  type        = string
  default     = "default"
}

variable "redis_memory_size_gb" {
  description = "Memorystore size in GiB (dedupe keys are tiny: 1 is plenty)."
  type        = number
  default     = 1
}

variable "redis_version" {
  description = "Memorystore Redis version."
  type        = string
  default     = "REDIS_7_2"
}

variable "redis_maintenance_day" {
  description = "Weekly maintenance day of Memorystore (MONDAY ... SUNDAY); with STANDARD_HA a failover, not a flush."
  type        = string
  default     = "SUNDAY"

  validation {
    condition     = contains(["MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY", "SUNDAY"], var.redis_maintenance_day)
    error_message = "redis_maintenance_day must be a day name such as SUNDAY."
  }
}

variable "redis_maintenance_hour" {
  description = "Hour (UTC, 0-23) the weekly maintenance window starts."
  type        = number
  default     = 7

  validation {
    condition     = var.redis_maintenance_hour >= 0 && var.redis_maintenance_hour <= 23 && floor(var.redis_maintenance_hour) == var.redis_maintenance_hour
    error_message = "redis_maintenance_hour must be a whole hour from 0 to 23."
  }
}

# Monitoring -------------------------------------------------------------------------------------

variable "enable_monitoring" {
  description = "Create the log-based metrics, alert policies and dashboard of infra/monitoring/ (the same files deploy.sh --monitoring uses)."
  type        = bool
  default     = true
}

variable "alert_emails" {
  description = "Email addresses the alert policies notify (one notification channel each); empty: the policies exist but notify no one."
  type        = list(string)
  default     = []
}

variable "scheduled_alert_share" {
  description = "Alert when more than this share of the answered leads were scheduled instead of called (FormCall down)."
  type        = number
  default     = 0.5
}

variable "error_alert_share" {
  description = "Alert when more than this share of the webhook's answers are 5xx."
  type        = number
  default     = 0.05
}
