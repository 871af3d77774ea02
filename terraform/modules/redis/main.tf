resource "azurerm_redis_cache" "main" {
  name                          = var.name
  location                      = var.location
  resource_group_name           = var.resource_group_name
  sku_name                      = var.sku_name
  family                        = var.sku_name == "Premium" ? "P" : "C"
  capacity                      = var.capacity
  non_ssl_port_enabled          = false
  minimum_tls_version           = "1.2"
  public_network_access_enabled = false
  redis_version                 = "6"
  tags                          = var.tags

  redis_configuration {
    authentication_enabled = true
    # Feast's online store is a cache of the offline store plus the stream;
    # evict least-recently-used keys rather than refusing writes.
    maxmemory_policy = "allkeys-lru"
  }

  #checkov:skip=CKV_AZURE_89:Public network access is disabled (public_network_access_enabled = false); this check misreads the attribute on azurerm 4.x. Access is through the private endpoint only.
}

module "private_endpoint" {
  source = "../private_endpoint"
  name                = var.name
  location            = var.location
  resource_group_name = var.resource_group_name
  subnet_id           = var.private_endpoint_subnet_id
  resource_id         = azurerm_redis_cache.main.id
  subresource         = "redisCache"
  private_dns_zone_id = var.private_dns_zone_id
  tags                = var.tags
}

# RECSYS_REDIS_URL for the apps: TLS (rediss://) on the SSL port with the
# access key. Written to Key Vault only; no output carries it.
resource "azurerm_key_vault_secret" "redis_url" {
  name            = "redis-url"
  value           = "rediss://:${azurerm_redis_cache.main.primary_access_key}@${azurerm_redis_cache.main.hostname}:${azurerm_redis_cache.main.ssl_port}/0"
  key_vault_id    = var.key_vault_id
  content_type    = "text/plain; redis URL with access key"
  expiration_date = var.secret_expiration_date
  tags            = var.tags
}

resource "azurerm_monitor_diagnostic_setting" "main" {
  name                       = "diag-to-log-analytics"
  target_resource_id         = azurerm_redis_cache.main.id
  log_analytics_workspace_id = var.log_analytics_workspace_id

  enabled_log {
    category_group = "allLogs"
  }

  enabled_metric {
    category = "AllMetrics"
  }
}
