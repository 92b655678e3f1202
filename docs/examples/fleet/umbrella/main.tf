# A module block and nothing else: literal arguments only. No labels, so the customer is the
# folder's name.
module "instance" {
  source = "git::https://github.com/example/deploy-managed.git//modules/gcp?ref=v3.2.0"

  slug                       = "umbrella"
  project_id                 = "mi-umbrella"
  region                     = "europe-west1"
  zone                       = "europe-west1-b"
  machine_type               = "n1-standard-8"
  instance_version           = "v6.0.2"
  deployments                = ["green"]
  disks                      = { green = {} }
  public                     = false
  allowed_customer_ip_ranges = ["198.51.100.0/24", "203.0.113.16/28"]
  enable_alerting            = true
}
