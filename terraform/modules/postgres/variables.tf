variable "name" {
  description = "Server name (3-63 lower-case letters, digits and dashes, globally unique)."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$", var.name))
    error_message = "Server names are 3-63 lower-case letters, digits and dashes."
  }
}

variable "location" {
  description = "Azure region."
  type        = string
}

variable "resource_group_name" {
  description = "Resource group of the server."
  type        = string
}

variable "tenant_id" {
  description = "Entra ID tenant for Entra authentication (null: the provider's tenant)."
  type        = string
  default     = null
}

variable "sku_name" {
  description = "Compute SKU, e.g. B_Standard_B1ms, GP_Standard_D2ds_v5."
  type        = string

  validation {
    condition     = can(regex("^(B|GP|MO)_Standard_[A-Za-z0-9_]+$", var.sku_name))
    error_message = "The sku_name must look like B_Standard_B1ms or GP_Standard_D2ds_v5."
  }
}

variable "postgres_version" {
  description = "Major PostgreSQL version."
  type        = string

  validation {
    condition     = contains(["14", "15", "16", "17"], var.postgres_version)
    error_message = "The postgres_version must be 14, 15, 16 or 17."
  }
}

variable "storage_mb" {
  description = "Storage size in MB."
  type        = number
}

variable "backup_retention_days" {
  description = "Point-in-time-restore window in days (7-35)."
  type        = number

  validation {
    condition     = var.backup_retention_days >= 7 && var.backup_retention_days <= 35
    error_message = "The backup_retention_days must be between 7 and 35."
  }
}

variable "geo_redundant_backup" {
  description = "Store backups geo-redundantly."
  type        = bool
}

variable "high_availability" {
  description = "Zone-redundant standby (not on Burstable SKUs)."
  type        = bool
}

variable "administrator_login" {
  description = "Administrator user name."
  type        = string
  default     = "recsysadmin"

  validation {
    condition     = can(regex("^[a-z][a-z0-9_]{0,62}$", var.administrator_login)) && !contains(["admin", "administrator", "root", "postgres", "azure_superuser", "azure_pg_admin", "guest", "public"], var.administrator_login)
    error_message = "The administrator_login must be a lower-case identifier and not a reserved name."
  }
}

variable "rotation_trigger" {
  description = "Any value; when it changes the administrator password is regenerated (wired to time_rotating)."
  type        = string
}

variable "delegated_subnet_id" {
  description = "Subnet delegated to Microsoft.DBforPostgreSQL/flexibleServers."
  type        = string
}

variable "private_dns_zone_id" {
  description = "Private DNS zone (*.postgres.database.azure.com) linked to the VNet."
  type        = string
}

variable "key_vault_id" {
  description = "Key Vault that receives the DSNs and the password."
  type        = string
}

variable "secret_expiration_date" {
  description = "Expiry (RFC 3339) of the Key Vault secrets."
  type        = string
}

variable "log_analytics_workspace_id" {
  description = "Workspace for the server's logs and metrics."
  type        = string
}

variable "tags" {
  description = "Tags for every taggable resource."
  type        = map(string)
}
