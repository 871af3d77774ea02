variable "name" {
  description = "Namespace name (6-50 characters, globally unique)."
  type        = string

  validation {
    condition     = can(regex("^[a-zA-Z][a-zA-Z0-9-]{4,48}[a-zA-Z0-9]$", var.name))
    error_message = "Event Hubs namespace names are 6-50 letters, digits and dashes, starting with a letter."
  }
}

variable "location" {
  description = "Azure region."
  type        = string
}

variable "resource_group_name" {
  description = "Resource group of the namespace."
  type        = string
}

variable "sku" {
  description = "Standard or Premium (Basic has no Kafka endpoint)."
  type        = string

  validation {
    condition     = contains(["Standard", "Premium"], var.sku)
    error_message = "The sku must be Standard or Premium."
  }
}

variable "capacity" {
  description = "Throughput units (Standard) or processing units (Premium)."
  type        = number

  validation {
    condition     = var.capacity >= 1 && var.capacity <= 40
    error_message = "The capacity must be between 1 and 40."
  }
}

variable "max_throughput_units" {
  description = "Auto-inflate ceiling (Standard only, 0 disables)."
  type        = number
  default     = 0
}

variable "partition_count" {
  description = "Partitions of each hub (the Kafka topic's partitions)."
  type        = number

  validation {
    condition     = var.partition_count >= 1 && var.partition_count <= 32
    error_message = "The partition_count must be between 1 and 32."
  }
}

variable "message_retention_days" {
  description = "Retention of events in days (Standard allows up to 7)."
  type        = number
  default     = 7

  validation {
    condition     = var.message_retention_days >= 1 && var.message_retention_days <= 7
    error_message = "The message_retention_days must be between 1 and 7."
  }
}

variable "clickstream_hub" {
  description = "Hub (Kafka topic) of the click events (RECSYS_CLICKSTREAM_TOPIC)."
  type        = string
  default     = "clickstream"
}

variable "dead_letter_hub" {
  description = "Hub (Kafka topic) of rejected events (RECSYS_DEAD_LETTER_TOPIC)."
  type        = string
  default     = "clickstream-dlq"
}

variable "consumer_group" {
  description = "Consumer group of the platform's readers (RECSYS_CONSUMER_GROUP)."
  type        = string
}

variable "key_vault_id" {
  description = "Key Vault that receives the connection string."
  type        = string
}

variable "secret_expiration_date" {
  description = "Expiry (RFC 3339) of the Key Vault secret."
  type        = string
}

variable "private_endpoint_subnet_id" {
  description = "Subnet for the namespace's private endpoint."
  type        = string
}

variable "private_dns_zone_id" {
  description = "privatelink.servicebus.windows.net zone ID."
  type        = string
}

variable "log_analytics_workspace_id" {
  description = "Workspace for the namespace's logs and metrics."
  type        = string
}

variable "tags" {
  description = "Tags for every taggable resource."
  type        = map(string)
}
