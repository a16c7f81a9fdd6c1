output "function_url" {
  description = "The function's HTTPS URL: point forms and webhooks at it (add /ROUTE for named routes)."
  value       = google_cloudfunctions2_function.webhook.service_config[0].uri
}

output "function_name" {
  description = "The function's name (also its Cloud Run service's)."
  value       = google_cloudfunctions2_function.webhook.name
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
