# Artifacts: one bucket, private, uniform access, versioned so a deletion
# can be undone for a week. Lifecycle: proofs 90 days, raw attempts 14.
resource "google_storage_bucket" "artifacts" {
  name                        = "${var.project_id}-${var.name}-artifacts"
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false

  versioning {
    enabled = true
  }
  logging {
    log_bucket = google_storage_bucket.access_logs.name
  }

  lifecycle_rule {
    condition {
      age            = var.proof_retention_days
      matches_prefix = ["proofs/"]
    }
    action {
      type = "Delete"
    }
  }
  lifecycle_rule {
    condition {
      age            = var.attempt_retention_days
      matches_prefix = ["attempts/"]
    }
    action {
      type = "Delete"
    }
  }
  # Versions left by overwrites and deletions go after 7 days.
  lifecycle_rule {
    condition {
      days_since_noncurrent_time = 7
    }
    action {
      type = "Delete"
    }
  }
}

# Access logs of the artifacts bucket.
resource "google_storage_bucket" "access_logs" {
  # checkov:skip=CKV_GCP_62: this is the log bucket itself; logging it into itself would loop
  name                        = "${var.project_id}-${var.name}-access-logs"
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  versioning {
    enabled = true
  }
  lifecycle_rule {
    condition {
      age = 365
    }
    action {
      type = "Delete"
    }
  }
}

# Images: leanfarm and leanfarm-worker.
resource "google_artifact_registry_repository" "images" {
  # checkov:skip=CKV_GCP_84: images hold no secret (public code and Mathlib); Google-managed encryption suffices, and a customer key would need a KMS key ring this module does not own
  repository_id = var.name
  location      = var.region
  format        = "DOCKER"
  description   = "Lean Farm images (leanfarm, leanfarm-worker)"
  docker_config {
    immutable_tags = true
  }
}
