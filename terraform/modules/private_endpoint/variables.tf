variable "name" {
  description = "Suffix of the endpoint's name (pe-<name>) and its service connection (psc-<name>)."
  type        = string
}

variable "location" {
  description = "Azure region (the VNet's)."
  type        = string
}

variable "resource_group_name" {
  description = "Resource group of the endpoint."
  type        = string
}

variable "subnet_id" {
  description = "Subnet that holds private endpoints."
  type        = string
}

variable "resource_id" {
  description = "ID of the service the endpoint connects to."
  type        = string
}

variable "subresource" {
  description = "Private Link sub-resource (group ID), e.g. vault, redisCache, namespace, blob, registry."
  type        = string
}

variable "private_dns_zone_id" {
  description = "Private DNS zone the endpoint's A record is registered in."
  type        = string
}

variable "tags" {
  description = "Tags applied to the endpoint."
  type        = map(string)
}
