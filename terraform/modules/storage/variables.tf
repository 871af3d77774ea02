variable "name" {
  description = "Storage account name (3-24 lower-case letters and digits, globally unique)."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9]{3,24}$", var.name))
    error_message = "Storage account names are 3-24 lower-case letters and digits."
  }
}

variable "location" {
  description = "Azure region."
  type        = string
}

variable "resource_group_name" {
  description = "Resource group of the account."
  type        = string
}

variable "replication_type" {
  description = "LRS, ZRS, GRS, GZRS, RAGRS or RAGZRS."
  type        = string

  validation {
    condition     = contains(["LRS", "ZRS", "GRS", "GZRS", "RAGRS", "RAGZRS"], var.replication_type)
    error_message = "The replication_type must be one of LRS, ZRS, GRS, GZRS, RAGRS, RAGZRS."
  }
}

variable "soft_delete_days" {
  description = "Soft-delete retention of blobs and containers."
  type        = number
  default     = 14

  validation {
    condition     = var.soft_delete_days >= 7 && var.soft_delete_days <= 365
    error_message = "The soft_delete_days must be between 7 and 365."
  }
}

variable "private_endpoint_subnet_id" {
  description = "Subnet for the account's private endpoints."
  type        = string
}

variable "private_dns_zone_ids" {
  description = "Private DNS zone IDs keyed by storage sub-resource (blob, dfs); one private endpoint each."
  type        = map(string)

  validation {
    condition     = length(setsubtract(keys(var.private_dns_zone_ids), ["blob", "dfs", "queue", "table", "file", "web"])) == 0
    error_message = "The private_dns_zone_ids keys must be storage sub-resources (blob, dfs, ...)."
  }
}

variable "log_analytics_workspace_id" {
  description = "Workspace for the account's logs and metrics."
  type        = string
}

variable "tags" {
  description = "Tags for every taggable resource."
  type        = map(string)
}
