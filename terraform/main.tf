data "azurerm_client_config" "current" {}

resource "random_string" "suffix" {
  length  = 4
  upper   = false
  special = false
}

resource "azurerm_resource_group" "main" {
  name     = "rg-${local.name}"
  location = var.location
  tags     = local.tags
}

# Secrets rotate on the first apply after this passes; every Key Vault secret
# carries the rotation time as its expiry so none lives forever.
resource "time_rotating" "secrets" {
  rotation_days = var.secret_rotation_days
}

# ---------------------------------------------------------------------------
# Foundation: network, logs, Key Vault, registry
# ---------------------------------------------------------------------------

module "network" {
  source = "./modules/network"

  name                = local.name
  location            = var.location
  resource_group_name = azurerm_resource_group.main.name
  vnet_cidr           = var.vnet_cidr
  subnet_cidrs        = var.subnet_cidrs
  tags                = local.tags
}

module "observability" {
  source = "./modules/observability"

  name                = local.name
  location            = var.location
  resource_group_name = azurerm_resource_group.main.name
  retention_days      = var.log_retention_days
  daily_quota_gb      = var.log_daily_quota_gb
  tags                = local.tags
}

module "key_vault" {
  source = "./modules/key_vault"

  name                       = "kv-${local.name}-${local.suffix}"
  location                   = var.location
  resource_group_name        = azurerm_resource_group.main.name
  tenant_id                  = data.azurerm_client_config.current.tenant_id
  deployer_object_id         = data.azurerm_client_config.current.object_id
  admin_cidrs                = var.admin_cidrs
  private_endpoint_subnet_id = module.network.subnet_ids["private_endpoints"]
  private_dns_zone_id        = module.network.private_dns_zone_ids["vault"]
  log_analytics_workspace_id = module.observability.workspace_id
  tags                       = local.tags
}

module "registry" {
  source = "./modules/registry"

  name                       = "acr${var.project}${var.environment}${local.suffix}"
  location                   = var.location
  resource_group_name        = azurerm_resource_group.main.name
  sku                        = var.acr_sku
  zone_redundancy_enabled    = var.container_apps_zone_redundant
  private_endpoint_subnet_id = module.network.subnet_ids["private_endpoints"]
  private_dns_zone_id        = module.network.private_dns_zone_ids["acr"]
  log_analytics_workspace_id = module.observability.workspace_id
  tags                       = local.tags
}

# ---------------------------------------------------------------------------
# Data services
# ---------------------------------------------------------------------------

module "redis" {
  source = "./modules/redis"

  name                       = "redis-${local.name}-${local.suffix}"
  location                   = var.location
  resource_group_name        = azurerm_resource_group.main.name
  sku_name                   = var.redis_sku.name
  capacity                   = var.redis_sku.capacity
  key_vault_id               = module.key_vault.id
  secret_expiration_date     = time_rotating.secrets.rotation_rfc3339
  private_endpoint_subnet_id = module.network.subnet_ids["private_endpoints"]
  private_dns_zone_id        = module.network.private_dns_zone_ids["redis"]
  log_analytics_workspace_id = module.observability.workspace_id
  tags                       = local.tags
}

module "event_hubs" {
  source = "./modules/event_hubs"

  name                       = "evhns-${local.name}-${local.suffix}"
  location                   = var.location
  resource_group_name        = azurerm_resource_group.main.name
  sku                        = var.eventhubs_sku
  capacity                   = var.eventhubs_capacity
  max_throughput_units       = var.eventhubs_max_throughput_units
  partition_count            = var.topic_partitions
  consumer_group             = "recsys"
  key_vault_id               = module.key_vault.id
  secret_expiration_date     = time_rotating.secrets.rotation_rfc3339
  private_endpoint_subnet_id = module.network.subnet_ids["private_endpoints"]
  private_dns_zone_id        = module.network.private_dns_zone_ids["servicebus"]
  log_analytics_workspace_id = module.observability.workspace_id
  tags                       = local.tags
}

module "storage" {
  source = "./modules/storage"

  name                       = "st${var.project}${var.environment}${local.suffix}"
  location                   = var.location
  resource_group_name        = azurerm_resource_group.main.name
  replication_type           = var.storage_replication
  private_endpoint_subnet_id = module.network.subnet_ids["private_endpoints"]
  private_dns_zone_ids = {
    blob = module.network.private_dns_zone_ids["blob"]
    dfs  = module.network.private_dns_zone_ids["dfs"]
  }
  log_analytics_workspace_id = module.observability.workspace_id
  tags                       = local.tags
}

