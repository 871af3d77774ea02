output "id" {
  description = "PostgreSQL Flexible Server resource ID."
  value       = azurerm_postgresql_flexible_server.main.id
}

output "fqdn" {
  description = "Private FQDN of the server (resolves inside the VNet only)."
  value       = azurerm_postgresql_flexible_server.main.fqdn
}

output "databases" {
  description = "Databases on the server: mlflow (MLflow backend store) and feast (Feast registry)."
  value       = [for d in azurerm_postgresql_flexible_server_database.main : d.name]
}

output "mlflow_dsn_secret_id" {
  description = "Versionless Key Vault ID of the MLflow backend DSN (RECSYS_MLFLOW_BACKEND_URI). The ID, not the value."
  value       = azurerm_key_vault_secret.dsn["mlflow"].versionless_id
}

output "feast_dsn_secret_id" {
  description = "Versionless Key Vault ID of the Feast registry DSN (RECSYS_POSTGRES_DSN). The ID, not the value."
  value       = azurerm_key_vault_secret.dsn["feast"].versionless_id
}
