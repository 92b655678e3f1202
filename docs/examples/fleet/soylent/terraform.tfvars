# Suspended the runbook's way: no deployment and no data disk (the snapshot stays in the
# project), so the portal adopts it as suspended.
slug             = "soylent"
project_id       = "mi-soylent"
machine_type     = "n1-standard-8"
instance_version = "6.0.0"
deployments      = []
disks            = {}

labels = {
  customer = "Soylent Corp"
}
