# The smallest real deployment: zero-config (FORMCALL_POPUP_UUID) in Santiago, public, with the
# FormCall token read from Secret Manager at a pinned version.
#
#   terraform init
#   terraform apply -target=module.formcall.google_secret_manager_secret.token   # the empty secret
#   gcloud secrets versions add formcall-token --project acme-formcall --data-file=-  # paste, Ctrl-D
#   terraform apply                                                               # the rest

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

  project_id = var.project_id
  region     = "southamerica-west1"

  popup_uuid           = "e5c98214-d0f6-11e1-8c30-001d09ef4a24"
  default_phone_region = "CL"

  # The version `gcloud secrets versions add` printed; change it (and apply) to roll the token.
  token_secret_version = "1"

  # Secrets for routes that need them, each pinned; the service account may read exactly these.
  extra_secrets = {
    HUBSPOT_APP_SECRET = { secret = "hubspot-app-secret", version = "1" }
  }
}

output "function_url" {
  description = "Where forms and webhooks post."
  value       = module.formcall.function_url
}
