variable "project_id" {
  description = "The Google Cloud project to deploy into."
  type        = string
}

variable "region" {
  description = "Region of the cluster, the database, the bucket and the registry."
  type        = string
  default     = "europe-west1"
}

variable "name" {
  description = "Prefix of every resource's name."
  type        = string
  default     = "leanfarm"
}

variable "master_authorized_cidr" {
  description = "The only network allowed to reach the cluster's control plane (an operator VPN or bastion)."
  type        = string
}

variable "worker_machine_type" {
  description = "Machine of the worker pool: 3 workers of 4 slots x 8 GiB fit a 16-vCPU, 128 GB node (docs/deploy.md, Sizing)."
  type        = string
  default     = "n2-highmem-16"
}

variable "worker_max_nodes" {
  description = "Most worker nodes per zone: 500 worker pods at 3 per node need 167 nodes across the region's zones."
  type        = number
  default     = 60
}

variable "enable_gvisor_node_pool" {
  description = "Also create a GKE Sandbox (gVisor) node pool for the optional outer wall (deploy/k8s/components/gke-sandbox)."
  type        = bool
  default     = true
}

variable "database_tier" {
  description = "Cloud SQL machine tier."
  type        = string
  default     = "db-custom-4-16384"
}

variable "artifact_prefix" {
  description = "Prefix of the farm's artifacts in the bucket (LEAN_FARM_ARTIFACTS=gs://BUCKET/PREFIX)."
  type        = string
  default     = "leanfarm"
}

variable "artifact_backstop_days" {
  description = "Days after which the bucket deletes any artifact under the prefix: a backstop, longer than the farm's own retention (90 days for proofs, 14 for other attempts)."
  type        = number
  default     = 120
}

variable "rbac_security_group" {
  description = "Google Group that holds the groups used in Kubernetes RBAC (gke-security-groups@YOUR-DOMAIN)."
  type        = string
}
