locals {
  # Private DNS zones for the private endpoints (and the PostgreSQL VNet
  # integration, whose zone name must end in .postgres.database.azure.com).
  private_dns_zones = {
    vault      = "privatelink.vaultcore.azure.net"
    redis      = "privatelink.redis.cache.windows.net"
    blob       = "privatelink.blob.core.windows.net"
    dfs        = "privatelink.dfs.core.windows.net"
    servicebus = "privatelink.servicebus.windows.net"
    acr        = "privatelink.azurecr.io"
    postgres   = "${var.name}.private.postgres.database.azure.com"
  }

  delegations = {
    container_apps = "Microsoft.App/environments"
    postgres       = "Microsoft.DBforPostgreSQL/flexibleServers"
  }
}

resource "azurerm_virtual_network" "main" {
  name                = "vnet-${var.name}"
  location            = var.location
  resource_group_name = var.resource_group_name
  address_space       = [var.vnet_cidr]
  tags                = var.tags
}

resource "azurerm_subnet" "main" {
  for_each = var.subnet_cidrs

  name                 = "snet-${replace(each.key, "_", "-")}"
  resource_group_name  = var.resource_group_name
  virtual_network_name = azurerm_virtual_network.main.name
  address_prefixes     = [each.value]

  # Private endpoints honour NSG rules on their subnet.
  private_endpoint_network_policies = each.key == "private_endpoints" ? "Enabled" : "Disabled"

  service_endpoints = each.key == "aks" ? ["Microsoft.Storage", "Microsoft.KeyVault"] : []

  dynamic "delegation" {
    for_each = contains(keys(local.delegations), each.key) ? [local.delegations[each.key]] : []
    content {
      name = "delegation"
      service_delegation {
        name = delegation.value
        actions = [
          "Microsoft.Network/virtualNetworks/subnets/join/action",
        ]
      }
    }
  }
}

resource "azurerm_network_security_group" "main" {
  for_each = var.subnet_cidrs

  name                = "nsg-${var.name}-${replace(each.key, "_", "-")}"
  location            = var.location
  resource_group_name = var.resource_group_name
  tags                = var.tags
}

# Data services (private endpoints, PostgreSQL) accept traffic from the VNet only.
resource "azurerm_network_security_rule" "deny_internet_inbound" {
  for_each = toset(["private_endpoints", "postgres"])

  name                        = "deny-internet-inbound"
  priority                    = 4000
  direction                   = "Inbound"
  access                      = "Deny"
  protocol                    = "*"
  source_port_range           = "*"
  destination_port_range      = "*"
  source_address_prefix       = "Internet"
  destination_address_prefix  = "*"
  resource_group_name         = var.resource_group_name
  network_security_group_name = azurerm_network_security_group.main[each.key].name
}

resource "azurerm_subnet_network_security_group_association" "main" {
  for_each = var.subnet_cidrs

  subnet_id                 = azurerm_subnet.main[each.key].id
  network_security_group_id = azurerm_network_security_group.main[each.key].id
}

resource "azurerm_private_dns_zone" "main" {
  for_each = local.private_dns_zones

  name                = each.value
  resource_group_name = var.resource_group_name
  tags                = var.tags
}

resource "azurerm_private_dns_zone_virtual_network_link" "main" {
  for_each = local.private_dns_zones

  name                  = "link-${each.key}"
  resource_group_name   = var.resource_group_name
  private_dns_zone_name = azurerm_private_dns_zone.main[each.key].name
  virtual_network_id    = azurerm_virtual_network.main.id
  registration_enabled  = false
  tags                  = var.tags
}
