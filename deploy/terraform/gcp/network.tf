# A VPC of the farm's own: nodes without public addresses, Google APIs
# reached privately, and a private services range for Cloud SQL.
resource "google_compute_network" "farm" {
  name                    = var.name
  auto_create_subnetworks = false
}

resource "google_compute_subnetwork" "nodes" {
  name                     = "${var.name}-nodes"
  network                  = google_compute_network.farm.id
  region                   = var.region
  ip_cidr_range            = "10.10.0.0/20"
  private_ip_google_access = true

  secondary_ip_range {
    range_name    = "pods"
    ip_cidr_range = "10.20.0.0/14"
  }
  secondary_ip_range {
    range_name    = "services"
    ip_cidr_range = "10.30.0.0/20"
  }

  log_config {
    aggregation_interval = "INTERVAL_5_SEC"
    flow_sampling        = 0.5
    metadata             = "INCLUDE_ALL_METADATA"
  }
}

# Cloud SQL's private IP comes from this range (the k8s NetworkPolicy's
# PostgreSQL CIDR must match the instance's address in it).
resource "google_compute_global_address" "private_services" {
  name          = "${var.name}-private-services"
  purpose       = "VPC_PEERING"
  address_type  = "INTERNAL"
  address       = "10.100.0.0"
  prefix_length = 16
  network       = google_compute_network.farm.id
}

resource "google_service_networking_connection" "private_services" {
  network                 = google_compute_network.farm.id
  service                 = "servicenetworking.googleapis.com"
  reserved_peering_ranges = [google_compute_global_address.private_services.name]
}

# Nodes have no public address: image pulls and Google APIs go through
# Private Google Access, anything else through NAT.
resource "google_compute_router" "farm" {
  name    = var.name
  network = google_compute_network.farm.id
  region  = var.region
}

resource "google_compute_router_nat" "farm" {
  name                               = var.name
  router                             = google_compute_router.farm.name
  region                             = var.region
  nat_ip_allocate_option             = "AUTO_ONLY"
  source_subnetwork_ip_ranges_to_nat = "ALL_SUBNETWORKS_ALL_IP_RANGES"
  log_config {
    enable = true
    filter = "ERRORS_ONLY"
  }
}

# Ingress to the nodes: from inside the VPC and from Google's load
# balancer health checks only; everything else is denied.
resource "google_compute_firewall" "allow_internal" {
  name      = "${var.name}-allow-internal"
  network   = google_compute_network.farm.id
  direction = "INGRESS"
  priority  = 1000
  allow {
    protocol = "tcp"
  }
  allow {
    protocol = "udp"
  }
  allow {
    protocol = "icmp"
  }
  source_ranges = ["10.10.0.0/20", "10.20.0.0/14", "172.16.0.0/28"]
  log_config {
    metadata = "INCLUDE_ALL_METADATA"
  }
}

resource "google_compute_firewall" "allow_health_checks" {
  name      = "${var.name}-allow-health-checks"
  network   = google_compute_network.farm.id
  direction = "INGRESS"
  priority  = 1000
  allow {
    protocol = "tcp"
    ports    = ["8000", "10256"]
  }
  source_ranges = ["35.191.0.0/16", "130.211.0.0/22"]
  log_config {
    metadata = "INCLUDE_ALL_METADATA"
  }
}

resource "google_compute_firewall" "deny_all_ingress" {
  name      = "${var.name}-deny-all-ingress"
  network   = google_compute_network.farm.id
  direction = "INGRESS"
  priority  = 65534
  deny {
    protocol = "all"
  }
  source_ranges = ["0.0.0.0/0"]
  log_config {
    metadata = "INCLUDE_ALL_METADATA"
  }
}
