variable "name" {
  description = "Cache name (globally unique)."
  type        = string
}

variable "location" {
  description = "Azure region."
  type        = string
}

variable "resource_group_name" {
  description = "Resource group of the cache."
  type        = string
}

variable "sku_name" {
  description = "Basic, Standard or Premium."
  type        = string

  validation {
    condition     = contains(["Basic", "Standard", "Premium"], var.sku_name)
    error_message = "The sku_name must be Basic, Standard or Premium."
  }
}

variable "capacity" {
  description = "Cache size within the family (C0-C6, P1-P5)."
  type        = number

  validation {
    condition     = var.capacity >= 0 && var.capacity <= 6
    error_message = "The capacity must be between 0 and 6."
  }
}

variable "key_vault_id" {
  description = "Key Vault that receives the redis-url secret."
  type        = string
}

variable "secret_expiration_date" {
  description = "Expiry (RFC 3339) of the Key Vault secret; moves forward with each rotation."
  type        = string
}

variable "private_endpoint_subnet_id" {
  description = "Subnet for the cache's private endpoint."
  type        = string
}

variable "private_dns_zone_id" {
  description = "privatelink.redis.cache.windows.net zone ID."
  type        = string
}

variable "log_analytics_workspace_id" {
  description = "Workspace for the cache's logs and metrics."
  type        = string
}

variable "tags" {
  description = "Tags for every taggable resource."
  type        = map(string)
}
