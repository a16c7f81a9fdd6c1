output "function_url" {
  description = "The webhook's run.app URL. Its cloudfunctions.net URL (function_legacy_url) serves it too: paste one of them into HubSpot, Zapier or a form (add /ROUTE for named routes), and use exactly that one as a HubSpot route's auth.public_url."
  value       = var.invoker_iam_disabled ? google_cloud_run_v2_service.webhook[0].uri : google_cloudfunctions2_function.function["webhook"].service_config[0].uri
}

output "function_name" {
  description = "The function's name (also its Cloud Run service's)."
  value       = var.invoker_iam_disabled ? google_cloud_run_v2_service.webhook[0].name : google_cloudfunctions2_function.function["webhook"].name
}

output "service_account_email" {
  description = "The dedicated runtime service account."
  value       = google_service_account.runtime.email
}

output "token_secret_id" {
  description = "The FormCall token's secret (projects/P/secrets/S): add its value with gcloud secrets versions add."
  value       = google_secret_manager_secret.token.id
}

output "source_bucket" {
  description = "The bucket holding the uploaded source archives."
  value       = google_storage_bucket.source.name
}

output "redis_host" {
  description = "Memorystore's private address, when enable_redis (null otherwise)."
  value       = var.enable_redis ? google_redis_instance.store[0].host : null
}

output "function_legacy_url" {
  description = "The webhook's https://REGION-PROJECT.cloudfunctions.net/NAME URL, which serves it as well (null with invoker_iam_disabled: a Cloud Run service has only its run.app URL)."
  value       = var.invoker_iam_disabled ? null : google_cloudfunctions2_function.function["webhook"].url
}

output "sweep_function_name" {
  description = "The private sweeper function, null with memory://."
  value       = local.deploy_sweeper ? google_cloudfunctions2_function.function["sweep"].name : null
}

output "firestore_database" {
  description = "The Firestore database of the leads, null when the store is not Firestore."
  value       = local.use_firestore ? var.firestore_database : null
}

output "dashboard_id" {
  description = "The Cloud Monitoring dashboard, when enable_monitoring."
  value       = var.enable_monitoring ? google_monitoring_dashboard.formcall[0].id : null
}
