variable "name" {
  description = "Name stem (project-environment)."
  type        = string
}

variable "location" {
  description = "Azure region."
  type        = string
}

variable "resource_group_name" {
  description = "Resource group to create the network in."
  type        = string
}

variable "vnet_cidr" {
  description = "Address space of the virtual network."
  type        = string

  validation {
    condition     = can(cidrnetmask(var.vnet_cidr))
    error_message = "The vnet_cidr must be an IPv4 CIDR."
  }
}

variable "subnet_cidrs" {
  description = "Subnet CIDRs keyed by purpose: container_apps, aks, private_endpoints, postgres."
  type        = map(string)

  validation {
    condition     = length(setsubtract(["container_apps", "aks", "private_endpoints", "postgres"], keys(var.subnet_cidrs))) == 0
    error_message = "The subnet_cidrs needs the keys container_apps, aks, private_endpoints and postgres."
  }

  validation {
    condition     = alltrue([for c in values(var.subnet_cidrs) : can(cidrnetmask(c))])
    error_message = "Every subnet CIDR must be a valid IPv4 CIDR."
  }
}

variable "tags" {
  description = "Tags for every taggable resource."
  type        = map(string)
}
