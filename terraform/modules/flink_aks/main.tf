# AKS cluster that runs the Flink Kubernetes operator and the PyFlink jobs.
# Small by design: one system node for critical add-ons, one autoscaled user
# pool (tainted for Flink) for JobManager/TaskManager pods.

resource "azurerm_user_assigned_identity" "cluster" {
  name                = "id-${var.name}-aks"
  location            = var.location
  resource_group_name = var.resource_group_name
  tags                = var.tags
}

# Bring-your-own subnet: the control plane identity manages NICs/LBs in it.
resource "azurerm_role_assignment" "cluster_network" {
  scope                = var.subnet_id
  role_definition_name = "Network Contributor"
  principal_id         = azurerm_user_assigned_identity.cluster.principal_id
  principal_type       = "ServicePrincipal"
}

resource "azurerm_kubernetes_cluster" "main" {
  name                              = "aks-${var.name}"
  location                          = var.location
  resource_group_name               = var.resource_group_name
  dns_prefix                        = "aks-${var.name}"
  kubernetes_version                = var.kubernetes_version
  sku_tier                          = var.sku_tier
  node_resource_group               = "rg-${var.name}-aks-nodes"
  automatic_upgrade_channel         = "patch"
  node_os_upgrade_channel           = "NodeImage"
  local_account_disabled            = true
  role_based_access_control_enabled = true
  oidc_issuer_enabled               = true
  workload_identity_enabled         = true
  azure_policy_enabled              = true
  image_cleaner_enabled             = true
  image_cleaner_interval_hours      = 48
  tags                              = var.tags

  #checkov:skip=CKV_AZURE_170:sku_tier is a variable: Standard (uptime SLA) is the default and is set in prod.tfvars; dev.tfvars chooses Free to save cost.
  #checkov:skip=CKV_AZURE_6:Authorized IP ranges are always set, from api_authorized_cidrs, whose validation rejects an empty list and 0.0.0.0/x; checkov cannot resolve the variable.
  #checkov:skip=CKV_AZURE_115:The API server is public but limited to api_authorized_cidrs, requires Entra ID (local accounts disabled) and Azure RBAC; a private cluster needs self-hosted CI runners in the VNet (see README trade-offs).
  #checkov:skip=CKV_AZURE_117:OS disks are ephemeral (no persistent OS disk to encrypt with a disk encryption set) and host encryption covers temp disks and caches; no customer-managed-key requirement exists for this workload.

  default_node_pool {
    name                         = "system"
    vm_size                      = var.system_vm_size
    node_count                   = var.system_node_count
    vnet_subnet_id               = var.subnet_id
    only_critical_addons_enabled = true
    max_pods                     = 50
    os_sku                       = "AzureLinux"
    os_disk_type                 = "Ephemeral"
    os_disk_size_gb              = 64
    host_encryption_enabled      = true
    temporary_name_for_rotation  = "systemtmp"
    tags                         = var.tags

    upgrade_settings {
      max_surge = "10%"
    }
  }

  identity {
    type         = "UserAssigned"
    identity_ids = [azurerm_user_assigned_identity.cluster.id]
  }

  azure_active_directory_role_based_access_control {
    azure_rbac_enabled     = true
    tenant_id              = var.tenant_id
    admin_group_object_ids = var.admin_group_object_ids
  }

  api_server_access_profile {
    authorized_ip_ranges = var.api_authorized_cidrs
  }

  network_profile {
    network_plugin      = "azure"
    network_plugin_mode = "overlay"
    network_data_plane  = "cilium"
    network_policy      = "cilium"
    load_balancer_sku   = "standard"
    pod_cidr            = var.pod_cidr
    service_cidr        = var.service_cidr
    dns_service_ip      = cidrhost(var.service_cidr, 10)
  }

  oms_agent {
    log_analytics_workspace_id      = var.log_analytics_workspace_id
    msi_auth_for_monitoring_enabled = true
  }

  # Secrets Store CSI driver: the Flink pods mount Key Vault secrets (Event
  # Hubs connection string, Redis URL) through workload identity.
  key_vault_secrets_provider {
    secret_rotation_enabled  = true
    secret_rotation_interval = "2m"
  }

  lifecycle {
    ignore_changes = [
      # Patch versions move with the auto-upgrade channel.
      kubernetes_version,
    ]
  }

  depends_on = [azurerm_role_assignment.cluster_network]
}