module "postgres" {
  source = "./modules/postgres"

  name                       = "psql-${local.name}-${local.suffix}"
  location                   = var.location
  resource_group_name        = azurerm_resource_group.main.name
  tenant_id                  = data.azurerm_client_config.current.tenant_id
  sku_name                   = var.postgres.sku_name
  postgres_version           = var.postgres.version
  storage_mb                 = var.postgres.storage_mb
  backup_retention_days      = var.postgres.backup_retention_days
  geo_redundant_backup       = var.postgres.geo_redundant_backup
  high_availability          = var.postgres.high_availability
  delegated_subnet_id        = module.network.subnet_ids["postgres"]
  private_dns_zone_id        = module.network.private_dns_zone_ids["postgres"]
  rotation_trigger           = time_rotating.secrets.id
  key_vault_id               = module.key_vault.id
  secret_expiration_date     = time_rotating.secrets.rotation_rfc3339
  log_analytics_workspace_id = module.observability.workspace_id
  tags                       = local.tags
}

# The API signs and verifies tokens with this; generated here, stored only in
# Key Vault (and, unavoidably, in the encrypted remote state).
resource "random_password" "jwt" {
  length  = 64
  special = false

  keepers = {
    rotation = time_rotating.secrets.id
  }
}

resource "azurerm_key_vault_secret" "jwt" {
  name            = "jwt-secret"
  value           = random_password.jwt.result
  key_vault_id    = module.key_vault.id
  content_type    = "text/plain; HS256 signing key"
  expiration_date = time_rotating.secrets.rotation_rfc3339
  tags            = local.tags
}

# ---------------------------------------------------------------------------
# Identities and role assignments (least privilege, scoped to one resource)
# ---------------------------------------------------------------------------

resource "azurerm_user_assigned_identity" "apps" {
  name                = "id-${local.name}-apps"
  location            = var.location
  resource_group_name = azurerm_resource_group.main.name
  tags                = local.tags
}

resource "azurerm_role_assignment" "apps_kv_secrets_user" {
  scope                = module.key_vault.id
  role_definition_name = "Key Vault Secrets User"
  principal_id         = azurerm_user_assigned_identity.apps.principal_id
  principal_type       = "ServicePrincipal"
}

resource "azurerm_role_assignment" "apps_acr_pull" {
  scope                = module.registry.id
  role_definition_name = "AcrPull"
  principal_id         = azurerm_user_assigned_identity.apps.principal_id
  principal_type       = "ServicePrincipal"
}

resource "azurerm_role_assignment" "apps_blob_contributor" {
  scope                = module.storage.id
  role_definition_name = "Storage Blob Data Contributor"
  principal_id         = azurerm_user_assigned_identity.apps.principal_id
  principal_type       = "ServicePrincipal"
}

resource "azurerm_role_assignment" "apps_eventhubs_sender" {
  scope                = module.event_hubs.namespace_id
  role_definition_name = "Azure Event Hubs Data Sender"
  principal_id         = azurerm_user_assigned_identity.apps.principal_id
  principal_type       = "ServicePrincipal"
}

resource "azurerm_role_assignment" "flink_blob_contributor" {
  scope                = module.storage.id
  role_definition_name = "Storage Blob Data Contributor"
  principal_id         = module.flink_aks.workload_identity_principal_id
  principal_type       = "ServicePrincipal"
}

resource "azurerm_role_assignment" "flink_eventhubs_receiver" {
  scope                = module.event_hubs.namespace_id
  role_definition_name = "Azure Event Hubs Data Receiver"
  principal_id         = module.flink_aks.workload_identity_principal_id
  principal_type       = "ServicePrincipal"
}

resource "azurerm_role_assignment" "flink_eventhubs_sender" {
  scope                = module.event_hubs.namespace_id
  role_definition_name = "Azure Event Hubs Data Sender"
  principal_id         = module.flink_aks.workload_identity_principal_id
  principal_type       = "ServicePrincipal"
}

resource "azurerm_role_assignment" "flink_kv_secrets_user" {
  scope                = module.key_vault.id
  role_definition_name = "Key Vault Secrets User"
  principal_id         = module.flink_aks.workload_identity_principal_id
  principal_type       = "ServicePrincipal"
}

