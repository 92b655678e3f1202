# The sandbox twin of modules/gcp: the same variables and outputs, no provider to download.
# The VM and the data disks are real resources of the sandbox Compute server (created and
# deleted through google-cloud-compute by provisioning.sandbox.cli); the rest of the GCP
# plumbing (project, network, address, load balancer, firewall, alerting, executors) is recorded
# as terraform_data so that plans show what the gcp module would change.
#
# How this machine reaches the CLI is not the instance's business, so it is neither a variable nor
# an attribute (a plan would show it): the provisioners run $SANDBOX_PYTHON (default python3) with
# the environment the portal gives Terraform (provisioning/workspace.py: SANDBOX_PYTHON,
# PYTHONPATH, SANDBOX_COMPUTE_URL), which destroy-time provisioners see as well.

terraform {
  required_version = ">= 1.9"
}

locals {
  # The load balancer serves the last deployment: during an upgrade the new color is appended.
  serving = length(var.deployments) > 0 ? var.deployments[length(var.deployments) - 1] : null
  labels = {
    managed-instance = var.slug
  }
  # Stands in for the global address: stable per slug, inside TEST-NET-3.
  address = "203.0.113.${parseint(substr(sha1(var.slug), 0, 2), 16) % 254 + 1}"
}

resource "terraform_data" "project" {
  input = {
    project_id      = var.project_id
    billing_account = var.billing_account
    folder_id       = var.folder_id
    labels          = local.labels
  }
}

resource "terraform_data" "network" {
  input = {
    network    = "${var.slug}-network"
    subnetwork = "${var.slug}-subnet"
    region     = var.region
    project_id = terraform_data.project.output.project_id
  }
}

# What makes a color's data disk and VM what they are: a change to it replaces them (through
# replace_triggered_by), while creating it replaces nothing. It is kept apart from the disk and
# the VM so that an existing disk and VM can be imported (fleet adoption, `import` blocks): an
# imported terraform_data holds only its id, and replace triggers of its own would replace it
# at once. (Older states keep the disk's and the VM's former triggers_replace: ignored.)
resource "terraform_data" "identity" {
  for_each = var.disks

  input = {
    data_disk = [var.project_id, var.zone, each.key, each.value.from_snapshot]
    vm        = [var.project_id, var.zone, var.machine_type]
  }
}

resource "terraform_data" "data_disk" {
  for_each = var.disks

  input = {
    project  = var.project_id
    zone     = var.zone
    name     = "${var.slug}-${each.key}-data"
    size_gb  = var.data_disk_size
    snapshot = each.value.from_snapshot == null ? "" : each.value.from_snapshot
  }

  provisioner "local-exec" {
    command = "\"$${SANDBOX_PYTHON:-python3}\" -m provisioning.sandbox.cli disk-create --project \"$PROJECT\" --zone \"$ZONE\" --name \"$NAME\" --size-gb \"$SIZE_GB\" --snapshot \"$SNAPSHOT\""
    environment = {
      PROJECT  = self.input.project
      ZONE     = self.input.zone
      NAME     = self.input.name
      SIZE_GB  = self.input.size_gb
      SNAPSHOT = self.input.snapshot
    }
  }

  # A disk imported by a run that removes it has no input yet: its id is its path,
  # projects/<project>/zones/<zone>/disks/<name>.
  provisioner "local-exec" {
    when    = destroy
    command = "\"$${SANDBOX_PYTHON:-python3}\" -m provisioning.sandbox.cli disk-delete --project \"$PROJECT\" --zone \"$ZONE\" --name \"$NAME\""
    environment = {
      PROJECT = try(self.input.project, split("/", self.id)[1])
      ZONE    = try(self.input.zone, split("/", self.id)[3])
      NAME    = try(self.input.name, split("/", self.id)[5])
    }
  }

  lifecycle {
    ignore_changes       = [triggers_replace]
    replace_triggered_by = [terraform_data.identity[each.key].input.data_disk]
  }
}

resource "terraform_data" "vm" {
  for_each = toset(var.deployments)

  input = {
    project      = var.project_id
    zone         = var.zone
    name         = "${var.slug}-${each.key}"
    machine_type = var.machine_type
    data_disk    = terraform_data.data_disk[each.key].output.name
    version      = var.instance_version
    color        = each.key
    slug         = var.slug
  }

  provisioner "local-exec" {
    command = "\"$${SANDBOX_PYTHON:-python3}\" -m provisioning.sandbox.cli register --project \"$PROJECT\" --zone \"$ZONE\" --name \"$NAME\" --machine-type \"$MACHINE_TYPE\" --data-disk \"$DATA_DISK\" --version \"$VERSION\" --label \"managed-instance=$SLUG\" --label \"deployment=$COLOR\""
    environment = {
      PROJECT      = self.input.project
      ZONE         = self.input.zone
      NAME         = self.input.name
      MACHINE_TYPE = self.input.machine_type
      DATA_DISK    = self.input.data_disk
      VERSION      = self.input.version
      SLUG         = self.input.slug
      COLOR        = self.input.color
    }
  }

  # A VM imported by a run that removes it has no input yet: its id is its path,
  # projects/<project>/zones/<zone>/instances/<name>.
  provisioner "local-exec" {
    when    = destroy
    command = "\"$${SANDBOX_PYTHON:-python3}\" -m provisioning.sandbox.cli deregister --project \"$PROJECT\" --zone \"$ZONE\" --name \"$NAME\""
    environment = {
      PROJECT = try(self.input.project, split("/", self.id)[1])
      ZONE    = try(self.input.zone, split("/", self.id)[3])
      NAME    = try(self.input.name, split("/", self.id)[5])
    }
  }

  lifecycle {
    ignore_changes = [triggers_replace]
    # A new machine type (or project, or zone) or a new data disk makes a new VM; the data disk
    # outlives it.
    replace_triggered_by = [
      terraform_data.identity[each.key].input.vm,
      terraform_data.data_disk[each.key].id,
    ]
  }
}

resource "terraform_data" "address" {
  input = {
    name    = "${var.slug}-address"
    address = local.address
  }
}

resource "terraform_data" "network_endpoint_group" {
  input = {
    name     = "${var.slug}-neg"
    zone     = var.zone
    endpoint = local.serving == null ? "" : terraform_data.vm[local.serving].output.name
  }
}

resource "terraform_data" "backend_service" {
  input = {
    name                   = "${var.slug}-backend"
    network_endpoint_group = terraform_data.network_endpoint_group.output.name
    certificate_domain     = "${var.slug}.${var.domain}"
    address                = terraform_data.address.output.address
    allowed_ip_ranges      = var.public ? ["*"] : var.allowed_customer_ip_ranges
  }
}

resource "terraform_data" "firewall" {
  input = {
    network       = terraform_data.network.output.network
    health_checks = ["130.211.0.0/22", "35.191.0.0/16"]
    iap_ssh       = ["35.235.240.0/20"]
  }
}

resource "terraform_data" "alerting" {
  count = var.enable_alerting ? 1 : 0

  input = {
    uptime_check = "https://${var.slug}.${var.domain}/sign-in"
  }
}

resource "terraform_data" "executors" {
  count = var.enable_executors ? 1 : 0

  input = {
    min_replicas = var.executor_min_replicas
    max_replicas = var.executor_max_replicas
    version      = var.instance_version
  }
}
