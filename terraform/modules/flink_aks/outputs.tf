output "cluster_id" {
  description = "AKS cluster resource ID."
  value       = azurerm_kubernetes_cluster.main.id
}

output "cluster_name" {
  description = "AKS cluster name (az aks get-credentials --name ...; kubelogin converts the kubeconfig to Entra ID)."
  value       = azurerm_kubernetes_cluster.main.name
}

output "oidc_issuer_url" {
  description = "OIDC issuer of the cluster (workload identity federation)."
  value       = azurerm_kubernetes_cluster.main.oidc_issuer_url
}

output "workload_identity_client_id" {
  description = "Client ID of the Flink workload identity (service account annotation azure.workload.identity/client-id)."
  value       = azurerm_user_assigned_identity.flink.client_id
}

output "workload_identity_principal_id" {
  description = "Principal ID of the Flink workload identity (role assignments)."
  value       = azurerm_user_assigned_identity.flink.principal_id
}
