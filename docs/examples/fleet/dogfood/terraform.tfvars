# An internal instance (the category label; ignored where the portal has no categories).
slug             = "dogfood"
project_id       = "mi-dogfood"
machine_type     = "n1-standard-8"
instance_version = "6.1.0"
deployments      = ["blue"]
disks            = { blue = {} }

labels = {
  customer = "Sourcegraph"
  category = "internal"
}
