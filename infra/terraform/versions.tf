terraform {
  # 1.9: variable validations that refer to other variables and locals (the locations table); 1.5:
  # check blocks.
  required_version = ">= 1.9"

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
