locals {
  hubs = {
    clickstream = var.clickstream_hub
    dead_letter = var.dead_letter_hub
  }
}

resource "azurerm_eventhub_namespace" "main" {
  name                          = var.name
  location                      = var.location
  resource_group_name           = var.resource_group_name
  sku                           = var.sku
  capacity                      = var.capacity
  auto_inflate_enabled          = var.sku == "Standard" && var.max_throughput_units > 0
  maximum_throughput_units      = var.sku == "Standard" && var.max_throughput_units > 0 ? var.max_throughput_units : null
  minimum_tls_version           = "1.2"
  public_network_access_enabled = false
  # Kafka clients authenticate with SASL PLAIN and the namespace connection
  # string (kept in Key Vault); OAUTHBEARER with Entra ID is the alternative.
  local_authentication_enabled = true
  tags                         = var.tags

  network_rulesets {
    default_action                 = "Deny"
    public_network_access_enabled  = false
    trusted_service_access_enabled = true
  }

  #checkov:skip=CKV_AZURE_228:Local (SAS) authentication stays on because the platform's Kafka clients (kafka-python, the Flink Kafka connector) use SASL PLAIN with the connection string; the SAS key lives only in Key Vault and the namespace has no public endpoint.
}

# Event Hubs' Kafka endpoint: an event hub is a Kafka topic.
resource "azurerm_eventhub" "main" {
  for_each = local.hubs

  name              = each.value
  namespace_id      = azurerm_eventhub_namespace.main.id
  partition_count   = var.partition_count
  message_retention = var.message_retention_days
}

# Kafka consumer groups (RECSYS_CONSUMER_GROUP) are created on demand by the
# Kafka endpoint; they are not Event Hubs consumer groups, so none is declared.

# One send+listen rule for the platform's Kafka clients (no Manage right).
resource "azurerm_eventhub_namespace_authorization_rule" "apps" {
  name                = "recsys-apps"
  namespace_name      = azurerm_eventhub_namespace.main.name
  resource_group_name = var.resource_group_name
  listen              = true
  send                = true
  manage              = false
}

resource "azurerm_key_vault_secret" "connection_string" {
  name            = "eventhubs-connection-string"
  value           = azurerm_eventhub_namespace_authorization_rule.apps.primary_connection_string
  key_vault_id    = var.key_vault_id
  content_type    = "text/plain; Event Hubs connection string (Kafka SASL PLAIN password)"
  expiration_date = var.secret_expiration_date
  tags            = var.tags
}

module "private_endpoint" {
  source = "../private_endpoint"
  name                = var.name
  location            = var.location
  resource_group_name = var.resource_group_name
  subnet_id           = var.private_endpoint_subnet_id
  resource_id         = azurerm_eventhub_namespace.main.id
  subresource         = "namespace"
  private_dns_zone_id = var.private_dns_zone_id
  tags                = var.tags
}

resource "azurerm_monitor_diagnostic_setting" "main" {
  name                       = "diag-to-log-analytics"
  target_resource_id         = azurerm_eventhub_namespace.main.id
  log_analytics_workspace_id = var.log_analytics_workspace_id

  enabled_log {
    category_group = "allLogs"
  }

  enabled_metric {
    category = "AllMetrics"
  }
}
