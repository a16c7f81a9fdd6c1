# formcall-webhook on Google Cloud: the same deployment as infra/deploy.sh. The public webhook and the
# private sweeper (two Cloud Functions 2nd gen from one source), the Cloud Scheduler job that calls the
# sweeper every minute, the Firestore database they share, and monitoring from infra/monitoring/.

locals {
  source_dir = coalesce(var.source_dir, abspath("${path.module}/../.."))
  # Bucket names are at most 63 characters and end with a letter or digit.
  bucket_name = coalesce(var.source_bucket_name, trimsuffix(substr("${var.project_id}-${var.function_name}-source", 0, 63), "-"))
  labels      = merge({ app = "formcall-webhook" }, var.labels)

  # The sweep job's own location: Cloud Scheduler is not offered in every functions region (not in
  # Santiago); locations.tf.json maps each one to itself or to the nearest region that has it.
  scheduler_region = coalesce(var.scheduler_region, lookup(local.scheduler_nearest, var.region, var.region))

  use_firestore = !var.enable_redis && var.store_url == "firestore://"
  # memory:// is one instance's own memory: no other process could sweep its leads.
  deploy_sweeper = var.enable_redis || var.store_url != "memory://"

  apis = toset(concat(
    [
      "cloudfunctions.googleapis.com",
      "run.googleapis.com",
      "cloudbuild.googleapis.com",
      "artifactregistry.googleapis.com",
      "secretmanager.googleapis.com",
      "iam.googleapis.com",
      "storage.googleapis.com",
    ],
    local.use_firestore ? ["firestore.googleapis.com"] : [],
    local.deploy_sweeper ? ["cloudscheduler.googleapis.com"] : [],
    var.enable_redis ? ["redis.googleapis.com", "compute.googleapis.com"] : [],
    var.enable_monitoring ? ["monitoring.googleapis.com", "logging.googleapis.com"] : [],
  ))

  # Memorystore's instance name is at most 40 characters.
  redis_name = "${trimsuffix(substr(var.function_name, 0, 34), "-")}-store"
  # The instance's CA certificates (all of them: a rotation adds one before the old expires), mounted
  # as one file the Redis client verifies the server with.
  redis_ca_dir  = "/etc/secrets/redis"
  redis_ca_file = "ca.pem"

  build_service_account = coalesce(var.build_service_account, try(google_service_account.build[0].id, null))
  # What Cloud Build needs to build a function as a user-specified account, as Google's build-account
  # page lists (run/docs/configuring/services/build-service-account): build logs, the image in Artifact
  # Registry, and Storage Object Admin to read the function's source and store build images.
  build_roles = toset(["roles/logging.logWriter", "roles/artifactregistry.writer", "roles/storage.objectAdmin"])

  # Plain settings only; everything secret goes through Secret Manager below. The sweeper gets the
  # same, but THREADS. FORMCALL_SWEEP_SECONDS stays unset: Cloud Scheduler runs the sweep.
  environment_variables = merge(
    var.environment_variables,
    {
      FORMCALL_DEFAULT_REGION = var.default_phone_region
      # Log lines link to their request's trace (projects/P/traces/T) without the metadata server.
      GOOGLE_CLOUD_PROJECT = var.project_id
      # The API adds it to every 2nd gen function; stating it avoids a permanent diff.
      LOG_EXECUTION_ID = "true"
    },
    var.popup_uuid == null ? {} : { FORMCALL_POPUP_UUID = var.popup_uuid },
    var.config_path == null ? {} : { FORMCALL_CONFIG = var.config_path },
    # With Memorystore the URL carries the AUTH string, so it is a secret (see store_url below).
    var.enable_redis ? {} : {
      FORMCALL_STORE_URL = local.use_firestore ? "firestore://${var.project_id}/${var.firestore_database}" : var.store_url
    },
  )

  # Each extra secret once, however many variables read it.
  extra_secret_ids = toset([for s in values(var.extra_secrets) : s.secret])

  # The two functions' common settings.
  functions = merge(
    {
      webhook = {
        name        = var.function_name
        entry_point = "formcall_webhook"
        description = "Turns web-form and CRM webhooks into FormCall phone calls."
        concurrency = var.concurrency
        max         = var.max_instances
        min         = var.min_instances
        timeout     = var.timeout_seconds
      }
    },
    local.deploy_sweeper ? {
      sweep = {
        name        = var.sweep_function_name
        entry_point = "formcall_sweep"
        description = "Delivers the formcall-webhook leads kept for later; called by Cloud Scheduler."
        concurrency = 1
        max         = 2
        min         = 0
        timeout     = 90
      }
    } : {},
  )
}

