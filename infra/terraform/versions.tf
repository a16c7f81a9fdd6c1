terraform {
  # 1.5: check blocks and the validation/precondition features used here.
  required_version = ">= 1.5"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 7.21"
    }
    # 2.5 and later: `excludes` accepts glob patterns (**/__pycache__).
    archive = {
      source  = "hashicorp/archive"
      version = "~> 2.5"
    }
  }
}
