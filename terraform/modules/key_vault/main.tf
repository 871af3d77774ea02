resource "azurerm_key_vault" "main" {
  name                          = var.name
  location                      = var.location
  resource_group_name           = var.resource_group_name
  tenant_id                     = var.tenant_id
  sku_name                      = "standard"
  rbac_authorization_enabled    = true
  purge_protection_enabled      = true
  soft_delete_retention_days    = 90
  public_network_access_enabled = length(var.admin_cidrs) > 0
  tags                          = var.tags

  # Default deny. The deploying runner / operators are let in by CIDR so that
  # Terraform can write the generated secrets; the apps use the private endpoint.
  #checkov:skip=CKV_AZURE_189:Public access is enabled only when admin_cidrs is non-empty, and then limited to those CIDRs by the network ACL below (default Deny); Terraform needs data-plane access to write the generated secrets unless it runs inside the VNet.
  network_acls {
    default_action = "Deny"
    bypass         = "AzureServices"
    ip_rules       = var.admin_cidrs
  }
}

# Terraform itself writes the generated secrets (Redis URL, DSNs, JWT key).
resource "azurerm_role_assignment" "deployer_secrets_officer" {
  scope                = azurerm_key_vault.main.id
  role_definition_name = "Key Vault Secrets Officer"
  principal_id         = var.deployer_object_id
}

module "private_endpoint" {
  source = "../private_endpoint"
  name                = var.name
  location            = var.location
  resource_group_name = var.resource_group_name
  subnet_id           = var.private_endpoint_subnet_id
  resource_id         = azurerm_key_vault.main.id
  subresource         = "vault"
  private_dns_zone_id = var.private_dns_zone_id
  tags                = var.tags
}

resource "azurerm_monitor_diagnostic_setting" "main" {
  name                       = "diag-to-log-analytics"
  target_resource_id         = azurerm_key_vault.main.id
  log_analytics_workspace_id = var.log_analytics_workspace_id

  enabled_log {
    category_group = "audit"
  }

  enabled_log {
    category_group = "allLogs"
  }

  enabled_metric {
    category = "AllMetrics"
  }
}
