output "vnet_id" {
  description = "ID of the platform virtual network."
  value       = azurerm_virtual_network.main.id
}

output "subnet_ids" {
  description = "Subnet IDs keyed by purpose (container_apps, aks, private_endpoints, postgres)."
  value       = { for k, s in azurerm_subnet.main : k => s.id }

  # Consumers need the NSGs attached before they place anything in a subnet.
  depends_on = [azurerm_subnet_network_security_group_association.main]
}

output "private_dns_zone_ids" {
  description = "Private DNS zone IDs keyed by service (vault, redis, blob, dfs, servicebus, acr, postgres)."
  value       = { for k, z in azurerm_private_dns_zone.main : k => z.id }

  depends_on = [azurerm_private_dns_zone_virtual_network_link.main]
}
