output "id" {
  description = "Redis cache resource ID."
  value       = azurerm_redis_cache.main.id
}

output "hostname" {
  description = "Redis host name (TLS port 6380 only; the non-TLS port is disabled)."
  value       = azurerm_redis_cache.main.hostname
}

output "redis_url_secret_id" {
  description = "Versionless Key Vault ID of the redis-url secret (RECSYS_REDIS_URL). The ID, not the value."
  value       = azurerm_key_vault_secret.redis_url.versionless_id
}
