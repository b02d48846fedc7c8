terraform {
  # 1.5+: strcontains(), check blocks; data-source postconditions need 1.2+.
  required_version = ">= 1.5.0"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 7.0"
    }
    # >= 3.4 for response_body_base64 (the Apple root is a binary DER file).
    http = {
      source  = "hashicorp/http"
      version = "~> 3.4"
    }
    archive = {
      source  = "hashicorp/archive"
      version = "~> 2.7"
    }
    # Runs scripts/sha256_of_base64.sh at plan time to hash the downloaded certificate's bytes:
    # Terraform's own sha256() hashes the UTF-8 text of a string and cannot hash binary data.
    external = {
      source  = "hashicorp/external"
      version = "~> 2.3"
    }
  }

  # State lives in a GCS bucket given at init time:
  #   terraform init -backend-config="bucket=<state bucket>" -backend-config="prefix=refundguard"
  # The state holds no secrets: the one key (the App Store Server API's) is a Secret Manager secret
  # whose value is added out of band (secrets.tf); Terraform never creates a version of it.
  backend "gcs" {}
}

provider "google" {
  project = var.project_id
  region  = var.region

  default_labels = var.labels
}
