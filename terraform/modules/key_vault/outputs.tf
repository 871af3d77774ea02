output "id" {
  description = "Key Vault resource ID. Depends on the deployer's role assignment, so secrets written with it can be created."
  value       = azurerm_key_vault.main.id

  depends_on = [azurerm_role_assignment.deployer_secrets_officer, module.private_endpoint]
}

output "name" {
  description = "Key Vault name."
  value       = azurerm_key_vault.main.name
}

output "vault_uri" {
  description = "Key Vault URI (https://<name>.vault.azure.net/)."
  value       = azurerm_key_vault.main.vault_uri
}
