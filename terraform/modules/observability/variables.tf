variable "name" {
  description = "Name stem (project-environment)."
  type        = string
}

variable "location" {
  description = "Azure region."
  type        = string
}

variable "resource_group_name" {
  description = "Resource group of the workspace."
  type        = string
}

variable "retention_days" {
  description = "Retention of the workspace in days."
  type        = number

  validation {
    condition     = var.retention_days >= 30 && var.retention_days <= 730
    error_message = "The retention_days must be between 30 and 730."
  }
}

variable "daily_quota_gb" {
  description = "Daily ingestion cap in GB, -1 for none."
  type        = number
}

variable "tags" {
  description = "Tags for every taggable resource."
  type        = map(string)
}
