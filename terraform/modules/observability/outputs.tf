output "workspace_id" {
  description = "Resource ID of the Log Analytics workspace (diagnostic settings and the Container Apps environment send here)."
  value       = azurerm_log_analytics_workspace.main.id
}

output "workspace_customer_id" {
  description = "Workspace (customer) ID, for queries and dashboards."
  value       = azurerm_log_analytics_workspace.main.workspace_id
}
