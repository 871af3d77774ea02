# ---------------------------------------------------------------------------
# Identity of the deployment
# ---------------------------------------------------------------------------

variable "subscription_id" {
  description = "Azure subscription to deploy into."
  type        = string

  validation {
    condition     = can(regex("^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$", var.subscription_id))
    error_message = "The subscription_id must be a GUID."
  }
}

variable "environment" {
  description = "Environment name; part of every resource name and the `environment` tag."
  type        = string

  validation {
    condition     = contains(["dev", "prod"], var.environment)
    error_message = "The environment must be one of: dev, prod."
  }
}

variable "project" {
  description = "Short project name used in resource names (lower-case letters and digits, 2-8 chars)."
  type        = string
  default     = "recsys"

  validation {
    condition     = can(regex("^[a-z][a-z0-9]{1,7}$", var.project))
    error_message = "The project must be 2-8 lower-case letters/digits starting with a letter (it ends up in storage account and Key Vault names)."
  }
}

variable "location" {
  description = "Azure region. Limited to regions where every service used here (Container Apps with workload profiles, PostgreSQL Flexible Server, Event Hubs, AKS, zone redundancy) is available."
  type        = string
  default     = "westeurope"

  validation {
    condition = contains([
      "westeurope", "northeurope", "swedencentral", "germanywestcentral", "francecentral", "uksouth",
      "eastus", "eastus2", "westus2", "westus3", "centralus", "canadacentral",
      "australiaeast", "japaneast", "southeastasia",
    ], var.location)
    error_message = "The location must be one of the supported regions listed in variables.tf."
  }
}

variable "tags" {
  description = "Extra tags merged into the default tags on every taggable resource."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for k, v in var.tags : length(k) <= 512 && length(v) <= 256])
    error_message = "Azure tag names are limited to 512 characters and values to 256."
  }
}

variable "owner" {
  description = "Team or person accountable for the resources (the `owner` tag)."
  type        = string
  default     = "platform-team"

  validation {
    condition     = length(var.owner) > 0 && length(var.owner) <= 256
    error_message = "The owner must be a non-empty tag value of at most 256 characters."
  }
}

variable "cost_center" {
  description = "Cost centre for charge-back (the `cost-center` tag)."
  type        = string
  default     = "recsys"

  validation {
    condition     = length(var.cost_center) > 0 && length(var.cost_center) <= 256
    error_message = "The cost_center must be a non-empty tag value of at most 256 characters."
  }
}

# ---------------------------------------------------------------------------
# Network
# ---------------------------------------------------------------------------

variable "vnet_cidr" {
  description = "Address space of the platform virtual network."
  type        = string
  default     = "10.40.0.0/16"

  validation {
    condition     = can(cidrnetmask(var.vnet_cidr)) && tonumber(split("/", var.vnet_cidr)[1]) <= 20
    error_message = "The vnet_cidr must be an IPv4 CIDR of /20 or larger."
  }
}

variable "subnet_cidrs" {
  description = "Subnets inside vnet_cidr: container_apps (>= /27, delegated to Microsoft.App/environments), aks (>= /24), private_endpoints (>= /28), postgres (>= /28, delegated to PostgreSQL Flexible Server)."
  type = object({
    container_apps    = string
    aks               = string
    private_endpoints = string
    postgres          = string
  })
  default = {
    container_apps    = "10.40.0.0/23"
    aks               = "10.40.4.0/22"
    private_endpoints = "10.40.8.0/24"
    postgres          = "10.40.9.0/27"
  }

  validation {
    condition     = alltrue([for c in values(var.subnet_cidrs) : can(cidrnetmask(c))])
    error_message = "Every subnet CIDR must be a valid IPv4 CIDR."
  }

  validation {
    condition = (
      tonumber(split("/", var.subnet_cidrs.container_apps)[1]) <= 27 &&
      tonumber(split("/", var.subnet_cidrs.aks)[1]) <= 24 &&
      tonumber(split("/", var.subnet_cidrs.private_endpoints)[1]) <= 28 &&
      tonumber(split("/", var.subnet_cidrs.postgres)[1]) <= 28
    )
    error_message = "Subnets too small: container_apps needs /27 or larger, aks /24, private_endpoints /28, postgres /28."
  }
}

