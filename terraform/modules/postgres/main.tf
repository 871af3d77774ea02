locals {
  databases = {
    mlflow = "mlflow"
    feast  = "feast"
  }
  host = azurerm_postgresql_flexible_server.main.fqdn
}

# URL-safe characters only, so the password can sit in a DSN unescaped.
resource "random_password" "admin" {
  length           = 40
  special          = true
  override_special = "-_.~"
  min_lower        = 4
  min_upper        = 4
  min_numeric      = 4

  keepers = {
    rotation = var.rotation_trigger
  }
}

resource "azurerm_postgresql_flexible_server" "main" {
  name                          = var.name
  location                      = var.location
  resource_group_name           = var.resource_group_name
  version                       = var.postgres_version
  sku_name                      = var.sku_name
  storage_mb                    = var.storage_mb
  auto_grow_enabled             = true
  backup_retention_days         = var.backup_retention_days
  geo_redundant_backup_enabled  = var.geo_redundant_backup
  delegated_subnet_id           = var.delegated_subnet_id
  private_dns_zone_id           = var.private_dns_zone_id
  public_network_access_enabled = false
  administrator_login           = var.administrator_login
  administrator_password        = random_password.admin.result
  zone                          = "1"
  tags                          = var.tags

  authentication {
    active_directory_auth_enabled = true
    password_auth_enabled         = true
    tenant_id                     = var.tenant_id
  }

  dynamic "high_availability" {
    for_each = var.high_availability ? [1] : []
    content {
      mode                      = "ZoneRedundant"
      standby_availability_zone = "2"
    }
  }

  lifecycle {
    # Azure may move the primary to the standby zone after a failover.
    ignore_changes = [zone, high_availability[0].standby_availability_zone]
  }

  #checkov:skip=CKV2_AZURE_57:The server uses VNet integration (delegated subnet + private DNS zone, public access disabled), the other private-access model of Flexible Server; a private endpoint is not possible on a VNet-integrated server.
  #checkov:skip=CKV_AZURE_136:Geo-redundant backup is a variable (postgres.geo_redundant_backup): on in prod.tfvars, off in dev where the MLflow/Feast metadata can be rebuilt.
}

resource "azurerm_postgresql_flexible_server_database" "main" {
  for_each = local.databases

  name      = each.value
  server_id = azurerm_postgresql_flexible_server.main.id
  charset   = "UTF8"
  collation = "en_US.utf8"
}

resource "azurerm_postgresql_flexible_server_configuration" "settings" {
  for_each = {
    "require_secure_transport"   = "on"
    "ssl_min_protocol_version"   = "TLSv1.2"
    "log_checkpoints"            = "on"
    "log_connections"            = "on"
    "log_disconnections"         = "on"
    "connection_throttle.enable" = "on"
  }

  name      = each.key
  server_id = azurerm_postgresql_flexible_server.main.id
  value     = each.value
}

# DSNs the platform reads (RECSYS_POSTGRES_DSN -> Feast registry,
# RECSYS_MLFLOW_BACKEND_URI -> MLflow). Key Vault only.
resource "azurerm_key_vault_secret" "dsn" {
  for_each = local.databases

  name            = "postgres-${each.key}-dsn"
  value           = "postgresql://${var.administrator_login}:${random_password.admin.result}@${local.host}:5432/${azurerm_postgresql_flexible_server_database.main[each.key].name}?sslmode=require"
  key_vault_id    = var.key_vault_id
  content_type    = "text/plain; PostgreSQL DSN"
  expiration_date = var.secret_expiration_date
  tags            = var.tags
}

resource "azurerm_key_vault_secret" "admin_password" {
  name            = "postgres-admin-password"
  value           = random_password.admin.result
  key_vault_id    = var.key_vault_id
  content_type    = "text/plain; PostgreSQL administrator password"
  expiration_date = var.secret_expiration_date
  tags            = var.tags
}

resource "azurerm_monitor_diagnostic_setting" "main" {
  name                       = "diag-to-log-analytics"
  target_resource_id         = azurerm_postgresql_flexible_server.main.id
  log_analytics_workspace_id = var.log_analytics_workspace_id

  enabled_log {
    category_group = "allLogs"
  }

  enabled_metric {
    category = "AllMetrics"
  }
}