resource "azurerm_kubernetes_cluster_node_pool" "flink" {
  name                    = "flink"
  kubernetes_cluster_id   = azurerm_kubernetes_cluster.main.id
  mode                    = "User"
  vm_size                 = var.flink_vm_size
  vnet_subnet_id          = var.subnet_id
  auto_scaling_enabled    = true
  min_count               = var.flink_min_nodes
  max_count               = var.flink_max_nodes
  max_pods                = 50
  os_sku                  = "AzureLinux"
  os_disk_type            = "Ephemeral"
  os_disk_size_gb         = 128
  host_encryption_enabled = true
  node_labels             = { workload = "flink" }
  node_taints             = ["workload=flink:NoSchedule"]
  tags                    = var.tags

  upgrade_settings {
    max_surge = "1"
  }
}

# Nodes pull the Flink job image from the platform registry.
resource "azurerm_role_assignment" "kubelet_acr_pull" {
  scope                = var.acr_id
  role_definition_name = "AcrPull"
  principal_id         = azurerm_kubernetes_cluster.main.kubelet_identity[0].object_id
  principal_type       = "ServicePrincipal"
}

# ---- workload identity of the Flink jobs ------------------------------------

resource "azurerm_user_assigned_identity" "flink" {
  name                = "id-${var.name}-flink"
  location            = var.location
  resource_group_name = var.resource_group_name
  tags                = var.tags
}

resource "azurerm_federated_identity_credential" "flink" {
  name                = "flink-service-account"
  resource_group_name = var.resource_group_name
  parent_id           = azurerm_user_assigned_identity.flink.id
  issuer              = azurerm_kubernetes_cluster.main.oidc_issuer_url
  subject             = "system:serviceaccount:${var.flink_namespace}:${var.flink_service_account}"
  audience            = ["api://AzureADTokenExchange"]
}

# ---- GitOps: Flux reconciles terraform/k8s/flink (operator + jobs) ----------

resource "azurerm_kubernetes_cluster_extension" "flux" {
  count = var.flux_git == null ? 0 : 1

  name           = "flux"
  cluster_id     = azurerm_kubernetes_cluster.main.id
  extension_type = "microsoft.flux"
}

resource "azurerm_kubernetes_flux_configuration" "flink" {
  count = var.flux_git == null ? 0 : 1

  name       = "flink"
  cluster_id = azurerm_kubernetes_cluster.main.id
  namespace  = "flux-system"
  scope      = "cluster"

  git_repository {
    url             = var.flux_git.url
    reference_type  = "branch"
    reference_value = var.flux_git.branch
  }

  kustomizations {
    name                       = "flink"
    path                       = var.flux_git.path
    garbage_collection_enabled = true

    post_build {
      substitute = merge(var.flux_substitutions, {
        FLINK_WORKLOAD_CLIENT_ID = azurerm_user_assigned_identity.flink.client_id
        TENANT_ID                = var.tenant_id
        FLINK_NAMESPACE          = var.flink_namespace
        FLINK_SERVICE_ACCOUNT    = var.flink_service_account
      })
    }
  }

  depends_on = [azurerm_kubernetes_cluster_extension.flux]
}

resource "azurerm_monitor_diagnostic_setting" "main" {
  name                       = "diag-to-log-analytics"
  target_resource_id         = azurerm_kubernetes_cluster.main.id
  log_analytics_workspace_id = var.log_analytics_workspace_id

  enabled_log {
    category = "kube-audit-admin"
  }

  enabled_log {
    category = "kube-apiserver"
  }

  enabled_log {
    category = "guard"
  }

  enabled_log {
    category = "cluster-autoscaler"
  }

  enabled_metric {
    category = "AllMetrics"
  }
}
