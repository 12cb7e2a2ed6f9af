# Artifacts: one bucket, private, uniform access, versioned so a deletion
# can be undone for a week. The farm's retention deletes artifacts (proofs
# after 90 days, other attempts after 14); the lifecycle rule is a backstop.
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

  # The farm deletes each job's row and artifacts together (90 days after
  # a proof, 14 after any other end: its retention settings). This rule is
  # only a backstop under the farm's prefix, longer than that retention.
  lifecycle_rule {
    condition {
      age            = var.artifact_backstop_days
      matches_prefix = ["${var.artifact_prefix}/"]
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
