output "cluster_name" {
  value = google_container_cluster.farm.name
}

output "store_private_ip" {
  description = "Cloud SQL's private address: the PostgreSQL CIDR of deploy/k8s's NetworkPolicy must hold it."
  value       = google_sql_database_instance.store.private_ip_address
}

output "store_url_secret" {
  description = "Secret Manager secret holding the store URL (copy it into the leanfarm-store Kubernetes Secret)."
  value       = google_secret_manager_secret.store_url.secret_id
}

output "artifacts_bucket" {
  value = google_storage_bucket.artifacts.name
}

output "image_repository" {
  value = "${var.region}-docker.pkg.dev/${var.project_id}/${google_artifact_registry_repository.images.repository_id}"
}

output "workload_identity_annotations" {
  description = "iam.gke.io/gcp-service-account annotations for the Kubernetes service accounts."
  value = {
    "leanfarm-api"        = google_service_account.api.email
    "leanfarm-migrations" = google_service_account.migrations.email
    "leanfarm-worker"     = google_service_account.worker.email
  }
}
