# PostgreSQL on Cloud SQL: private IP only, TLS required, backups with
# point-in-time recovery, regional (failover replica in another zone).
resource "google_sql_database_instance" "store" {
  # checkov:skip=CKV_GCP_79: the major version is chosen, not floated: a major upgrade of the store is a planned operation (docs/deploy.md), after the store suite passes on it
  # checkov:skip=CKV_GCP_6: ssl_mode ENCRYPTED_ONLY refuses every unencrypted connection; the check wants client certificates, which Workload Identity and the store password replace
  name                = "${var.name}-store"
  database_version    = "POSTGRES_17"
  region              = var.region
  deletion_protection = true
  depends_on          = [google_service_networking_connection.private_services]

  settings {
    tier              = var.database_tier
    availability_type = "REGIONAL"
    disk_autoresize   = true
    ip_configuration {
      ipv4_enabled    = false
      private_network = google_compute_network.farm.id
      ssl_mode        = "ENCRYPTED_ONLY"
    }
    backup_configuration {
      enabled                        = true
      point_in_time_recovery_enabled = true
    }
    database_flags {
      name  = "log_hostname"
      value = "on"
    }
    database_flags {
      name  = "log_duration"
      value = "on"
    }
    database_flags {
      name  = "log_checkpoints"
      value = "on"
    }
    database_flags {
      name  = "log_connections"
      value = "on"
    }
    database_flags {
      name  = "log_disconnections"
      value = "on"
    }
    database_flags {
      name  = "log_lock_waits"
      value = "on"
    }
    database_flags {
      name  = "log_min_messages"
      value = "error"
    }
    database_flags {
      name  = "log_min_error_statement"
      value = "error"
    }
    database_flags {
      name  = "log_temp_files"
      value = "0"
    }
    database_flags {
      name  = "log_min_duration_statement"
      value = "-1"
    }
    database_flags {
      name  = "log_statement"
      value = "ddl"
    }
    database_flags {
      name  = "cloudsql.enable_pgaudit"
      value = "on"
    }
    # The queue claims jobs with FOR UPDATE SKIP LOCKED from every worker
    # lease: API replicas x pool size, with room for migrations.
    database_flags {
      name  = "max_connections"
      value = "400"
    }
  }
}

resource "google_sql_database" "leanfarm" {
  name     = "leanfarm"
  instance = google_sql_database_instance.store.name
}

# The password is generated here and kept in Secret Manager only (and in
# Terraform's state, which must live in a bucket with restricted access).
resource "random_password" "store" {
  length  = 40
  special = false
}

resource "google_sql_user" "leanfarm" {
  name     = "leanfarm"
  instance = google_sql_database_instance.store.name
  password = random_password.store.result
}

resource "google_secret_manager_secret" "store_url" {
  secret_id = "${var.name}-store-url"
  replication {
    auto {}
  }
}

resource "google_secret_manager_secret_version" "store_url" {
  secret      = google_secret_manager_secret.store_url.id
  secret_data = "postgres://leanfarm:${random_password.store.result}@${google_sql_database_instance.store.private_ip_address}:5432/leanfarm"
}