resource "google_project_service" "apis" {
  for_each = var.enable_apis ? local.apis : toset([])

  project = var.project_id
  service = each.value
  # Other things in the project may use these APIs: destroying this module never turns them off.
  disable_on_destroy = false
}

# The runtime identity --------------------------------------------------------------------------

# Dedicated: secretAccessor on its own secrets below, and with Firestore roles/datastore.user.
resource "google_service_account" "runtime" {
  project      = var.project_id
  account_id   = var.service_account_id
  display_name = "formcall-webhook runtime"
  description  = "Runs ${var.function_name} and ${var.sweep_function_name}; reads only their own secrets."
}

# Since mid-2024 a new project's default build account may lack what a function build needs, or be
# disabled by policy: builds run as this one.
# IAM is eventually consistent: the provider (v7.21.0, resource_google_service_account.go) polls a new
# account until three reads in a row find it and then waits 10 s more, before anything grants it a role.
resource "google_service_account" "build" {
  count = var.build_service_account == null ? 1 : 0

  project      = var.project_id
  account_id   = var.build_service_account_id
  display_name = "formcall-webhook build"
  description  = "Builds ${var.function_name} and ${var.sweep_function_name} (Cloud Build)."
}

resource "google_project_iam_member" "build" {
  for_each = var.build_service_account == null ? local.build_roles : toset([])

  project = var.project_id
  role    = each.value
  member  = google_service_account.build[0].member
}

# Firestore -------------------------------------------------------------------------------------

resource "google_firestore_database" "store" {
  count = local.use_firestore && var.create_firestore_database ? 1 : 0

  project     = var.project_id
  name        = var.firestore_database
  location_id = var.firestore_location
  type        = "FIRESTORE_NATIVE"
  # Leads are personal data kept keep_days: point-in-time recovery would keep deleted ones 7 more days.
  point_in_time_recovery_enablement = "POINT_IN_TIME_RECOVERY_DISABLED"
  delete_protection_state           = "DELETE_PROTECTION_ENABLED"
  deletion_policy                   = "ABANDON"

  depends_on = [google_project_service.apis]
}

# Every record carries expires_at; Firestore deletes it after that, at no query cost.
resource "google_firestore_field" "ttl" {
  for_each = local.use_firestore ? toset(["formcall_claims", "formcall_leads"]) : toset([])

  project    = var.project_id
  database   = var.firestore_database
  collection = each.value
  field      = "expires_at"

  ttl_config {}
  # An empty index_config disables the field's single-field indexes: nothing queries expires_at, and
  # an index on a time-ordered field caps its writes at Firestore's documented 500 a second.
  index_config {}

  depends_on = [google_firestore_database.store]
}

# Single-field index exemptions (an empty index_config disables the field's indexes). Nothing queries
# claims by a field: at a campaign's burst (100 leads/s, about 600 claim writes and deletes a second) an
# index on their time-ordered `expires` would pass Firestore's documented 500 writes/s for such fields.
# The leads' `json` is the whole record, a large string no query reads by value. expires_at is exempted
# by its TTL field above. deploy.sh makes the same exemptions.
resource "google_firestore_field" "exempt" {
  for_each = local.use_firestore ? toset(["formcall_claims/value", "formcall_claims/expires", "formcall_leads/json"]) : toset([])

  project    = var.project_id
  database   = var.firestore_database
  collection = split("/", each.value)[0]
  field      = split("/", each.value)[1]

  index_config {}

  depends_on = [google_firestore_database.store]
}