variable "admin_cidrs" {
  description = "Public CIDRs (operators, the CI runner) allowed to reach the Key Vault data plane and the AKS API server. Everything else is denied."
  type        = list(string)

  validation {
    condition     = length(var.admin_cidrs) > 0 && alltrue([for c in var.admin_cidrs : can(cidrnetmask(c)) && !startswith(c, "0.0.0.0/")])
    error_message = "The admin_cidrs must hold at least one IPv4 CIDR and must not contain 0.0.0.0/x."
  }
}

variable "api_allowed_cidrs" {
  description = "CIDRs allowed to call the public recommendation API. Empty list: open to the internet (the API authenticates callers itself)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for c in var.api_allowed_cidrs : can(cidrnetmask(c))])
    error_message = "The api_allowed_cidrs must be IPv4 CIDRs."
  }
}

# ---------------------------------------------------------------------------
# Data services
# ---------------------------------------------------------------------------

variable "redis_sku" {
  description = "Azure Cache for Redis SKU: family/capacity are derived (Basic/Standard: C, Premium: P)."
  type = object({
    name     = string
    capacity = number
  })
  default = {
    name     = "Standard"
    capacity = 1
  }

  validation {
    condition     = contains(["Basic", "Standard", "Premium"], var.redis_sku.name)
    error_message = "The redis_sku.name must be Basic, Standard or Premium."
  }

  validation {
    condition = (
      (var.redis_sku.name == "Premium" && contains([1, 2, 3, 4, 5], var.redis_sku.capacity)) ||
      (var.redis_sku.name != "Premium" && contains([0, 1, 2, 3, 4, 5, 6], var.redis_sku.capacity))
    )
    error_message = "The redis_sku.capacity must be 0-6 for Basic/Standard (C0-C6) or 1-5 for Premium (P1-P5)."
  }
}

variable "eventhubs_sku" {
  description = "Event Hubs namespace tier. Standard or above: Basic has no Kafka endpoint."
  type        = string
  default     = "Standard"

  validation {
    condition     = contains(["Standard", "Premium"], var.eventhubs_sku)
    error_message = "The eventhubs_sku must be Standard or Premium (Basic has no Kafka endpoint)."
  }
}

variable "eventhubs_capacity" {
  description = "Throughput units (Standard) or processing units (Premium)."
  type        = number
  default     = 1

  validation {
    condition     = var.eventhubs_capacity >= 1 && var.eventhubs_capacity <= 40
    error_message = "The eventhubs_capacity must be between 1 and 40."
  }
}

variable "eventhubs_max_throughput_units" {
  description = "Auto-inflate ceiling for the Standard tier (0 disables auto-inflate)."
  type        = number
  default     = 0

  validation {
    condition     = var.eventhubs_max_throughput_units >= 0 && var.eventhubs_max_throughput_units <= 40
    error_message = "The eventhubs_max_throughput_units must be between 0 and 40."
  }
}

variable "topic_partitions" {
  description = "Partitions of the clickstream and dead-letter hubs (RECSYS_TOPIC_PARTITIONS); cannot be lowered later on Standard."
  type        = number
  default     = 4

  validation {
    condition     = var.topic_partitions >= 1 && var.topic_partitions <= 32
    error_message = "The topic_partitions must be between 1 and 32 (the Standard tier limit)."
  }
}

variable "storage_replication" {
  description = "Replication of the data lake storage account."
  type        = string
  default     = "GZRS"

  validation {
    condition     = contains(["LRS", "ZRS", "GRS", "GZRS", "RAGRS", "RAGZRS"], var.storage_replication)
    error_message = "The storage_replication must be one of LRS, ZRS, GRS, GZRS, RAGRS, RAGZRS."
  }
}

