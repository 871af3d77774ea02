variable "name" {
  description = "Key Vault name (3-24 characters, globally unique)."
  type        = string

  validation {
    condition     = can(regex("^[a-zA-Z][a-zA-Z0-9-]{1,22}[a-zA-Z0-9]$", var.name))
    error_message = "Key Vault names are 3-24 letters, digits and dashes, starting with a letter."
  }
}

variable "location" {
  description = "Azure region."
  type        = string
}

variable "resource_group_name" {
  description = "Resource group of the vault."
  type        = string
}

variable "tenant_id" {
  description = "Entra ID tenant of the vault."
  type        = string
}

variable "deployer_object_id" {
  description = "Object ID of the principal running Terraform; gets Key Vault Secrets Officer to write the generated secrets."
  type        = string
}

variable "admin_cidrs" {
  description = "CIDRs allowed through the vault firewall (operators, CI). Empty: public network access disabled."
  type        = list(string)

  validation {
    condition     = alltrue([for c in var.admin_cidrs : can(cidrnetmask(c))])
    error_message = "The admin_cidrs must be IPv4 CIDRs."
  }
}

variable "private_endpoint_subnet_id" {
  description = "Subnet for the vault's private endpoint."
  type        = string
}

variable "private_dns_zone_id" {
  description = "privatelink.vaultcore.azure.net zone ID."
  type        = string
}

variable "log_analytics_workspace_id" {
  description = "Workspace for the vault's audit logs."
  type        = string
}

variable "tags" {
  description = "Tags for every taggable resource."
  type        = map(string)
}