# The one composite index the store needs (leads by state, oldest first). The sweep's due_at order is a
# single-field index Firestore makes itself.
resource "google_firestore_index" "leads_by_state" {
  count = local.use_firestore ? 1 : 0

  project    = var.project_id
  database   = var.firestore_database
  collection = "formcall_leads"

  fields {
    field_path = "state"
    order      = "ASCENDING"
  }
  fields {
    field_path = "received_at"
    order      = "ASCENDING"
  }

  depends_on = [google_firestore_database.store]
}

# Read and write documents, no admin. Project-wide: a role on one database alone is not offered.
resource "google_project_iam_member" "runtime_datastore" {
  count = local.use_firestore ? 1 : 0

  project = var.project_id
  role    = "roles/datastore.user"
  member  = google_service_account.runtime.member
}

# Secrets ---------------------------------------------------------------------------------------

# The FormCall token. Only the secret is created here: its value never passes through Terraform
# (no google_secret_manager_secret_version, nothing in variables or state). Add it out of band:
#   gcloud secrets versions add formcall-token --project PROJECT --data-file=-
# then set token_secret_version to the version printed.
resource "google_secret_manager_secret" "token" {
  project   = var.project_id
  secret_id = var.token_secret_id
  labels    = local.labels

  replication {
    auto {}
  }

  depends_on = [google_project_service.apis]
}

# On the secret itself, never on the project: the function can read this secret and no other.
resource "google_secret_manager_secret_iam_member" "token" {
  project   = var.project_id
  secret_id = google_secret_manager_secret.token.secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = google_service_account.runtime.member
}

# Extra secrets (HubSpot app secret, Zapier token, ...) exist already; access to each, one by one.
resource "google_secret_manager_secret_iam_member" "extra" {
  for_each = local.extra_secret_ids

  project   = var.project_id
  secret_id = each.value
  role      = "roles/secretmanager.secretAccessor"
  member    = google_service_account.runtime.member
}

# Source ----------------------------------------------------------------------------------------

# The upload gcloud would make: the repository less what .gcloudignore leaves out.
data "archive_file" "source" {
  type        = "zip"
  source_dir  = local.source_dir
  excludes    = var.source_excludes
  output_path = "${path.root}/.terraform/tmp/${var.function_name}-source.zip"
  # Same bytes on every machine, so the md5 (and the object name) changes only with the code.
  output_file_mode = "0644"
}

