locals {
  containers = {
    offline_store     = "offline-store"
    mlflow_artifacts  = "mlflow-artifacts"
    flink_checkpoints = "flink-checkpoints"
  }
}

# ADLS Gen2 (hierarchical namespace): Feast's parquet offline store, MLflow
# artifacts and Flink checkpoints/savepoints via abfss://.
resource "azurerm_storage_account" "main" {
  name                              = var.name
  location                          = var.location
  resource_group_name               = var.resource_group_name
  account_kind                      = "StorageV2"
  account_tier                      = "Standard"
  account_replication_type          = var.replication_type
  is_hns_enabled                    = true
  min_tls_version                   = "TLS1_2"
  https_traffic_only_enabled        = true
  allow_nested_items_to_be_public   = false
  shared_access_key_enabled         = false
  default_to_oauth_authentication   = true
  public_network_access_enabled     = false
  infrastructure_encryption_enabled = true
  cross_tenant_replication_enabled  = false
  local_user_enabled                = false
  sftp_enabled                      = false
  tags                              = var.tags

  network_rules {
    default_action = "Deny"
    bypass         = ["AzureServices", "Logging", "Metrics"]
  }

  blob_properties {
    delete_retention_policy {
      days = var.soft_delete_days
    }
    container_delete_retention_policy {
      days = var.soft_delete_days
    }
  }

  sas_policy {
    expiration_period = "01.00:00:00"
    expiration_action = "Log"
  }

  #checkov:skip=CKV2_AZURE_1:Encryption uses Microsoft-managed keys plus infrastructure (double) encryption; customer-managed keys add a key-lifecycle obligation the platform does not need for clickstream features and model artifacts.
  #checkov:skip=CKV_AZURE_33:The account holds no queues (blob/ADLS only); queue logging does not apply.
  #checkov:skip=CKV2_AZURE_21:Blob read/write/delete logging is configured by azurerm_monitor_diagnostic_setting.blob below (StorageRead/StorageWrite/StorageDelete), which checkov does not connect to the account.
}

resource "azurerm_storage_container" "main" {
  for_each = local.containers

  name                  = each.value
  storage_account_id    = azurerm_storage_account.main.id
  container_access_type = "private"

  #checkov:skip=CKV2_AZURE_21:Read/write/delete logging of the blob service is azurerm_monitor_diagnostic_setting.blob in this module; checkov does not link it to the containers.
}

module "private_endpoint" {
  source   = "../private_endpoint"
  for_each = var.private_dns_zone_ids

  name                = "${var.name}-${each.key}"
  location            = var.location
  resource_group_name = var.resource_group_name
  subnet_id           = var.private_endpoint_subnet_id
  resource_id         = azurerm_storage_account.main.id
  subresource         = each.key
  private_dns_zone_id = each.value
  tags                = var.tags
}

resource "azurerm_monitor_diagnostic_setting" "account" {
  name                       = "diag-to-log-analytics"
  target_resource_id         = azurerm_storage_account.main.id
  log_analytics_workspace_id = var.log_analytics_workspace_id

  enabled_metric {
    category = "Transaction"
  }
}

resource "azurerm_monitor_diagnostic_setting" "blob" {
  name                       = "diag-to-log-analytics"
  target_resource_id         = "${azurerm_storage_account.main.id}/blobServices/default"
  log_analytics_workspace_id = var.log_analytics_workspace_id

  enabled_log {
    category = "StorageRead"
  }

  enabled_log {
    category = "StorageWrite"
  }

  enabled_log {
    category = "StorageDelete"
  }

  enabled_metric {
    category = "Transaction"
  }
}
