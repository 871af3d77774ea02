locals {
  name   = "${var.project}-${var.environment}"
  suffix = random_string.suffix.result

  # Every taggable resource gets these (modules receive them as `tags`).
  tags = merge(
    {
      project       = var.project
      environment   = var.environment
      owner         = var.owner
      "cost-center" = var.cost_center
      "managed-by"  = "terraform"
      repository    = "recsys-platform"
    },
    var.tags,
  )

  image = "${module.registry.login_server}/${var.image_repository}:${var.image_tag}"

  # Key Vault secrets (versionless ids) the container apps may reference, by
  # the name the apps know them under. Values never leave Key Vault.
  key_vault_secret_ids = {
    "redis-url"                   = module.redis.redis_url_secret_id
    "postgres-dsn"                = module.postgres.feast_dsn_secret_id
    "mlflow-backend-uri"          = module.postgres.mlflow_dsn_secret_id
    "eventhubs-connection-string" = module.event_hubs.connection_string_secret_id
    "jwt-secret"                  = azurerm_key_vault_secret.jwt.versionless_id
  }
}