resource "google_storage_bucket" "source" {
  #checkov:skip=CKV_GCP_62:Holds only deploy archives, read by Cloud Functions' build; admin and data access are in Cloud Audit Logs, and a usage-log bucket would cost more than it tells.
  project  = var.project_id
  name     = local.bucket_name
  location = var.region
  labels   = local.labels

  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false

  versioning {
    enabled = true
  }

  # Archives are named by their content's md5, so a new archive is a new object: none is ever
  # replaced, and a rule on noncurrent versions alone would never fire. Live archives go after 30 days
  # (the build copies the source it uses; Terraform uploads the current one again if it is gone), and
  # anything deleted or overwritten after 7 more.
  lifecycle_rule {
    condition {
      age        = 30
      with_state = "LIVE"
    }
    action {
      type = "Delete"
    }
  }
  lifecycle_rule {
    condition {
      days_since_noncurrent_time = 7
      with_state                 = "ARCHIVED"
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [google_project_service.apis]
}

resource "google_storage_bucket_object" "source" {
  # Named by the archive's md5: a code change is a new object, which redeploys the function.
  name   = "${var.function_name}/source-${data.archive_file.source.output_md5}.zip"
  bucket = google_storage_bucket.source.name
  source = data.archive_file.source.output_path
}

# Memorystore (optional) -------------------------------------------------------------------------

resource "google_redis_instance" "store" {
  count = var.enable_redis ? 1 : 0

  project      = var.project_id
  region       = var.region
  name         = local.redis_name
  display_name = "formcall-webhook leads, dedupe and rate limits"
  # STANDARD_HA: a replica in another zone takes over on failure and during maintenance. A BASIC
  # instance is flushed then, and would forget every dedupe claim: a resend would ring twice.
  tier           = "STANDARD_HA"
  memory_size_gb = var.redis_memory_size_gb
  redis_version  = var.redis_version
  labels         = local.labels

  authorized_network      = var.network
  connect_mode            = "DIRECT_PEERING"
  auth_enabled            = true
  transit_encryption_mode = "SERVER_AUTHENTICATION"

  maintenance_policy {
    weekly_maintenance_window {
      day = var.redis_maintenance_day
      start_time {
        hours   = var.redis_maintenance_hour
        minutes = 0
      }
    }
  }

  depends_on = [google_project_service.apis]
}

# FORMCALL_STORE_URL with the AUTH string: generated by Memorystore (not from a variable), kept in
# Secret Manager so it is not readable in the function's settings.
resource "google_secret_manager_secret" "store_url" {
  count = var.enable_redis ? 1 : 0

  project   = var.project_id
  secret_id = "${var.function_name}-store-url"
  labels    = local.labels

  replication {
    auto {}
  }

  depends_on = [google_project_service.apis]
}

resource "google_secret_manager_secret_version" "store_url" {
  count = var.enable_redis ? 1 : 0

  secret = google_secret_manager_secret.store_url[0].id
  # TLS to the instance (port 6378), verified against the instance's own CA (mounted below); the
  # certificate does not name the IP address the client dials, hence no hostname check.
  secret_data = format(
    "rediss://:%s@%s:%d/0?ssl_ca_certs=%s&ssl_check_hostname=false",
    urlencode(google_redis_instance.store[0].auth_string),
    google_redis_instance.store[0].host,
    google_redis_instance.store[0].port,
    urlencode("${local.redis_ca_dir}/${local.redis_ca_file}"),
  )
}

resource "google_secret_manager_secret" "redis_ca" {
  count = var.enable_redis ? 1 : 0

  project   = var.project_id
  secret_id = "${var.function_name}-redis-ca"
  labels    = local.labels

  replication {
    auto {}
  }

  depends_on = [google_project_service.apis]
}

resource "google_secret_manager_secret_version" "redis_ca" {
  count = var.enable_redis ? 1 : 0

  secret = google_secret_manager_secret.redis_ca[0].id
  # Every server CA: during a CA rotation the instance lists the new one before it serves with it.
  secret_data = join("\n", [for ca in google_redis_instance.store[0].server_ca_certs : trimspace(ca.cert)])
}

resource "google_secret_manager_secret_iam_member" "store_url" {
  count = var.enable_redis ? 1 : 0

  project   = var.project_id
  secret_id = google_secret_manager_secret.store_url[0].secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = google_service_account.runtime.member
}

resource "google_secret_manager_secret_iam_member" "redis_ca" {
  count = var.enable_redis ? 1 : 0

  project   = var.project_id
  secret_id = google_secret_manager_secret.redis_ca[0].secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = google_service_account.runtime.member
}

# The functions ---------------------------------------------------------------------------------

# The webhook (public) and the sweeper (private), from the same source, environment and secrets.
resource "google_cloudfunctions2_function" "function" {
  #checkov:skip=CKV_GCP_124:Ingress ALLOW_ALL is the point: webhooks come from HubSpot, Zapier and browsers on the internet; each route authenticates requests itself (signatures, tokens, honeypot, captcha, rate limits). The sweeper takes only OIDC-authenticated calls (no allUsers).
  # With invoker_iam_disabled the webhook is a Cloud Run service instead (webhook_run.tf).
  for_each = { for key, fn in local.functions : key => fn if !(key == "webhook" && var.invoker_iam_disabled) }

  project     = var.project_id
  location    = var.region
  name        = each.value.name
  description = each.value.description
  labels      = local.labels

  build_config {
    runtime         = "python312"
    entry_point     = each.value.entry_point
    service_account = local.build_service_account

    source {
      storage_source {
        bucket = google_storage_bucket.source.name
        object = google_storage_bucket_object.source.name
      }
    }
  }

  service_config {
    service_account_email = google_service_account.runtime.email

    # Caps the bill and FormCall's load: about max_instances x concurrency calls in flight (Cloud Run
    # may briefly run more instances than the maximum during a surge: a loose bound, not a hard one).
    max_instance_count = each.value.max
    # Scale to zero: a webhook tolerates a cold start, idle instances cost.
    min_instance_count = each.value.min
    # I/O-bound on FormCall, so one instance serves several requests at once (2nd gen only).
    max_instance_request_concurrency = each.value.concurrency
    # 2nd gen needs at least 1 vCPU for concurrency > 1.
    available_cpu    = var.available_cpu
    available_memory = var.available_memory
    # Webhook: FormCall's 8 s twice (a retry after a token refetch), Secret Manager, and margin.
    # Sweeper: one bounded pass, inside the scheduler's attempt deadline.
    timeout_seconds = each.value.timeout

    # Webhooks arrive from HubSpot, Zapier and browsers on the internet.
    ingress_settings               = "ALLOW_ALL"
    all_traffic_on_latest_revision = true

    # functions-framework serves with THREADS gunicorn threads (default 4 x CPUs): more than the
    # concurrency (Cloud Run's cap on requests in flight), so requests never queue inside an instance
    # Cloud Run thinks has room and stalled uploads leave threads for the rest: 2 x concurrency + 4.
    environment_variables = merge(local.environment_variables, { THREADS = tostring(each.value.concurrency * 2 + 4) })

    # Pinned: a rotated token reaches the function when token_secret_version changes and Terraform
    # redeploys, never silently at some later cold start.
    secret_environment_variables {
      key        = "FORMCALL_SECURITY_TOKEN"
      project_id = var.project_id
      secret     = google_secret_manager_secret.token.secret_id
      version    = var.token_secret_version
    }

    dynamic "secret_environment_variables" {
      for_each = var.extra_secrets
      content {
        key        = secret_environment_variables.key
        project_id = var.project_id
        secret     = secret_environment_variables.value.secret
        version    = secret_environment_variables.value.version
      }
    }

    dynamic "secret_environment_variables" {
      for_each = var.enable_redis ? [1] : []
      content {
        key        = "FORMCALL_STORE_URL"
        project_id = var.project_id
        secret     = google_secret_manager_secret.store_url[0].secret_id
        version    = google_secret_manager_secret_version.store_url[0].version
      }
    }

    dynamic "secret_volumes" {
      for_each = var.enable_redis ? [1] : []
      content {
        mount_path = local.redis_ca_dir
        project_id = var.project_id
        secret     = google_secret_manager_secret.redis_ca[0].secret_id
        versions {
          version = google_secret_manager_secret_version.redis_ca[0].version
          path    = local.redis_ca_file
        }
      }
    }

    # Direct VPC egress to Memorystore: no connector VMs to run and pay for. Only private ranges go
    # through the VPC; FormCall is reached directly.
    dynamic "direct_vpc_network_interface" {
      for_each = var.enable_redis ? [1] : []
      content {
        network    = var.network
        subnetwork = var.subnetwork
      }
    }
    direct_vpc_egress = var.enable_redis ? "VPC_EGRESS_PRIVATE_RANGES_ONLY" : null
  }

  lifecycle {
    precondition {
      condition     = each.value.concurrency == 1 || tonumber(var.available_cpu) >= 1
      error_message = "concurrency > 1 needs available_cpu >= 1 (a 2nd gen rule)."
    }
    precondition {
      condition     = var.min_instances <= var.max_instances
      error_message = "min_instances must not exceed max_instances."
    }
    precondition {
      condition = var.config_path == null || (
        fileexists("${local.source_dir}/${coalesce(var.config_path, "-")}") &&
        !anytrue([for e in var.source_excludes : coalesce(var.config_path, "-") == e || startswith(coalesce(var.config_path, "-"), "${e}/")])
      )
      error_message = "config_path must name a file inside source_dir that source_excludes keeps in the upload (examples/ is left out: copy the file to formcall.toml)."
    }
    precondition {
      condition     = !var.enable_redis || var.store_url == "firestore://"
      error_message = "enable_redis sets FORMCALL_STORE_URL itself: leave store_url at its default."
    }
  }

  # The first revision must be able to read its secrets, its database, and be built.
  depends_on = [
    google_secret_manager_secret_iam_member.token,
    google_secret_manager_secret_iam_member.extra,
    google_secret_manager_secret_iam_member.store_url,
    google_secret_manager_secret_iam_member.redis_ca,
    google_project_iam_member.build,
    google_project_iam_member.runtime_datastore,
    google_firestore_database.store,
    google_project_service.apis,
  ]
}

moved {
  from = google_cloudfunctions2_function.webhook
  to   = google_cloudfunctions2_function.function["webhook"]
}

# Public (the normal case): senders cannot send Google identity tokens; the function authenticates
# each route itself. Without it only principals with roles/run.invoker may call (or, with
# invoker_iam_disabled, anyone, where an organisation policy refuses allUsers).
resource "google_cloud_run_service_iam_member" "public_invoker" {
  #checkov:skip=CKV_GCP_102:Public invocation is intended (var.public): HubSpot, Zapier and browser form posts cannot send Google identity tokens; the function's own per-route auth, honeypot, captcha and rate limits protect it.
  count = var.public && !var.invoker_iam_disabled ? 1 : 0

  project  = var.project_id
  location = var.region
  service  = google_cloudfunctions2_function.function["webhook"].name
  role     = "roles/run.invoker"
  member   = "allUsers"
}

# The sweeper's schedule ----------------------------------------------------------------------------

# Cloud Scheduler calls the sweeper as this account; it may invoke the sweeper and nothing else.
resource "google_service_account" "scheduler" {
  count = local.deploy_sweeper ? 1 : 0

  project      = var.project_id
  account_id   = var.scheduler_service_account_id
  display_name = "formcall-webhook scheduler"
  description  = "Calls ${var.sweep_function_name} every minute with an OIDC token."
}

# On the sweeper's Cloud Run service alone, never project-wide.
resource "google_cloud_run_service_iam_member" "sweep_invoker" {
  count = local.deploy_sweeper ? 1 : 0

  project  = var.project_id
  location = var.region
  service  = google_cloudfunctions2_function.function["sweep"].name
  role     = "roles/run.invoker"
  member   = google_service_account.scheduler[0].member
}

resource "google_cloud_scheduler_job" "sweep" {
  count = local.deploy_sweeper ? 1 : 0

  project     = var.project_id
  region      = local.scheduler_region
  name        = var.sweep_function_name
  description = "formcall-webhook: deliver the leads kept for later."
  schedule    = "* * * * *"
  time_zone   = "Etc/UTC"
  # A little longer than the sweeper's own timeout (90 s).
  attempt_deadline = "100s"

  # No retries: the next minute's run is the retry.
  retry_config {
    retry_count = 0
  }

  http_target {
    http_method = "POST"
    uri         = google_cloudfunctions2_function.function["sweep"].service_config[0].uri

    oidc_token {
      service_account_email = google_service_account.scheduler[0].email
      audience              = google_cloudfunctions2_function.function["sweep"].service_config[0].uri
    }
  }

  depends_on = [google_cloud_run_service_iam_member.sweep_invoker, google_project_service.apis]
}
