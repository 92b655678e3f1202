# Broken on purpose: machine_type is a number, not a string.
slug             = "wrongtype"
machine_type     = 16
instance_version = "6.1.0"
deployments      = ["blue"]
disks            = { blue = {} }
