variable "name" {
  description = "Name stem (project-environment)."
  type        = string
}

variable "location" {
  description = "Azure region."
  type        = string
}

variable "resource_group_name" {
  description = "Resource group of the cluster."
  type        = string
}

variable "tenant_id" {
  description = "Entra ID tenant for cluster authentication and workload identity."
  type        = string
}

variable "subnet_id" {
  description = "Subnet of the node pools."
  type        = string
}

variable "api_authorized_cidrs" {
  description = "Public CIDRs allowed to reach the Kubernetes API server (operators, CI). Must not be empty: an empty list would open the API to the internet."
  type        = list(string)

  validation {
    condition     = length(var.api_authorized_cidrs) > 0 && alltrue([for c in var.api_authorized_cidrs : can(cidrnetmask(c)) && !startswith(c, "0.0.0.0/")])
    error_message = "The api_authorized_cidrs must hold at least one IPv4 CIDR and no 0.0.0.0/x."
  }
}

variable "pod_cidr" {
  description = "Overlay pod CIDR (not routed in the VNet; must not overlap it)."
  type        = string
  default     = "192.168.0.0/16"

  validation {
    condition     = can(cidrnetmask(var.pod_cidr))
    error_message = "The pod_cidr must be an IPv4 CIDR."
  }
}

variable "service_cidr" {
  description = "Kubernetes service CIDR (must not overlap the VNet)."
  type        = string
  default     = "172.16.0.0/16"

  validation {
    condition     = can(cidrnetmask(var.service_cidr))
    error_message = "The service_cidr must be an IPv4 CIDR."
  }
}

variable "log_analytics_workspace_id" {
  description = "Workspace for Container Insights and control-plane logs."
  type        = string
}

variable "kubernetes_version" {
  description = "Kubernetes minor version."
  type        = string
}

variable "sku_tier" {
  description = "Free, Standard (uptime SLA) or Premium."
  type        = string
  default     = "Standard"

  validation {
    condition     = contains(["Free", "Standard", "Premium"], var.sku_tier)
    error_message = "The sku_tier must be Free, Standard or Premium."
  }
}

variable "system_vm_size" {
  description = "VM size of the system node pool (needs a temp disk >= 64 GiB for the ephemeral OS disk)."
  type        = string
}

variable "system_node_count" {
  description = "Nodes in the system pool."
  type        = number
}

variable "flink_vm_size" {
  description = "VM size of the Flink node pool (needs a temp disk >= 128 GiB for the ephemeral OS disk)."
  type        = string
}

variable "flink_min_nodes" {
  description = "Autoscaler minimum of the Flink pool."
  type        = number
}

variable "flink_max_nodes" {
  description = "Autoscaler maximum of the Flink pool."
  type        = number
}

variable "admin_group_object_ids" {
  description = "Entra ID groups with cluster-admin."
  type        = list(string)
  default     = []
}

variable "acr_id" {
  description = "Registry the nodes pull images from (AcrPull for the kubelet identity)."
  type        = string
}

variable "flink_namespace" {
  description = "Namespace of the Flink jobs (the operator watches it)."
  type        = string
  default     = "flink"
}

variable "flink_service_account" {
  description = "Service account of the Flink pods, federated with the workload identity."
  type        = string
  default     = "flink"
}

variable "flux_git" {
  description = "Git source of terraform/k8s/flink for the Flux extension; null: no GitOps."
  type = object({
    url    = string
    branch = optional(string, "main")
    path   = optional(string, "./terraform/k8s/flink")
  })
  default = null
}

variable "flux_substitutions" {
  description = "Values substituted into the Flux-reconciled manifests ($${VAR} placeholders). Not secrets: ids, host names, URIs."
  type        = map(string)
  default     = {}
}

variable "tags" {
  description = "Tags for every taggable resource."
  type        = map(string)
}
