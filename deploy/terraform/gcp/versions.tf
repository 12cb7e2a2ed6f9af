# Lean Farm on Google Cloud: a GKE cluster (with a gVisor node pool), Cloud
# SQL for PostgreSQL, a GCS bucket for artifacts with lifecycle rules,
# Artifact Registry, and one service account per role bound through
# Workload Identity. No key of any kind is written to a file: the pods get
# short-lived tokens from the GKE metadata server, and the database
# password is generated into Secret Manager. See docs/deploy.md.
terraform {
  required_version = ">= 1.6"
  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 6.0"
    }
    random = {
      source  = "hashicorp/random"
      version = "~> 3.6"
    }
  }
}

provider "google" {
  project = var.project_id
  region  = var.region
}