variable "postgres" {
  description = "PostgreSQL Flexible Server sizing. sku_name like B_Standard_B1ms, GP_Standard_D2ds_v5, MO_Standard_E2ds_v5."
  type = object({
    sku_name              = string
    version               = optional(string, "16")
    storage_mb            = optional(number, 32768)
    backup_retention_days = optional(number, 7)
    geo_redundant_backup  = optional(bool, false)
    high_availability     = optional(bool, false)
  })
  default = {
    sku_name = "B_Standard_B1ms"
  }

  validation {
    condition     = can(regex("^(B|GP|MO)_Standard_[A-Za-z0-9_]+$", var.postgres.sku_name))
    error_message = "The postgres.sku_name must look like B_Standard_B1ms, GP_Standard_D2ds_v5 or MO_Standard_E2ds_v5."
  }

  validation {
    condition     = contains(["14", "15", "16", "17"], var.postgres.version)
    error_message = "The postgres.version must be 14, 15, 16 or 17."
  }

  validation {
    condition     = contains([32768, 65536, 131072, 262144, 524288, 1048576], var.postgres.storage_mb)
    error_message = "The postgres.storage_mb must be one of 32768, 65536, 131072, 262144, 524288, 1048576."
  }

  validation {
    condition     = var.postgres.backup_retention_days >= 7 && var.postgres.backup_retention_days <= 35
    error_message = "The postgres.backup_retention_days must be between 7 and 35."
  }

  validation {
    condition     = !(var.postgres.high_availability && startswith(var.postgres.sku_name, "B_"))
    error_message = "Zone-redundant high availability is not available on Burstable (B_) SKUs."
  }
}

variable "acr_sku" {
  description = "Container registry SKU. Premium is needed for private endpoints, retention policies and zone redundancy."
  type        = string
  default     = "Premium"

  validation {
    condition     = contains(["Basic", "Standard", "Premium"], var.acr_sku)
    error_message = "The acr_sku must be Basic, Standard or Premium."
  }
}

variable "log_retention_days" {
  description = "Log Analytics retention in days."
  type        = number
  default     = 30

  validation {
    condition     = var.log_retention_days >= 30 && var.log_retention_days <= 730
    error_message = "The log_retention_days must be between 30 and 730."
  }
}

variable "log_daily_quota_gb" {
  description = "Daily ingestion cap of the Log Analytics workspace in GB (-1: no cap)."
  type        = number
  default     = -1

  validation {
    condition     = var.log_daily_quota_gb == -1 || var.log_daily_quota_gb >= 0.023
    error_message = "The log_daily_quota_gb must be -1 (no cap) or at least 0.023."
  }
}

# ---------------------------------------------------------------------------
# Container apps
# ---------------------------------------------------------------------------

variable "image_repository" {
  description = "Repository of the platform image inside the registry (the Dockerfile at the repo root builds it)."
  type        = string
  default     = "recsys"

  validation {
    condition     = can(regex("^[a-z0-9]+([._/-][a-z0-9]+)*$", var.image_repository))
    error_message = "The image_repository must be a valid lower-case OCI repository name."
  }
}

variable "image_tag" {
  description = "Image tag to deploy (CI tags images with the git commit SHA). Never `latest`."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$", var.image_tag)) && var.image_tag != "latest"
    error_message = "The image_tag must be a valid OCI tag and must not be `latest`."
  }
}

variable "container_apps_zone_redundant" {
  description = "Spread the Container Apps environment over availability zones."
  type        = bool
  default     = false
}

