output "id" {
  description = "Private endpoint resource ID."
  value       = azurerm_private_endpoint.main.id
}

output "private_ip_address" {
  description = "Private IP of the endpoint in the subnet."
  value       = azurerm_private_endpoint.main.private_service_connection[0].private_ip_address
}
