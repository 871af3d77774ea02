output "id" {
  description = "Storage account resource ID (scope of the Blob Data roles)."
  value       = azurerm_storage_account.main.id
}

output "name" {
  description = "Storage account name."
  value       = azurerm_storage_account.main.name
}

output "offline_store_uri" {
  description = "abfss:// URI of the Feast offline store container."
  value       = "abfss://${azurerm_storage_container.main["offline_store"].name}@${azurerm_storage_account.main.name}.dfs.core.windows.net/"
}

output "mlflow_artifacts_uri" {
  description = "abfss:// URI of the MLflow artifact container."
  value       = "abfss://${azurerm_storage_container.main["mlflow_artifacts"].name}@${azurerm_storage_account.main.name}.dfs.core.windows.net/"
}

output "flink_checkpoints_uri" {
  description = "abfss:// URI of the Flink checkpoint/savepoint container."
  value       = "abfss://${azurerm_storage_container.main["flink_checkpoints"].name}@${azurerm_storage_account.main.name}.dfs.core.windows.net/"
}
