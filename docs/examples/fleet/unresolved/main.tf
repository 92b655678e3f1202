# Broken on purpose: the machine type comes from a local the import does not evaluate.
locals {
  size = "n1-standard-16"
}

module "instance" {
  source = "git::https://github.com/example/deploy-managed.git//modules/gcp?ref=v3.2.0"

  slug             = "unresolved"
  machine_type     = local.size
  instance_version = "6.1.0"
}
