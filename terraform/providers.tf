provider "azurerm" {
  subscription_id = var.subscription_id

  # The storage account disables shared-key access, so the provider talks to
  # the data plane with Entra ID tokens.
  storage_use_azuread = true

  features {
    key_vault {
      # Soft delete + purge protection are on; never purge on destroy.
      purge_soft_delete_on_destroy    = false
      recover_soft_deleted_key_vaults = true
    }
    resource_group {
      prevent_deletion_if_contains_resources = true
    }
  }
}
