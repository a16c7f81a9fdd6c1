# The webhook as a Cloud Run service, when invoker_iam_disabled: public in an organisation that refuses
# allUsers. Cloud Run's invoker check is off on the service itself (invoker_iam_disabled), set in the
# same resource that deploys every revision, so no revision ever serves with the check on.
# google_cloudfunctions2_function has no field for it; google_cloud_run_v2_service has, and builds the
# same source archive as a function (build_config: function_target, base_image), so the webhook runs
# the same code with the same settings as in main.tf. Checked against the provider's schema
# (tests/test_terraform_schema.py); not applied on this machine.

locals {
  # Google's Python 3.12 base image for functions built by Cloud Run, in the service's region.
  webhook_base_image = "${var.region}-docker.pkg.dev/serverless-runtimes/google-22-full/runtimes/python312"
  webhook_image      = "${var.region}-docker.pkg.dev/${var.project_id}/${var.function_name}-images/${var.function_name}"
  # Each extra secret once, in the service's env form.
  webhook_secret_env = merge(
    { FORMCALL_SECURITY_TOKEN = { secret = google_secret_manager_secret.token.secret_id, version = var.token_secret_version } },
    var.extra_secrets,
    var.enable_redis ? { FORMCALL_STORE_URL = { secret = "${var.function_name}-store-url", version = try(google_secret_manager_secret_version.store_url[0].version, "1") } } : {},
  )
}

# Where the build puts the webhook's image (gcloud run deploy --source makes its own repository).
resource "google_artifact_registry_repository" "webhook" {
  count = var.invoker_iam_disabled ? 1 : 0

  project       = var.project_id
  location      = var.region
  repository_id = "${var.function_name}-images"
  format        = "DOCKER"
  description   = "Images of ${var.function_name} built from its source (Cloud Run build_config)."
  labels        = local.labels

  depends_on = [google_project_service.apis]
}

resource "google_cloud_run_v2_service" "webhook" {
  count = var.invoker_iam_disabled ? 1 : 0

  project             = var.project_id
  location            = var.region
  name                = var.function_name
  description         = "Turns web-form and CRM webhooks into FormCall phone calls."
  labels              = local.labels
  ingress             = "INGRESS_TRAFFIC_ALL"
  deletion_protection = false
  # Public without allUsers: Cloud Run does not check run.invoker on this service.
  invoker_iam_disabled = true

  build_config {
    source_location = "gs://${google_storage_bucket.source.name}/${google_storage_bucket_object.source.name}"
    function_target = "formcall_webhook"
    base_image      = local.webhook_base_image
    image_uri       = local.webhook_image
    service_account = local.build_service_account
  }

  template {
    service_account                  = google_service_account.runtime.email
    max_instance_request_concurrency = var.concurrency
    timeout                          = "${var.timeout_seconds}s"

    scaling {
      min_instance_count = var.min_instances
      max_instance_count = var.max_instances
    }

    containers {
      image          = local.webhook_image
      base_image_uri = local.webhook_base_image

      resources {
        limits = {
          cpu    = var.available_cpu
          memory = var.available_memory
        }
      }

      dynamic "env" {
        for_each = merge(local.environment_variables, { THREADS = tostring(var.concurrency * 2 + 4) })
        content {
          name  = env.key
          value = env.value
        }
      }

      dynamic "env" {
        for_each = local.webhook_secret_env
        content {
          name = env.key
          value_source {
            secret_key_ref {
              secret  = env.value.secret
              version = env.value.version
            }
          }
        }
      }

      dynamic "volume_mounts" {
        for_each = var.enable_redis ? [1] : []
        content {
          name       = "redis-ca"
          mount_path = local.redis_ca_dir
        }
      }
    }

    dynamic "volumes" {
      for_each = var.enable_redis ? [1] : []
      content {
        name = "redis-ca"
        secret {
          secret = google_secret_manager_secret.redis_ca[0].secret_id
          items {
            version = google_secret_manager_secret_version.redis_ca[0].version
            path    = local.redis_ca_file
          }
        }
      }
    }

    # Direct VPC egress to Memorystore, as the functions have it.
    dynamic "vpc_access" {
      for_each = var.enable_redis ? [1] : []
      content {
        egress = "PRIVATE_RANGES_ONLY"
        network_interfaces {
          network    = var.network
          subnetwork = var.subnetwork
        }
      }
    }
  }

  lifecycle {
    # The build sets the image it made; the source object's name (its md5) is what redeploys.
    ignore_changes = [template[0].containers[0].image]
  }

  depends_on = [
    google_secret_manager_secret_iam_member.token,
    google_secret_manager_secret_iam_member.extra,
    google_secret_manager_secret_iam_member.store_url,
    google_secret_manager_secret_iam_member.redis_ca,
    google_project_iam_member.build,
    google_project_iam_member.runtime_datastore,
    google_firestore_database.store,
    google_artifact_registry_repository.webhook,
    google_project_service.apis,
  ]
}
