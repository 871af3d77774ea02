variable "name" {
  description = "Registry name (5-50 alphanumerics, globally unique)."
  type        = string

  validation {
    condition     = can(regex("^[a-zA-Z0-9]{5,50}$", var.name))
    error_message = "Registry names are 5-50 letters and digits."
  }
}

variable "location" {
  description = "Azure region."
  type        = string
}

variable "resource_group_name" {
  description = "Resource group of the registry."
  type        = string
}

variable "sku" {
  description = "Basic, Standard or Premium (private endpoint, retention, trust and quarantine policies need Premium)."
  type        = string
  default     = "Premium"

  validation {
    condition     = contains(["Basic", "Standard", "Premium"], var.sku)
    error_message = "The sku must be Basic, Standard or Premium."
  }
}

variable "zone_redundancy_enabled" {
  description = "Zone-redundant registry (Premium only)."
  type        = bool
  default     = true
}

variable "public_network_access_enabled" {
  description = "Whether the public endpoint is reachable (needed by GitHub-hosted CI runners to push)."
  type        = bool
  default     = true
}

variable "private_endpoint_subnet_id" {
  description = "Subnet for the registry's private endpoint (Premium only)."
  type        = string
}

variable "private_dns_zone_id" {
  description = "privatelink.azurecr.io zone ID."
  type        = string
}

variable "log_analytics_workspace_id" {
  description = "Workspace for the registry's logs."
  type        = string
}

variable "tags" {
  description = "Tags for every taggable resource."
  type        = map(string)
}
