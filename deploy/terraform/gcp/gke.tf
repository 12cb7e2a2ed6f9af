# The cluster: regional, private nodes, Dataplane V2 (enforces the
# NetworkPolicies of deploy/k8s), Workload Identity, shielded nodes.
resource "google_container_cluster" "farm" {
  # checkov:skip=CKV_GCP_12: Dataplane V2 (ADVANCED_DATAPATH) enforces NetworkPolicies itself; the legacy Calico add-on this check looks for must stay off with it
  name     = var.name
  location = var.region

  network         = google_compute_network.farm.id
  subnetwork      = google_compute_subnetwork.nodes.id
  networking_mode = "VPC_NATIVE"
  ip_allocation_policy {
    cluster_secondary_range_name  = "pods"
    services_secondary_range_name = "services"
  }
  datapath_provider = "ADVANCED_DATAPATH"

  private_cluster_config {
    enable_private_nodes    = true
    enable_private_endpoint = false
    master_ipv4_cidr_block  = "172.16.0.0/28"
  }
  master_authorized_networks_config {
    cidr_blocks {
      cidr_block   = var.master_authorized_cidr
      display_name = "operators"
    }
  }

  authenticator_groups_config {
    security_group = var.rbac_security_group
  }
  workload_identity_config {
    workload_pool = "${var.project_id}.svc.id.goog"
  }
  release_channel {
    channel = "REGULAR"
  }
  enable_shielded_nodes       = true
  enable_legacy_abac          = false
  enable_intranode_visibility = true
  binary_authorization {
    evaluation_mode = "PROJECT_SINGLETON_POLICY_ENFORCE"
  }
  master_auth {
    client_certificate_config {
      issue_client_certificate = false
    }
  }
  resource_labels = {
    app = var.name
  }
  deletion_protection = true

  # Node pools are managed below; the default one is removed at creation.
  remove_default_node_pool = true
  initial_node_count       = 1
  node_config {
    service_account = google_service_account.nodes.email
    shielded_instance_config {
      enable_secure_boot          = true
      enable_integrity_monitoring = true
    }
    workload_metadata_config {
      mode = "GKE_METADATA"
    }
  }
}

locals {
  # What every node pool shares: the least-privilege node identity,
  # Container-Optimized OS, shielded boot, the GKE metadata server (pods
  # never see the node's credentials).
  node_oauth_scopes = ["https://www.googleapis.com/auth/cloud-platform"]
}

# API replicas, the migrations Job, monitoring.
resource "google_container_node_pool" "general" {
  name     = "general"
  cluster  = google_container_cluster.farm.id
  location = var.region
  autoscaling {
    min_node_count = 1
    max_node_count = 5
  }
  management {
    auto_repair  = true
    auto_upgrade = true
  }
  node_config {
    machine_type    = "e2-standard-4"
    image_type      = "COS_CONTAINERD"
    service_account = google_service_account.nodes.email
    oauth_scopes    = local.node_oauth_scopes
    labels          = { "leanfarm.dev/role" = "general" }
    metadata        = { "disable-legacy-endpoints" = "true" }
    shielded_instance_config {
      enable_secure_boot          = true
      enable_integrity_monitoring = true
    }
    workload_metadata_config {
      mode = "GKE_METADATA"
    }
  }
}

# Workers: privileged pods that sandbox each REPL themselves (per-REPL
# gVisor, `--sandbox gvisor`). Tainted so nothing else runs beside them.
resource "google_container_node_pool" "workers" {
  name     = "workers"
  cluster  = google_container_cluster.farm.id
  location = var.region
  autoscaling {
    min_node_count = 0
    max_node_count = var.worker_max_nodes
  }
  management {
    auto_repair  = true
    auto_upgrade = true
  }
  node_config {
    machine_type    = var.worker_machine_type
    image_type      = "COS_CONTAINERD"
    disk_size_gb    = 200
    service_account = google_service_account.nodes.email
    oauth_scopes    = local.node_oauth_scopes
    labels          = { "leanfarm.dev/role" = "worker" }
    metadata        = { "disable-legacy-endpoints" = "true" }
    taint {
      key    = "leanfarm.dev/role"
      value  = "worker"
      effect = "NO_SCHEDULE"
    }
    shielded_instance_config {
      enable_secure_boot          = true
      enable_integrity_monitoring = true
    }
    workload_metadata_config {
      mode = "GKE_METADATA"
    }
  }
}

# GKE Sandbox: every pod on these nodes runs on gVisor (RuntimeClass
# `gvisor`). For the optional outer wall; read the caveats in
# deploy/k8s/components/gke-sandbox before moving workers here.
resource "google_container_node_pool" "workers_gvisor" {
  count    = var.enable_gvisor_node_pool ? 1 : 0
  name     = "workers-gvisor"
  cluster  = google_container_cluster.farm.id
  location = var.region
  autoscaling {
    min_node_count = 0
    max_node_count = var.worker_max_nodes
  }
  management {
    auto_repair  = true
    auto_upgrade = true
  }
  node_config {
    machine_type    = var.worker_machine_type
    image_type      = "COS_CONTAINERD"
    disk_size_gb    = 200
    service_account = google_service_account.nodes.email
    oauth_scopes    = local.node_oauth_scopes
    labels          = { "leanfarm.dev/role" = "worker-gvisor" }
    metadata        = { "disable-legacy-endpoints" = "true" }
    sandbox_config {
      sandbox_type = "gvisor"
    }
    taint {
      key    = "leanfarm.dev/role"
      value  = "worker-gvisor"
      effect = "NO_SCHEDULE"
    }
    shielded_instance_config {
      enable_secure_boot          = true
      enable_integrity_monitoring = true
    }
    workload_metadata_config {
      mode = "GKE_METADATA"
    }
  }
}
