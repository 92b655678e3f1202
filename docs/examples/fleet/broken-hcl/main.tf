# Broken on purpose: an argument without its "=".
module "instance" {
  source = "git::https://github.com/example/deploy-managed.git//modules/gcp?ref=v3.2.0"

  slug             = "brokenhcl"
  zone             "us-central1-f"
  instance_version = "6.1.0"
}
