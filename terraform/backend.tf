# Remote state lives in an Azure Storage account created once, outside this
# configuration (see README.md, "Remote state"). The backend is configured
# partially: the values differ per environment and come from
# envs/<env>.backend.hcl at `terraform init -backend-config=...` time.
# Authentication uses Entra ID (use_azuread_auth), never a storage access key.
terraform {
  backend "azurerm" {}
}
