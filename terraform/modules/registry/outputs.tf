output "id" {
  description = "Container registry resource ID (scope of the AcrPull assignments)."
  value       = azurerm_container_registry.main.id
}

output "login_server" {
  description = "Registry login server, e.g. acrrecsysdev1a2b.azurecr.io."
  value       = azurerm_container_registry.main.login_server
}
