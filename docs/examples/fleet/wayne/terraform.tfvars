# Wayne Enterprises: the team's usual layout, every variable of the gcp module in
# terraform.tfvars (here without the infrastructure.tf that passes them on).
slug             = "wayne"
project_id       = "mi-wayne"
zone             = "us-central1-f"
machine_type     = "n1-standard-16"
data_disk_size   = 500
instance_version = "6.1.0"
deployments      = ["blue"]
disks = {
  blue = {}
}
public          = true
enable_alerting = true

# Not a variable of the module: read by the portal only.
labels = {
  customer = "Wayne Enterprises"
}
