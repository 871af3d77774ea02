# One private endpoint for one sub-resource of a PaaS service, registered in
# its private DNS zone. Every data service (Key Vault, Redis, Event Hubs,
# Storage, Container Registry) reaches the apps' VNet through this module.
resource "azurerm_private_endpoint" "main" {
  name                = "pe-${var.name}"
  location            = var.location
  resource_group_name = var.resource_group_name
  subnet_id           = var.subnet_id
  tags                = var.tags

  private_service_connection {
    name                           = "psc-${var.name}"
    private_connection_resource_id = var.resource_id
    subresource_names              = [var.subresource]
    is_manual_connection           = false
  }

  private_dns_zone_group {
    name                 = "default"
    private_dns_zone_ids = [var.private_dns_zone_id]
  }
}
