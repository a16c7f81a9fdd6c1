# formcall-webhook as a Cloud Functions (2nd gen) function: the same deployment as infra/deploy.sh.

locals {
  source_dir  = coalesce(var.source_dir, abspath("${path.module}/../.."))
  # Bucket names are at most 63 characters and end with a letter or digit.
  bucket_name = coalesce(var.source_bucket_name, trimsuffix(substr("${var.project_id}-${var.function_name}-source", 0, 63), "-"))
  labels      = merge({ app = "formcall-webhook" }, var.labels)

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
    var.enable_redis ? ["redis.googleapis.com", "vpcaccess.googleapis.com"] : [],
  ))

  # Memorystore names: the connector's is at most 25 characters, the instance's 40.
  connector_name = "${trimsuffix(substr(var.function_name, 0, 20), "-")}-vpc"
  redis_name     = "${trimsuffix(substr(var.function_name, 0, 34), "-")}-store"
  # The instance's CA certificate, mounted as a file the Redis client verifies the server with.
  redis_ca_dir  = "/etc/secrets/redis"
  redis_ca_file = "ca.pem"

  # Plain settings only; everything secret goes through Secret Manager below.
  environment_variables = merge(
    var.environment_variables,
    {
      FORMCALL_DEFAULT_REGION = var.default_phone_region
      # functions-framework serves with THREADS gunicorn threads (default 4 x CPUs): as many as the
      # concurrency, or requests queue inside an instance that Cloud Run thinks has room.
      THREADS = tostring(var.concurrency)
      # The API adds it to every 2nd gen function; stating it avoids a permanent diff.
      LOG_EXECUTION_ID = "true"
    },
    var.popup_uuid == null ? {} : { FORMCALL_POPUP_UUID = var.popup_uuid },
    var.config_path == null ? {} : { FORMCALL_CONFIG = var.config_path },
    # With Memorystore the URL carries the AUTH string, so it is a secret (see store_url below).
    var.enable_redis ? {} : { FORMCALL_STORE_URL = var.store_url },
  )

  # Each extra secret once, however many variables read it.
  extra_secret_ids = toset([for s in values(var.extra_secrets) : s.secret])
}

resource "google_project_service" "apis" {
  for_each = var.enable_apis ? local.apis : toset([])

  project = var.project_id
  service = each.value
  # Other things in the project may use these APIs: destroying this module never turns them off.
  disable_on_destroy = false
}

# The runtime identity --------------------------------------------------------------------------

# Dedicated: it holds no project role, only secretAccessor on the secrets below.
resource "google_service_account" "runtime" {
  project      = var.project_id
  account_id   = var.service_account_id
  display_name = "formcall-webhook runtime"
  description  = "Runs the ${var.function_name} function; reads only its own secrets."
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

  # Objects are named by content, so replaced archives pile up as old versions: keep a few for
  # rollback and delete the rest after 30 days.
  lifecycle_rule {
    condition {
      num_newer_versions         = 3
      days_since_noncurrent_time = 30
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

  project        = var.project_id
  region         = var.region
  name           = local.redis_name
  display_name   = "formcall-webhook dedupe and rate limits"
  tier           = "BASIC"
  memory_size_gb = var.redis_memory_size_gb
  redis_version  = var.redis_version
  labels         = local.labels

  authorized_network      = var.network
  connect_mode            = "DIRECT_PEERING"
  auth_enabled            = true
  transit_encryption_mode = "SERVER_AUTHENTICATION"

  depends_on = [google_project_service.apis]
}

resource "google_vpc_access_connector" "connector" {
  count = var.enable_redis ? 1 : 0

  project       = var.project_id
  region        = var.region
  name          = local.connector_name
  network       = var.network
  ip_cidr_range = var.connector_cidr
  machine_type  = "e2-micro"
  min_instances = 2
  max_instances = 3

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

  secret      = google_secret_manager_secret.redis_ca[0].id
  secret_data = google_redis_instance.store[0].server_ca_certs[0].cert
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

# The function ----------------------------------------------------------------------------------

resource "google_cloudfunctions2_function" "webhook" {
  #checkov:skip=CKV_GCP_124:Ingress ALLOW_ALL is the point: webhooks come from HubSpot, Zapier and browsers on the internet; each route authenticates requests itself (signatures, tokens, honeypot, captcha, rate limits).
  project     = var.project_id
  location    = var.region
  name        = var.function_name
  description = "Turns web-form and CRM webhooks into FormCall phone calls."
  labels      = local.labels

  build_config {
    runtime         = "python312"
    entry_point     = "formcall_webhook"
    service_account = var.build_service_account

    source {
      storage_source {
        bucket = google_storage_bucket.source.name
        object = google_storage_bucket_object.source.name
      }
    }
  }

  service_config {
    service_account_email = google_service_account.runtime.email

    # Caps the bill and FormCall's load: at most max_instances x concurrency calls in flight.
    max_instance_count = var.max_instances
    # Scale to zero: a webhook tolerates a cold start, idle instances cost.
    min_instance_count = var.min_instances
    # I/O-bound on FormCall, so one instance serves several requests at once (2nd gen only).
    max_instance_request_concurrency = var.concurrency
    # 2nd gen needs at least 1 vCPU for concurrency > 1.
    available_cpu    = var.available_cpu
    available_memory = var.available_memory
    # FormCall's 8 s twice (a retry after a token refetch), Secret Manager, and margin.
    timeout_seconds = var.timeout_seconds

    # Webhooks arrive from HubSpot, Zapier and browsers on the internet.
    ingress_settings               = "ALLOW_ALL"
    all_traffic_on_latest_revision = true

    environment_variables = local.environment_variables

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

    # Only private ranges (Memorystore) go through the connector; FormCall is reached directly.
    vpc_connector                 = var.enable_redis ? google_vpc_access_connector.connector[0].id : null
    vpc_connector_egress_settings = var.enable_redis ? "PRIVATE_RANGES_ONLY" : null
  }

  lifecycle {
    precondition {
      condition     = var.concurrency == 1 || tonumber(var.available_cpu) >= 1
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
      condition     = !var.enable_redis || var.store_url == "memory://"
      error_message = "enable_redis sets FORMCALL_STORE_URL itself: leave store_url at memory://."
    }
  }

  # The first revision must be able to read its secrets.
  depends_on = [
    google_secret_manager_secret_iam_member.token,
    google_secret_manager_secret_iam_member.extra,
    google_secret_manager_secret_iam_member.store_url,
    google_secret_manager_secret_iam_member.redis_ca,
    google_project_service.apis,
  ]
}

# Public (the normal case): senders cannot send Google identity tokens; the function authenticates
# each route itself. Without it only principals with roles/run.invoker may call.
resource "google_cloud_run_service_iam_member" "public_invoker" {
  #checkov:skip=CKV_GCP_102:Public invocation is intended (var.public): HubSpot, Zapier and browser form posts cannot send Google identity tokens; the function's own per-route auth, honeypot, captcha and rate limits protect it.
  count = var.public ? 1 : 0

  project  = var.project_id
  location = var.region
  service  = google_cloudfunctions2_function.webhook.name
  role     = "roles/run.invoker"
  member   = "allUsers"
}
