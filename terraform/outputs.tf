# No output carries a secret: secrets are only ever written to Key Vault and
# referenced by ID. tests/test_terraform.py enforces this.

output "resource_group_name" {
  description = "Resource group holding the environment."
  value       = azurerm_resource_group.main.name
}

output "api_url" {
  description = "Public HTTPS URL of the recommendation API (latest revision's traffic split applies)."
  value       = "https://${module.container_apps.app_fqdns["api"]}"
}

output "container_app_names" {
  description = "Container app names by service (for `az containerapp revision` / traffic commands)."
  value       = module.container_apps.app_names
}

output "container_app_latest_revisions" {
  description = "Latest revision per service; blue-green: point traffic at it once /ready answers."
  value       = module.container_apps.latest_revisions
}

output "registry_login_server" {
  description = "Container registry the CI pushes the platform image to."
  value       = module.registry.login_server
}

output "key_vault_name" {
  description = "Key Vault holding every platform secret (read them with RBAC, never from Terraform outputs)."
  value       = module.key_vault.name
}

output "kafka_bootstrap_servers" {
  description = "Event Hubs Kafka endpoint (host:9093, SASL_SSL); equals RECSYS_BROKER_HOST:RECSYS_BROKER_PORT."
  value       = "${module.event_hubs.kafka_host}:${module.event_hubs.kafka_port}"
}

output "redis_hostname" {
  description = "Azure Cache for Redis host (TLS port 6380; the access key is only in Key Vault)."
  value       = module.redis.hostname
}

output "postgres_fqdn" {
  description = "Private FQDN of the PostgreSQL Flexible Server (databases mlflow and feast)."
  value       = module.postgres.fqdn
}

output "storage_account_name" {
  description = "Data lake account holding the offline store, MLflow artifacts and Flink checkpoints."
  value       = module.storage.name
}

output "offline_store_uri" {
  description = "abfss:// URI of the Feast offline store container."
  value       = module.storage.offline_store_uri
}

output "flink_checkpoints_uri" {
  description = "abfss:// URI for Flink checkpoints and savepoints."
  value       = module.storage.flink_checkpoints_uri
}

output "aks_cluster_name" {
  description = "AKS cluster running the Flink operator."
  value       = module.flink_aks.cluster_name
}

output "flink_workload_identity_client_id" {
  description = "Client ID of the Flink jobs' workload identity."
  value       = module.flink_aks.workload_identity_client_id
}

output "log_analytics_workspace_id" {
  description = "Log Analytics workspace receiving every diagnostic setting."
  value       = module.observability.workspace_id
}
