# Broken on purpose: a slug GCP would not take in a project id.
slug             = "Bad_Slug"
instance_version = "6.1.0"
deployments      = ["blue"]
disks            = { blue = {} }
