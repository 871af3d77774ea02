locals {
  app_names = { for k in keys(var.apps) : k => "ca-${var.name}-${k}" }

  # ---- environment of every platform service -------------------------------
  # Names are recsys.settings.Settings fields (RECSYS_ + upper-case field);
  # tests/test_terraform.py checks each one against Settings.model_fields.
  common_env = {
    RECSYS_BROKER_HOST           = var.broker_host
    RECSYS_BROKER_PORT           = tostring(var.broker_port)
    RECSYS_BROKER_AUTOSTART      = "false"
    # Event Hubs' Kafka endpoint: SASL PLAIN over TLS, user "$ConnectionString".
    RECSYS_BROKER_SECURITY_PROTOCOL = "SASL_SSL"
    RECSYS_BROKER_SASL_MECHANISM    = "PLAIN"
    RECSYS_BROKER_SASL_USERNAME     = "$ConnectionString"
    RECSYS_CLICKSTREAM_TOPIC     = var.clickstream_topic
    RECSYS_DEAD_LETTER_TOPIC     = var.dead_letter_topic
    RECSYS_TOPIC_PARTITIONS      = tostring(var.topic_partitions)
    RECSYS_CONSUMER_GROUP        = var.consumer_group
    RECSYS_REDIS_AUTOSTART       = "false"
    RECSYS_MLFLOW_HOST           = local.app_names["mlflow"]
    RECSYS_MLFLOW_PORT           = "80"
    RECSYS_MLFLOW_AUTOSTART      = "false"
    RECSYS_REGISTERED_MODEL_NAME = var.registered_model_name
    RECSYS_FEAST_PROJECT         = var.feast_project
    RECSYS_STATE_DIR             = "/tmp/recsys/state"
    RECSYS_DATA_DIR              = "/tmp/recsys/data"
    # azure-identity's DefaultAzureCredential picks the user-assigned identity.
    AZURE_CLIENT_ID = var.identity_client_id
  }

  # Secret-bearing settings: env var name => Key Vault-backed app secret name.
  common_secret_env = {
    RECSYS_REDIS_URL            = "redis-url"
    RECSYS_POSTGRES_DSN         = "postgres-dsn"
    RECSYS_BROKER_SASL_PASSWORD = "eventhubs-connection-string" # checkov:skip=CKV_SECRET_6:the name of a Key Vault-backed app secret, not a value
  }

  services = {
    api = {
      target_port = 8000
      external    = true
      insecure    = false
      liveness    = "/health"
      readiness   = "/ready"
      command     = var.commands["api"]
      env = merge(local.common_env, {
        RECSYS_API_HOST = "0.0.0.0"
        RECSYS_API_PORT = "8000"
        # The console's monitoring page relays the monitor's metrics.
        RECSYS_MONITOR_HOST = local.app_names["monitor"]
        RECSYS_MONITOR_PORT = "80"
      })
      secret_env = merge(local.common_secret_env, {
        RECSYS_API_JWT_SECRET = "jwt-secret" # checkov:skip=CKV_SECRET_6:the name of a Key Vault-backed app secret, not a value
      })
    }
    monitor = {
      target_port = 8000
      external    = false
      insecure    = false
      # The monitor's HTTP server is its Prometheus endpoint; it answers while the
      # broker or MLflow is away, so it doubles as the health probe.
      liveness  = "/metrics"
      readiness = "/metrics"
      command   = var.commands["monitor"]
      env = merge(local.common_env, {
        RECSYS_MONITOR_HOST = "0.0.0.0"
        RECSYS_MONITOR_PORT = "8000"
      })
      secret_env = local.common_secret_env
    }
    rollback = {
      target_port = 8000
      external    = false
      insecure    = false
      liveness    = "/health"
      readiness   = "/health"
      command     = var.commands["rollback"]
      env = merge(local.common_env, {
        RECSYS_ROLLBACK_HOST    = "0.0.0.0"
        RECSYS_ROLLBACK_PORT    = "8000"
        RECSYS_ROLLBACK_API_URL = "http://${local.app_names["api"]}"
      })
      secret_env = local.common_secret_env
    }
    mlflow = {
      target_port = 5000
      external    = false
      # Settings composes the tracking URI as http://RECSYS_MLFLOW_HOST:PORT;
      # the hop stays inside the environment's VNet.
      insecure  = true
      liveness  = "/health"
      readiness = "/health"
      command = [
        "sh", "-c",
        "exec mlflow server --backend-store-uri \"$RECSYS_MLFLOW_BACKEND_URI\" --artifacts-destination \"$MLFLOW_ARTIFACTS_DESTINATION\" --serve-artifacts --host 0.0.0.0 --port 5000 --workers 2",
      ]
      env = {
        MLFLOW_ARTIFACTS_DESTINATION = var.mlflow_artifacts_uri
        AZURE_CLIENT_ID              = var.identity_client_id
        # no GenAI job runner: nothing here submits MLflow server jobs
        MLFLOW_SERVER_ENABLE_JOB_EXECUTION = "false"
      }
      secret_env = {
        RECSYS_MLFLOW_BACKEND_URI = "mlflow-backend-uri"
      }
    }
  }

  # Each app references only the Key Vault secrets it uses.
  app_secrets = {
    for k, s in local.services : k => toset(values(s.secret_env))
  }
}

