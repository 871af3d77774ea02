output "namespace_id" {
  description = "Event Hubs namespace resource ID (scope of the data sender/receiver roles)."
  value       = azurerm_eventhub_namespace.main.id
}

output "kafka_host" {
  description = "Host of the Kafka endpoint (RECSYS_BROKER_HOST)."
  value       = "${azurerm_eventhub_namespace.main.name}.servicebus.windows.net"
}

output "kafka_port" {
  description = "Port of the Kafka endpoint (RECSYS_BROKER_PORT); SASL_SSL."
  value       = 9093
}

output "clickstream_hub" {
  description = "Name of the clickstream hub / Kafka topic."
  value       = azurerm_eventhub.main["clickstream"].name
}

output "dead_letter_hub" {
  description = "Name of the dead-letter hub / Kafka topic."
  value       = azurerm_eventhub.main["dead_letter"].name
}

output "consumer_group" {
  description = "Kafka consumer group of the platform's readers (created on demand by the Kafka endpoint)."
  value       = var.consumer_group
}

output "connection_string_secret_id" {
  description = "Versionless Key Vault ID of the connection string secret. The ID, not the value."
  value       = azurerm_key_vault_secret.connection_string.versionless_id
}
