# With Memorystore instead of Firestore: for high volume (FORMCALL_STORE_URL=rediss://..., Direct VPC egress),
# a config file deployed with the source, and a private function (only run.invoker callers).
#
#   cp examples/formcall.toml formcall.toml   # at the repository root, then edit it
#   python -m formcall_webhook check formcall.toml
#   terraform init && terraform apply -target=module.formcall.google_secret_manager_secret.token
#   gcloud secrets versions add formcall-token --project acme-formcall --data-file=-
#   terraform apply

terraform {
  required_version = ">= 1.9"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 7.21"
    }
    archive = {
      source  = "hashicorp/archive"
      version = "~> 2.5"
    }
  }
}

variable "project_id" {
  description = "The project to deploy into."
  type        = string
  default     = "acme-formcall"
}

provider "google" {
  project = var.project_id
  region  = "southamerica-west1"
}

module "formcall" {
  source = "../.."

  project_id  = var.project_id
  config_path = "formcall.toml"

  token_secret_version = "2"
  extra_secrets = {
    HUBSPOT_APP_SECRET = { secret = "hubspot-app-secret", version = "3" }
    ZAPIER_TOKEN       = { secret = "zapier-token", version = "1" }
  }

  public        = false
  enable_redis  = true
  network       = "default"
  subnetwork    = "default"
  max_instances = 20
}

output "function_url" {
  description = "Callers need roles/run.invoker and an identity token (public = false)."
  value       = module.formcall.function_url
}