variable "apps" {
  description = <<-EOT
    Per-service settings of the container apps (keys: api, monitor, rollback, mlflow).
    revision_suffix names the revision the current image runs as (e.g. "blue" or a short SHA);
    traffic lists the blue-green weights; each entry targets either the latest revision or a
    revision suffix and the percentages must add up to 100.
  EOT
  type = map(object({
    cpu             = optional(number, 0.5)
    memory          = optional(string, "1Gi")
    min_replicas    = optional(number, 1)
    max_replicas    = optional(number, 1)
    revision_suffix = optional(string)
    traffic = optional(list(object({
      percentage      = number
      latest_revision = optional(bool, false)
      revision_suffix = optional(string)
      label           = optional(string)
    })), [{ percentage = 100, latest_revision = true }])
  }))
  default = {
    api      = { min_replicas = 1, max_replicas = 5 }
    monitor  = {}
    rollback = {}
    mlflow   = {}
  }

  validation {
    condition     = length(setsubtract(["api", "monitor", "rollback", "mlflow"], keys(var.apps))) == 0 && length(setsubtract(keys(var.apps), ["api", "monitor", "rollback", "mlflow"])) == 0
    error_message = "The apps must have exactly the keys api, monitor, rollback and mlflow."
  }

  validation {
    condition     = alltrue([for a in values(var.apps) : sum([for t in a.traffic : t.percentage]) == 100])
    error_message = "Each app's traffic percentages must add up to exactly 100."
  }

  validation {
    condition = alltrue(flatten([for a in values(var.apps) : [
      for t in a.traffic : (t.latest_revision ? t.revision_suffix == null : t.revision_suffix != null)
    ]]))
    error_message = "Each traffic entry targets either latest_revision = true or a revision_suffix, not both."
  }

  validation {
    condition     = alltrue([for a in values(var.apps) : a.min_replicas >= 0 && a.max_replicas >= a.min_replicas && a.max_replicas <= 30])
    error_message = "Replicas: 0 <= min_replicas <= max_replicas <= 30."
  }

  validation {
    condition     = alltrue([for a in values(var.apps) : contains([0.25, 0.5, 0.75, 1, 1.25, 1.5, 1.75, 2, 3, 4], a.cpu) && a.memory == format("%gGi", a.cpu * 2)])
    error_message = "Consumption profile sizes: cpu in 0.25 steps (up to 4) with memory = 2 x cpu Gi (e.g. 0.5 / \"1Gi\")."
  }

  validation {
    condition     = var.apps["monitor"].max_replicas <= 1 && var.apps["rollback"].max_replicas <= 1
    error_message = "The monitor and rollback are singletons (drift windows and alias moves must not run twice): max_replicas <= 1."
  }
}

variable "api_http_concurrency" {
  description = "Concurrent requests per API replica before the HTTP scale rule adds a replica."
  type        = number
  default     = 50

  validation {
    condition     = var.api_http_concurrency >= 1 && var.api_http_concurrency <= 1000
    error_message = "The api_http_concurrency must be between 1 and 1000."
  }
}

variable "registered_model_name" {
  description = "MLflow registered model of the ranker (RECSYS_REGISTERED_MODEL_NAME)."
  type        = string
  default     = "recsys-ranker"

  validation {
    condition     = can(regex("^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$", var.registered_model_name))
    error_message = "The registered_model_name must be 1-128 characters of letters, digits, '_', '.', '-'."
  }
}

# ---------------------------------------------------------------------------
# Flink on AKS
# ---------------------------------------------------------------------------

