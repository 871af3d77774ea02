# terraform -chdir=terraform plan -var-file=envs/dev.tfvars -var subscription_id=... -var image_tag=<git sha>
environment = "dev"
location    = "westeurope"

# Documentation range (RFC 5737); replace with your office / CI egress CIDRs.
admin_cidrs = ["203.0.113.0/24"]

redis_sku           = { name = "Basic", capacity = 0 }
eventhubs_sku       = "Standard"
eventhubs_capacity  = 1
topic_partitions    = 4
storage_replication = "LRS"
acr_sku             = "Basic"
log_retention_days  = 30
log_daily_quota_gb  = 1

postgres = {
  sku_name              = "B_Standard_B1ms"
  storage_mb            = 32768
  backup_retention_days = 7
  geo_redundant_backup  = false
  high_availability     = false
}

apps = {
  api      = { cpu = 0.5, memory = "1Gi", min_replicas = 0, max_replicas = 2 }
  monitor  = { cpu = 0.25, memory = "0.5Gi", min_replicas = 1, max_replicas = 1 }
  rollback = { cpu = 0.25, memory = "0.5Gi", min_replicas = 1, max_replicas = 1 }
  mlflow   = { cpu = 0.5, memory = "1Gi", min_replicas = 1, max_replicas = 1 }
}

aks = {
  sku_tier          = "Free"
  system_vm_size    = "Standard_D2ds_v5"
  system_node_count = 1
  flink_vm_size     = "Standard_D4ds_v5"
  flink_min_nodes   = 0
  flink_max_nodes   = 2
}

monthly_budget        = 800
budget_start_date     = "2026-12-01T00:00:00Z"
budget_contact_emails = ["platform-team@example.com"]

tags = {
  "data-classification" = "internal"
}
