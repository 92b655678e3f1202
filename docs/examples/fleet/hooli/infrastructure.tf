# A module block that reads its values from terraform.tfvars (var.*) and a variable default,
# in a project named with the older prefix.
variable "slug" {}
variable "zone" {}
variable "instance_version" {}

variable "machine_type" {
  default = "n1-standard-8"
}

variable "executors" {
  default = false
}

variable "labels" {
  default = {}
}

module "instance" {
  source = "git::https://github.com/example/deploy-managed.git//modules/gcp?ref=v3.2.0"

  slug                  = var.slug
  project_id            = "sourcegraph-managed-${var.slug}"
  zone                  = var.zone
  machine_type          = var.machine_type
  instance_version      = var.instance_version
  deployments           = ["blue"]
  disks                 = { blue = {} }
  enable_alerting       = true
  enable_executors      = var.executors
  executor_min_replicas = 1
  executor_max_replicas = 4
}
