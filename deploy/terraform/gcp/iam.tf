# One Google service account per role, each with only what the role needs,
# bound to its Kubernetes service account through Workload Identity. No
# google_service_account_key anywhere: nothing holds a long-lived key.

# GKE nodes: write logs and metrics, pull images. Nothing else.
resource "google_service_account" "nodes" {
  account_id   = "${var.name}-nodes"
  display_name = "Lean Farm GKE nodes"
}

resource "google_project_iam_member" "nodes" {
  for_each = toset([
    "roles/logging.logWriter",
    "roles/monitoring.metricWriter",
    "roles/monitoring.viewer",
    "roles/stackdriver.resourceMetadata.writer",
  ])
  project = var.project_id
  role    = each.value
  member  = "serviceAccount:${google_service_account.nodes.email}"
}

resource "google_artifact_registry_repository_iam_member" "nodes_pull" {
  repository = google_artifact_registry_repository.images.name
  location   = var.region
  role       = "roles/artifactregistry.reader"
  member     = "serviceAccount:${google_service_account.nodes.email}"
}

# API replicas: read and write artifacts in the one bucket (delete too, for
# retention), read the store URL, connect to Cloud SQL.
resource "google_service_account" "api" {
  account_id   = "${var.name}-api"
  display_name = "Lean Farm API replicas"
}

resource "google_storage_bucket_iam_member" "api_artifacts" {
  bucket = google_storage_bucket.artifacts.name
  role   = "roles/storage.objectUser"
  member = "serviceAccount:${google_service_account.api.email}"
}

# Migrations Job: the store only.
resource "google_service_account" "migrations" {
  account_id   = "${var.name}-migrations"
  display_name = "Lean Farm store migrations"
}

resource "google_project_iam_member" "sql_clients" {
  for_each = {
    api        = google_service_account.api.email
    migrations = google_service_account.migrations.email
  }
  project = var.project_id
  role    = "roles/cloudsql.client"
  member  = "serviceAccount:${each.value}"
}

resource "google_secret_manager_secret_iam_member" "store_url_readers" {
  for_each = {
    api        = google_service_account.api.email
    migrations = google_service_account.migrations.email
  }
  secret_id = google_secret_manager_secret.store_url.id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${each.value}"
}

# Workers: no Google permission at all. They hold only a worker token for
# the farm's API; the account exists so that the binding is explicit and
# a worker pod never falls back to the node's identity.
resource "google_service_account" "worker" {
  account_id   = "${var.name}-worker"
  display_name = "Lean Farm workers (no permissions)"
}

# Image publisher for CI (through Workload Identity Federation from the CI
# provider, set up outside this module): push to the one repository.
resource "google_service_account" "publisher" {
  account_id   = "${var.name}-publisher"
  display_name = "Lean Farm image publisher"
}

resource "google_artifact_registry_repository_iam_member" "publisher_push" {
  repository = google_artifact_registry_repository.images.name
  location   = var.region
  role       = "roles/artifactregistry.writer"
  member     = "serviceAccount:${google_service_account.publisher.email}"
}

# Workload Identity: Kubernetes service account leanfarm/NAME acts as the
# Google account of its role (deploy/k8s/base/serviceaccounts.yaml).
resource "google_service_account_iam_member" "workload_identity" {
  for_each = {
    "leanfarm-api"        = google_service_account.api.name
    "leanfarm-migrations" = google_service_account.migrations.name
    "leanfarm-worker"     = google_service_account.worker.name
  }
  service_account_id = each.value
  role               = "roles/iam.workloadIdentityUser"
  member             = "serviceAccount:${var.project_id}.svc.id.goog[leanfarm/${each.key}]"
}