# ---------------------------------------------------------------------------
# Services: Container Apps (API, monitor, rollback, MLflow) and Flink on AKS
# ---------------------------------------------------------------------------

module "container_apps" {
  source = "./modules/container_apps"

  name                       = local.name
  location                   = var.location
  resource_group_name        = azurerm_resource_group.main.name
  infrastructure_subnet_id   = module.network.subnet_ids["container_apps"]
  zone_redundancy_enabled    = var.container_apps_zone_redundant
  log_analytics_workspace_id = module.observability.workspace_id
  identity_id                = azurerm_user_assigned_identity.apps.id
  identity_client_id         = azurerm_user_assigned_identity.apps.client_id
  registry_server            = module.registry.login_server
  image                      = local.image
  apps                       = var.apps
  api_http_concurrency       = var.api_http_concurrency
  api_allowed_cidrs          = var.api_allowed_cidrs
  key_vault_secret_ids       = local.key_vault_secret_ids
  broker_host                = module.event_hubs.kafka_host
  broker_port                = module.event_hubs.kafka_port
  clickstream_topic          = module.event_hubs.clickstream_hub
  dead_letter_topic          = module.event_hubs.dead_letter_hub
  topic_partitions           = var.topic_partitions
  consumer_group             = module.event_hubs.consumer_group
  feast_project              = var.project
  registered_model_name      = var.registered_model_name
  mlflow_artifacts_uri       = module.storage.mlflow_artifacts_uri
  tags                       = local.tags

  # The apps resolve their Key Vault references and pull the image on first
  # start; the identity must hold its roles before that.
  depends_on = [
    azurerm_role_assignment.apps_kv_secrets_user,
    azurerm_role_assignment.apps_acr_pull,
    azurerm_role_assignment.apps_blob_contributor,
    azurerm_role_assignment.apps_eventhubs_sender,
  ]
}

module "flink_aks" {
  source = "./modules/flink_aks"

  name                       = local.name
  location                   = var.location
  resource_group_name        = azurerm_resource_group.main.name
  tenant_id                  = data.azurerm_client_config.current.tenant_id
  subnet_id                  = module.network.subnet_ids["aks"]
  api_authorized_cidrs       = var.admin_cidrs
  log_analytics_workspace_id = module.observability.workspace_id
  kubernetes_version         = var.aks.kubernetes_version
  sku_tier                   = var.aks.sku_tier
  system_vm_size             = var.aks.system_vm_size
  system_node_count          = var.aks.system_node_count
  flink_vm_size              = var.aks.flink_vm_size
  flink_min_nodes            = var.aks.flink_min_nodes
  flink_max_nodes            = var.aks.flink_max_nodes
  admin_group_object_ids     = var.aks.admin_group_object_ids
  acr_id                     = module.registry.id
  flux_git                   = var.flux_git
  # The module adds FLINK_WORKLOAD_CLIENT_ID itself.
  flux_substitutions = {
    CHECKPOINTS_URI  = module.storage.flink_checkpoints_uri
    KAFKA_HOST       = module.event_hubs.kafka_host
    KAFKA_PORT       = tostring(module.event_hubs.kafka_port)
    KEY_VAULT_NAME   = module.key_vault.name
    FLINK_IMAGE      = "${module.registry.login_server}/${var.flink_image_repository}:${var.image_tag}"
    FLINK_JOB_MODULE = var.flink_job_module
  }
  tags = local.tags
}

# ---------------------------------------------------------------------------
# Cost control
# ---------------------------------------------------------------------------

resource "azurerm_consumption_budget_resource_group" "main" {
  name              = "budget-${local.name}"
  resource_group_id = azurerm_resource_group.main.id
  amount            = var.monthly_budget
  time_grain        = "Monthly"

  time_period {
    start_date = var.budget_start_date
  }

  notification {
    enabled        = true
    threshold      = 80
    operator       = "GreaterThanOrEqualTo"
    threshold_type = "Actual"
    contact_emails = var.budget_contact_emails
  }

  notification {
    enabled        = true
    threshold      = 100
    operator       = "GreaterThanOrEqualTo"
    threshold_type = "Forecasted"
    contact_emails = var.budget_contact_emails
  }

  lifecycle {
    # Azure rejects a start date in the past on update; the date only matters
    # at creation.
    ignore_changes = [time_period]
  }
}
