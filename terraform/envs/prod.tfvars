# terraform -chdir=terraform plan -var-file=envs/prod.tfvars -var subscription_id=... -var image_tag=<git sha>
environment = "prod"
location    = "westeurope"

# Documentation range (RFC 5737); replace with your office / CI egress CIDRs.
admin_cidrs = ["203.0.113.0/24"]

redis_sku                      = { name = "Premium", capacity = 1 }
eventhubs_sku                  = "Standard"
eventhubs_capacity             = 2
eventhubs_max_throughput_units = 8
topic_partitions               = 16
storage_replication            = "GZRS"
acr_sku                        = "Premium"
log_retention_days             = 90
container_apps_zone_redundant  = true

postgres = {
  sku_name              = "GP_Standard_D2ds_v5"
  storage_mb            = 65536
  backup_retention_days = 35
  geo_redundant_backup  = true
  high_availability     = true
}

# Blue-green: deploy the new image with revision_suffix = "green" and
# traffic blue 100 / green 0 (label "green" gives it its own URL), test it,
# then move the weights. See terraform/README.md.
apps = {
  api = {
    cpu          = 1
    memory       = "2Gi"
    min_replicas = 2
    max_replicas = 10
    traffic      = [{ percentage = 100, latest_revision = true }]
  }
  monitor  = { cpu = 0.5, memory = "1Gi", min_replicas = 1, max_replicas = 1 }
  rollback = { cpu = 0.25, memory = "0.5Gi", min_replicas = 1, max_replicas = 1 }
  mlflow   = { cpu = 0.5, memory = "1Gi", min_replicas = 1, max_replicas = 2 }
}

aks = {
  sku_tier          = "Standard"
  system_vm_size    = "Standard_D2ds_v5"
  system_node_count = 2
  flink_vm_size     = "Standard_D4ds_v5"
  flink_min_nodes   = 2
  flink_max_nodes   = 4
}

monthly_budget        = 3500
budget_start_date     = "2026-12-01T00:00:00Z"
budget_contact_emails = ["platform-team@example.com"]

tags = {
  "data-classification" = "internal"
}
