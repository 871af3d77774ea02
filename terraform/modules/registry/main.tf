locals {
  premium = var.sku == "Premium"
}

resource "azurerm_container_registry" "main" {
  name                          = var.name
  location                      = var.location
  resource_group_name           = var.resource_group_name
  sku                           = var.sku
  admin_enabled                 = false
  anonymous_pull_enabled        = false
  data_endpoint_enabled         = local.premium
  zone_redundancy_enabled       = local.premium && var.zone_redundancy_enabled
  public_network_access_enabled = var.public_network_access_enabled
  network_rule_bypass_option    = "AzureServices"
  quarantine_policy_enabled     = local.premium
  retention_policy_in_days      = local.premium ? 30 : null
  trust_policy_enabled          = local.premium
  export_policy_enabled         = local.premium ? var.public_network_access_enabled : true
  tags                          = var.tags

  #checkov:skip=CKV_AZURE_164:Content trust is enabled whenever sku = Premium (the default and prod); the Basic SKU chosen for dev does not offer it.
  #checkov:skip=CKV_AZURE_233:Zone redundancy is enabled when sku = Premium and the environment is zone redundant (prod); Basic (dev) does not offer it.
  #checkov:skip=CKV_AZURE_139:CI pushes from GitHub-hosted runners, which need the public endpoint; set public_network_access_enabled = false when the pipeline runs on self-hosted runners inside the VNet. Pulls by the apps go through the private endpoint.
  #checkov:skip=CKV_AZURE_163:Image vulnerability scanning is Microsoft Defender for Containers, a subscription-level plan enabled by the security team, not per registry.
  #checkov:skip=CKV_AZURE_165:Geo-replication doubles the registry cost; a single region matches the single-region deployment of the platform.
}

module "private_endpoint" {
  source = "../private_endpoint"
  count  = local.premium ? 1 : 0

  name                = var.name
  location            = var.location
  resource_group_name = var.resource_group_name
  subnet_id           = var.private_endpoint_subnet_id
  resource_id         = azurerm_container_registry.main.id
  subresource         = "registry"
  private_dns_zone_id = var.private_dns_zone_id
  tags                = var.tags
}

resource "azurerm_monitor_diagnostic_setting" "main" {
  name                       = "diag-to-log-analytics"
  target_resource_id         = azurerm_container_registry.main.id
  log_analytics_workspace_id = var.log_analytics_workspace_id

  enabled_log {
    category_group = "allLogs"
  }

  enabled_metric {
    category = "AllMetrics"
  }
}
