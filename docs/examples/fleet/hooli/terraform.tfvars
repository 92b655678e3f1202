slug             = "hooli"
zone             = "us-east1-c"
machine_type     = "n1-standard-32"
instance_version = "6.1.0"
executors        = true

labels = {
  customer = "Hooli XYZ"
}
