output "environment_id" {
  description = "Container Apps environment resource ID."
  value       = azurerm_container_app_environment.main.id
}

output "default_domain" {
  description = "Default domain of the environment."
  value       = azurerm_container_app_environment.main.default_domain
}

output "app_names" {
  description = "Container app names by service."
  value       = { for k, a in azurerm_container_app.main : k => a.name }
}

output "app_fqdns" {
  description = "Ingress FQDN by service (external for api; internal to the environment for the others)."
  value       = { for k, a in azurerm_container_app.main : k => a.ingress[0].fqdn }
}

output "latest_revisions" {
  description = "Latest revision name by service (blue-green: shift traffic to it once it is ready)."
  value       = { for k, a in azurerm_container_app.main : k => a.latest_revision_name }
}