resource "azurerm_container_app_environment" "main" {
  name                               = "cae-${var.name}"
  location                           = var.location
  resource_group_name                = var.resource_group_name
  log_analytics_workspace_id         = var.log_analytics_workspace_id
  infrastructure_subnet_id           = var.infrastructure_subnet_id
  infrastructure_resource_group_name = "rg-${var.name}-cae-infra"
  internal_load_balancer_enabled     = false
  zone_redundancy_enabled            = var.zone_redundancy_enabled
  tags                               = var.tags

  workload_profile {
    name                  = "Consumption"
    workload_profile_type = "Consumption"
  }
}

resource "azurerm_container_app" "main" {
  for_each = local.services

  name                         = local.app_names[each.key]
  container_app_environment_id = azurerm_container_app_environment.main.id
  resource_group_name          = var.resource_group_name
  workload_profile_name        = "Consumption"
  # Blue-green: several revisions live side by side, ingress splits traffic.
  revision_mode = "Multiple"
  tags          = merge(var.tags, { service = each.key })

  identity {
    type         = "UserAssigned"
    identity_ids = [var.identity_id]
  }

  registry {
    server   = var.registry_server
    identity = var.identity_id
  }

  # Key Vault references only: the app resolves the value with the managed
  # identity at start-up; no secret value is in Terraform's config.
  dynamic "secret" {
    for_each = local.app_secrets[each.key]
    content {
      name                = secret.value
      key_vault_secret_id = var.key_vault_secret_ids[secret.value]
      identity            = var.identity_id
    }
  }

  ingress {
    external_enabled           = each.value.external
    target_port                = each.value.target_port
    transport                  = "http"
    allow_insecure_connections = each.value.insecure

    dynamic "traffic_weight" {
      for_each = var.apps[each.key].traffic
      content {
        percentage      = traffic_weight.value.percentage
        latest_revision = traffic_weight.value.latest_revision
        revision_suffix = traffic_weight.value.revision_suffix
        label           = traffic_weight.value.label
      }
    }

    dynamic "ip_security_restriction" {
      for_each = each.key == "api" ? var.api_allowed_cidrs : []
      content {
        name             = "allow-${replace(replace(ip_security_restriction.value, ".", "-"), "/", "_")}"
        action           = "Allow"
        ip_address_range = ip_security_restriction.value
      }
    }
  }

  template {
    min_replicas    = var.apps[each.key].min_replicas
    max_replicas    = var.apps[each.key].max_replicas
    revision_suffix = var.apps[each.key].revision_suffix

    container {
      name    = each.key
      image   = var.image
      command = each.value.command
      cpu     = var.apps[each.key].cpu
      memory  = var.apps[each.key].memory

      dynamic "env" {
        for_each = each.value.env
        content {
          name  = env.key
          value = env.value
        }
      }

      dynamic "env" {
        for_each = each.value.secret_env
        content {
          name        = env.key
          secret_name = env.value
        }
      }

      liveness_probe {
        transport               = "HTTP"
        port                    = each.value.target_port
        path                    = each.value.liveness
        initial_delay           = 10
        interval_seconds        = 10
        timeout                 = 3
        failure_count_threshold = 3
      }

      readiness_probe {
        transport               = "HTTP"
        port                    = each.value.target_port
        path                    = each.value.readiness
        interval_seconds        = 5
        timeout                 = 3
        failure_count_threshold = 3
        success_count_threshold = 1
      }

      # Model loading and Feast/MLflow connections take a while on cold start.
      startup_probe {
        transport               = "HTTP"
        port                    = each.value.target_port
        path                    = each.value.liveness
        interval_seconds        = 5
        timeout                 = 3
        failure_count_threshold = 30
      }
    }

    http_scale_rule {
      name                = "http-concurrency"
      concurrent_requests = tostring(each.key == "api" ? var.api_http_concurrency : 100)
    }

    dynamic "custom_scale_rule" {
      for_each = each.key == "api" ? [1] : []
      content {
        name             = "cpu"
        custom_rule_type = "cpu"
        metadata = {
          type  = "Utilization"
          value = "70"
        }
      }
    }
  }
}
