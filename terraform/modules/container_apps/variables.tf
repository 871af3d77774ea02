variable "name" {
  description = "Name stem (project-environment)."
  type        = string
}

variable "location" {
  description = "Azure region."
  type        = string
}

variable "resource_group_name" {
  description = "Resource group of the environment and apps."
  type        = string
}

variable "infrastructure_subnet_id" {
  description = "Subnet delegated to Microsoft.App/environments (/27 or larger)."
  type        = string
}

variable "zone_redundancy_enabled" {
  description = "Spread the environment over availability zones."
  type        = bool
  default     = false
}

variable "log_analytics_workspace_id" {
  description = "Workspace receiving the environment's console and system logs."
  type        = string
}

variable "identity_id" {
  description = "User-assigned identity the apps use for Key Vault references, image pulls and Azure SDK calls."
  type        = string
}

variable "identity_client_id" {
  description = "Client ID of that identity (AZURE_CLIENT_ID for DefaultAzureCredential)."
  type        = string
}

variable "registry_server" {
  description = "Login server of the container registry."
  type        = string
}

variable "image" {
  description = "Full image reference (registry/repository:tag) of the platform image."
  type        = string

  validation {
    condition     = !endswith(var.image, ":latest") && length(regexall(":[^/]+$", var.image)) == 1
    error_message = "The image must carry an explicit tag other than latest."
  }
}

variable "commands" {
  description = "Container command per service (the image's entry points)."
  type        = map(list(string))
  default = {
    api      = ["python", "-m", "api"]
    monitor  = ["python", "-m", "monitoring"]
    rollback = ["python", "-m", "rollback"]
  }

  validation {
    condition     = length(setsubtract(["api", "monitor", "rollback"], keys(var.commands))) == 0
    error_message = "The commands needs entries for api, monitor and rollback."
  }
}

variable "apps" {
  description = "Per-service sizing, replicas, revision suffix and traffic weights (see the root variable `apps`)."
  type = map(object({
    cpu             = number
    memory          = string
    min_replicas    = number
    max_replicas    = number
    revision_suffix = optional(string)
    traffic = list(object({
      percentage      = number
      latest_revision = optional(bool, false)
      revision_suffix = optional(string)
      label           = optional(string)
    }))
  }))

  validation {
    condition     = alltrue([for a in values(var.apps) : sum([for t in a.traffic : t.percentage]) == 100])
    error_message = "Each app's traffic percentages must add up to 100."
  }
}

variable "api_http_concurrency" {
  description = "Concurrent requests per API replica before scaling out."
  type        = number
}

variable "api_allowed_cidrs" {
  description = "CIDRs allowed to reach the API ingress; empty: no restriction."
  type        = list(string)
  default     = []
}

variable "key_vault_secret_ids" {
  description = "Versionless Key Vault secret IDs by app secret name (redis-url, postgres-dsn, mlflow-backend-uri, eventhubs-connection-string, jwt-secret)."
  type        = map(string)

  validation {
    condition     = length(setsubtract(["redis-url", "postgres-dsn", "mlflow-backend-uri", "eventhubs-connection-string", "jwt-secret"], keys(var.key_vault_secret_ids))) == 0
    error_message = "The key_vault_secret_ids must contain redis-url, postgres-dsn, mlflow-backend-uri, eventhubs-connection-string and jwt-secret."
  }

  validation {
    condition     = alltrue([for id in values(var.key_vault_secret_ids) : can(regex("^https://[^/]+\\.vault\\.azure\\.net/secrets/[^/]+/?$", id))])
    error_message = "The key_vault_secret_ids must be versionless Key Vault secret IDs (https://<vault>.vault.azure.net/secrets/<name>)."
  }
}

variable "broker_host" {
  description = "Kafka endpoint host (RECSYS_BROKER_HOST)."
  type        = string
}

variable "broker_port" {
  description = "Kafka endpoint port (RECSYS_BROKER_PORT)."
  type        = number
}

variable "clickstream_topic" {
  description = "RECSYS_CLICKSTREAM_TOPIC."
  type        = string
}

variable "dead_letter_topic" {
  description = "RECSYS_DEAD_LETTER_TOPIC."
  type        = string
}

variable "topic_partitions" {
  description = "RECSYS_TOPIC_PARTITIONS."
  type        = number
}

variable "consumer_group" {
  description = "RECSYS_CONSUMER_GROUP."
  type        = string
}

variable "feast_project" {
  description = "RECSYS_FEAST_PROJECT."
  type        = string
}

variable "registered_model_name" {
  description = "RECSYS_REGISTERED_MODEL_NAME."
  type        = string
}

variable "mlflow_artifacts_uri" {
  description = "abfss:// destination of MLflow artifacts (served through the MLflow server)."
  type        = string
}

variable "tags" {
  description = "Tags for every taggable resource."
  type        = map(string)
}
