# The same variables as modules/gcp (tests/provisioning/test_terraform_modules.py checks it), so
# one workspace's terraform.tfvars.json drives either module.

variable "slug" {
  description = "The customer's slug: names the VMs and disks, and the URL <slug>.<domain>."
  type        = string

  validation {
    condition     = can(regex("^[a-z]([-a-z0-9]{0,22}[a-z0-9])?$", var.slug))
    error_message = "slug: 1-24 lowercase letters, digits and hyphens, starting with a letter and not ending with a hyphen."
  }
}

variable "project_id" {
  description = "The customer's own GCP project (<prefix>-<slug>); it can never change."
  type        = string

  validation {
    condition     = can(regex("^[a-z][-a-z0-9]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id: 6-30 lowercase letters, digits and hyphens, starting with a letter and not ending with a hyphen."
  }
}

variable "region" {
  description = "Region of the subnetwork, the egress NAT and the snapshot schedule."
  type        = string
  default     = "us-central1"
}

variable "zone" {
  description = "Zone of the VM and its data disk (a zone outage is downtime: no HA)."
  type        = string
  default     = "us-central1-f"
}

variable "machine_type" {
  description = "Machine type of the VM, up to n1-standard-96."
  type        = string
  default     = "n1-standard-8"
}

variable "data_disk_size" {
  description = "Size of each data disk in GB. It can only grow."
  type        = number
  default     = 250

  validation {
    condition     = var.data_disk_size >= 10 && floor(var.data_disk_size) == var.data_disk_size
    error_message = "data_disk_size: a whole number of GB, at least 10."
  }
}

variable "deployments" {
  description = "Deployment colors with a VM, e.g. [\"blue\"]; the last one is served. [] scales the instance to zero (suspended)."
  type        = list(string)
  default     = ["blue"]

  validation {
    condition     = alltrue([for color in var.deployments : can(regex("^[a-z]{1,10}$", color))]) && length(distinct(var.deployments)) == length(var.deployments)
    error_message = "deployments: distinct colors of 1-10 lowercase letters."
  }

  validation {
    condition     = alltrue([for color in var.deployments : contains(keys(var.disks), color)])
    error_message = "deployments: every deployment needs its data disk in disks (disks.<color> = {})."
  }
}

variable "disks" {
  description = "Data disk per deployment color, optionally restored from a snapshot: { blue = { from_snapshot = \"...\" } }."
  type = map(object({
    from_snapshot = optional(string)
  }))
  default = {}
}

variable "public" {
  description = "Reachable from the internet (behind the customer's SSO); false restricts it to allowed_customer_ip_ranges."
  type        = bool
  default     = true

  validation {
    condition     = var.public || length(var.allowed_customer_ip_ranges) > 0
    error_message = "public = false needs at least one range in allowed_customer_ip_ranges."
  }
}

variable "allowed_customer_ip_ranges" {
  description = "CIDR ranges allowed in when public = false."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for cidr in var.allowed_customer_ip_ranges : can(cidrhost(cidr, 0))]) && length(var.allowed_customer_ip_ranges) <= 10
    error_message = "allowed_customer_ip_ranges: at most 10 CIDR ranges such as 203.0.113.0/24."
  }
}

variable "enable_alerting" {
  description = "Uptime check and alert policy on the instance's URL."
  type        = bool
  default     = false
}

variable "enable_executors" {
  description = "An autoscaled group of executor VMs."
  type        = bool
  default     = false
}

variable "executor_min_replicas" {
  description = "Fewest executor VMs when enable_executors."
  type        = number
  default     = 0
}

variable "executor_max_replicas" {
  description = "Most executor VMs when enable_executors."
  type        = number
  default     = 0

  validation {
    condition     = var.executor_max_replicas >= var.executor_min_replicas && var.executor_min_replicas >= 0
    error_message = "executor_max_replicas must be at least executor_min_replicas, and both non-negative."
  }
}

variable "instance_version" {
  description = "Product version the VM runs."
  type        = string
}

variable "domain" {
  description = "The instance answers at https://<slug>.<domain>."
  type        = string
  default     = "managed.example.com"
}

variable "billing_account" {
  description = "Billing account of the new project (gcp module; \"\" leaves it unset)."
  type        = string
  default     = ""
}

variable "folder_id" {
  description = "Folder of the new project (gcp module; \"\" leaves it unset)."
  type        = string
  default     = ""
}