variable "aks" {
  description = "AKS cluster for the Flink Kubernetes operator and the PyFlink jobs."
  type = object({
    kubernetes_version     = optional(string, "1.33")
    sku_tier               = optional(string, "Standard")
    system_vm_size         = optional(string, "Standard_D2ds_v5")
    system_node_count      = optional(number, 1)
    flink_vm_size          = optional(string, "Standard_D4ds_v5")
    flink_min_nodes        = optional(number, 1)
    flink_max_nodes        = optional(number, 3)
    admin_group_object_ids = optional(list(string), [])
  })
  default = {}

  validation {
    condition     = contains(["Free", "Standard", "Premium"], var.aks.sku_tier)
    error_message = "The aks.sku_tier must be Free, Standard or Premium."
  }

  validation {
    condition     = can(regex("^1\\.[0-9]{2}$", var.aks.kubernetes_version))
    error_message = "The aks.kubernetes_version must be a minor version like 1.33 (patches are applied by the auto-upgrade channel)."
  }

  validation {
    condition     = var.aks.flink_min_nodes >= 0 && var.aks.flink_max_nodes >= var.aks.flink_min_nodes && var.aks.flink_max_nodes <= 20
    error_message = "0 <= aks.flink_min_nodes <= aks.flink_max_nodes <= 20."
  }

  validation {
    condition     = var.aks.system_node_count >= 1 && var.aks.system_node_count <= 5
    error_message = "The aks.system_node_count must be between 1 and 5."
  }
}

variable "flink_image_repository" {
  description = "Repository of the Flink job image (Flink 2.0 + PyFlink + stream_jobs) in the platform registry; tagged like the platform image."
  type        = string
  default     = "recsys-flink"

  validation {
    condition     = can(regex("^[a-z0-9]+([._/-][a-z0-9]+)*$", var.flink_image_repository))
    error_message = "The flink_image_repository must be a valid lower-case OCI repository name."
  }
}

variable "flink_job_module" {
  description = "Python module the FlinkDeployment runs (python -m style, PyFlink's -pym)."
  type        = string
  default     = "stream_jobs.flink_job"

  validation {
    condition     = can(regex("^[A-Za-z_][A-Za-z0-9_]*(\\.[A-Za-z_][A-Za-z0-9_]*)*$", var.flink_job_module))
    error_message = "The flink_job_module must be a dotted Python module path."
  }
}

variable "flux_git" {
  description = "Git repository that AKS' Flux extension reconciles terraform/k8s/flink from (Flink operator HelmRelease, service account, FlinkDeployment). null: install the operator by hand (README)."
  type = object({
    url    = string
    branch = optional(string, "main")
    path   = optional(string, "./terraform/k8s/flink")
  })
  default = null

  validation {
    condition     = var.flux_git == null || can(regex("^(https|ssh)://", var.flux_git.url))
    error_message = "The flux_git.url must be an https:// or ssh:// URL."
  }
}

# ---------------------------------------------------------------------------
# Cost control
# ---------------------------------------------------------------------------

variable "monthly_budget" {
  description = "Monthly budget of the resource group in the billing currency."
  type        = number

  validation {
    condition     = var.monthly_budget > 0
    error_message = "The monthly_budget must be positive."
  }
}

variable "budget_start_date" {
  description = "First day of the first budget month, RFC 3339 (YYYY-MM-01T00:00:00Z); must not be in the past when the budget is created."
  type        = string

  validation {
    condition     = can(regex("^[0-9]{4}-[0-9]{2}-01T00:00:00Z$", var.budget_start_date))
    error_message = "The budget_start_date must be the first of a month, e.g. 2026-12-01T00:00:00Z."
  }
}

variable "budget_contact_emails" {
  description = "Who receives the budget alerts (80 % actual, 100 % forecast)."
  type        = list(string)

  validation {
    condition     = length(var.budget_contact_emails) > 0 && alltrue([for e in var.budget_contact_emails : can(regex("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", e))])
    error_message = "The budget_contact_emails must hold at least one valid e-mail address."
  }
}

variable "secret_rotation_days" {
  description = "Generated secrets (Postgres password, JWT secret) rotate, and every Key Vault secret's expiry moves, after this many days (on the next apply)."
  type        = number
  default     = 90

  validation {
    condition     = var.secret_rotation_days >= 7 && var.secret_rotation_days <= 365
    error_message = "The secret_rotation_days must be between 7 and 365."
  }
}
