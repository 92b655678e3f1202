# One managed instance on Google Cloud: its own project, a network with a NAT'd static egress
# address, one VM per deployment color with its data disk (snapshotted daily), a zonal network
# endpoint group behind a global HTTPS load balancer, firewall rules, optional alerting and
# executors. modules/sandbox has the same variables and outputs.
#
# Security (docs/operations.md, "Security"): SSH only through IAP with OS Login and no project
# SSH keys; HTTPS only from Cloudflare (public) or the customer's allowlist (not public), through
# Cloud Armor, which also blocks Log4Shell probes; Cloud Audit Logs for every service and VPC
# flow logs on the subnetwork. tests/provisioning/test_checkov.py runs checkov on this module.

terraform {
  required_version = ">= 1.9"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = ">= 6.0, < 7.0"
    }
  }
}

locals {
  # The load balancer serves the last deployment: during an upgrade the new color is appended.
  serving  = length(var.deployments) > 0 ? var.deployments[length(var.deployments) - 1] : null
  hostname = "${var.slug}.${var.domain}"
  labels = {
    managed-instance = var.slug
  }
  # Google's load balancer health checks and IAP TCP forwarding.
  health_check_ranges = ["130.211.0.0/22", "35.191.0.0/16"]
  iap_ranges          = ["35.235.240.0/20"]
  # Cloudflare's published ranges (https://www.cloudflare.com/ips-v4 and ips-v6): a public
  # instance is reached only through Cloudflare, in front of the customer's SSO. Cloud Armor takes
  # at most 10 ranges per rule: three rules take them.
  cloudflare_ranges = [
    [
      "173.245.48.0/20",
      "103.21.244.0/22",
      "103.22.200.0/22",
      "103.31.4.0/22",
      "141.101.64.0/18",
      "108.162.192.0/18",
      "190.93.240.0/20",
      "188.114.96.0/20",
      "197.234.240.0/22",
      "198.41.128.0/17",
    ],
    [
      "162.158.0.0/15",
      "104.16.0.0/13",
      "104.24.0.0/14",
      "172.64.0.0/13",
      "131.0.72.0/22",
      "2400:cb00::/32",
      "2606:4700::/32",
      "2803:f800::/32",
      "2405:b500::/32",
      "2405:8100::/32",
    ],
    [
      "2a06:98c0::/29",
      "2c0f:f248::/32",
    ],
  ]
  services = [
    "compute.googleapis.com",
    "logging.googleapis.com",
    "monitoring.googleapis.com",
  ]
}

resource "google_project" "instance" {
  project_id          = var.project_id
  name                = var.project_id
  billing_account     = var.billing_account == "" ? null : var.billing_account
  folder_id           = var.folder_id == "" ? null : var.folder_id
  auto_create_network = false
  labels              = local.labels
  deletion_policy     = "DELETE"
}

# Cloud Audit Logs: admin activity is always on; data access (reads and writes) for every service
# and every user too.
resource "google_project_iam_audit_config" "all_services" {
  project = google_project.instance.project_id
  service = "allServices"

  audit_log_config {
    log_type = "ADMIN_READ"
  }

  audit_log_config {
    log_type = "DATA_READ"
  }

  audit_log_config {
    log_type = "DATA_WRITE"
  }
}

resource "google_project_service" "services" {
  for_each = toset(local.services)

  project            = google_project.instance.project_id
  service            = each.value
  disable_on_destroy = false
}

# Network and egress: VMs have no external address; they reach code hosts through a NAT with a
# static address the customer can allow.

resource "google_compute_network" "network" {
  project                 = google_project.instance.project_id
  name                    = "${var.slug}-network"
  auto_create_subnetworks = false

  depends_on = [google_project_service.services]
}

resource "google_compute_subnetwork" "subnet" {
  project                  = google_project.instance.project_id
  name                     = "${var.slug}-subnet"
  region                   = var.region
  network                  = google_compute_network.network.id
  ip_cidr_range            = "10.0.0.0/24"
  private_ip_google_access = true

  # VPC flow logs, for the security team's investigations.
  log_config {
    aggregation_interval = "INTERVAL_5_SEC"
    flow_sampling        = 0.5
    metadata             = "INCLUDE_ALL_METADATA"
  }
}

resource "google_compute_address" "egress" {
  project = google_project.instance.project_id
  name    = "${var.slug}-egress"
  region  = var.region
}

resource "google_compute_router" "router" {
  project = google_project.instance.project_id
  name    = "${var.slug}-router"
  region  = var.region
  network = google_compute_network.network.id
}

resource "google_compute_router_nat" "egress" {
  project                            = google_project.instance.project_id
  name                               = "${var.slug}-nat"
  region                             = var.region
  router                             = google_compute_router.router.name
  nat_ip_allocate_option             = "MANUAL_ONLY"
  nat_ips                            = [google_compute_address.egress.self_link]
  source_subnetwork_ip_ranges_to_nat = "ALL_SUBNETWORKS_ALL_IP_RANGES"
}

resource "google_compute_firewall" "load_balancer" {
  project       = google_project.instance.project_id
  name          = "${var.slug}-allow-load-balancer"
  network       = google_compute_network.network.id
  source_ranges = local.health_check_ranges
  target_tags   = ["sourcegraph"]

  allow {
    protocol = "tcp"
    ports    = ["80"]
  }
}

# SSH only through IAP TCP forwarding (`gcloud compute ssh --tunnel-through-iap`), signed in with
# OS Login; the VMs have no external address and accept no project-wide SSH keys.
resource "google_compute_firewall" "iap_ssh" {
  project       = google_project.instance.project_id
  name          = "${var.slug}-allow-iap-ssh"
  network       = google_compute_network.network.id
  source_ranges = local.iap_ranges
  target_tags   = ["sourcegraph"]

  allow {
    protocol = "tcp"
    ports    = ["22"]
  }
}

# Data disks, one per deployment color, with a daily snapshot schedule.

resource "google_compute_disk" "data" {
  # checkov:skip=CKV_GCP_37:Encrypted at rest with Google-managed keys. Customer-supplied keys would have to be held by the portal and sent with every VM start, snapshot and restore, which unattended restarts and the daily snapshot schedule cannot do.
  for_each = var.disks

  project  = google_project.instance.project_id
  zone     = var.zone
  name     = "${var.slug}-${each.key}-data"
  type     = "pd-ssd"
  size     = var.data_disk_size
  snapshot = each.value.from_snapshot
  labels   = merge(local.labels, { deployment = each.key })

  depends_on = [google_project_service.services]
}

resource "google_compute_resource_policy" "daily_snapshots" {
  project = google_project.instance.project_id
  name    = "${var.slug}-daily-snapshots"
  region  = var.region

  snapshot_schedule_policy {
    schedule {
      daily_schedule {
        days_in_cycle = 1
        start_time    = "04:00"
      }
    }

    retention_policy {
      max_retention_days    = 14
      on_source_disk_delete = "KEEP_AUTO_SNAPSHOTS"
    }

    snapshot_properties {
      labels            = local.labels
      storage_locations = [var.region]
    }
  }
}

resource "google_compute_disk_resource_policy_attachment" "data" {
  for_each = var.disks

  project = google_project.instance.project_id
  zone    = var.zone
  name    = google_compute_resource_policy.daily_snapshots.name
  disk    = google_compute_disk.data[each.key].name
}

# The VMs.

resource "google_service_account" "vm" {
  project      = google_project.instance.project_id
  account_id   = "instance-vm"
  display_name = "Managed instance VM"
}

resource "google_compute_instance" "vm" {
  # checkov:skip=CKV_GCP_38:The boot disk holds only the OS image (the data lives on the data disk) and is encrypted at rest with Google-managed keys; customer-supplied keys would stop unattended restarts, as for the data disk.
  for_each = toset(var.deployments)

  project                   = google_project.instance.project_id
  zone                      = var.zone
  name                      = "${var.slug}-${each.key}"
  machine_type              = var.machine_type
  allow_stopping_for_update = true
  tags                      = ["sourcegraph"]
  labels = merge(local.labels, {
    deployment = each.key
    version    = replace(var.instance_version, ".", "-")
  })

  boot_disk {
    initialize_params {
      image = "ubuntu-os-cloud/ubuntu-2204-lts"
      size  = 50
      type  = "pd-ssd"
    }
  }

  attached_disk {
    source      = google_compute_disk.data[each.key].self_link
    device_name = "data"
  }

  network_interface {
    subnetwork = google_compute_subnetwork.subnet.id
  }

  metadata = {
    enable-oslogin         = "TRUE"
    block-project-ssh-keys = true
    instance-version       = var.instance_version
  }

  metadata_startup_script = <<-EOT
    #!/usr/bin/env bash
    set -euo pipefail
    DEVICE=/dev/disk/by-id/google-data
    blkid "$DEVICE" || mkfs.ext4 -m 0 -E lazy_itable_init=0,lazy_journal_init=0 "$DEVICE"
    mkdir -p /mnt/data
    mountpoint -q /mnt/data || mount -o discard,defaults "$DEVICE" /mnt/data
    resize2fs "$DEVICE"
    cd /mnt/data/deploy
    SOURCEGRAPH_VERSION='${var.instance_version}' docker compose up -d --remove-orphans
  EOT

  service_account {
    email  = google_service_account.vm.email
    scopes = ["cloud-platform"]
  }

  shielded_instance_config {
    enable_secure_boot = true
  }

  depends_on = [google_compute_router_nat.egress]
}

# Load balancing: a zonal NEG pointing at the served VM, behind a global HTTPS load balancer with
# a managed certificate and, when not public, an IP allowlist.

resource "google_compute_network_endpoint_group" "neg" {
  project               = google_project.instance.project_id
  zone                  = var.zone
  name                  = "${var.slug}-neg"
  network               = google_compute_network.network.id
  subnetwork            = google_compute_subnetwork.subnet.id
  network_endpoint_type = "GCE_VM_IP_PORT"
  default_port          = 80
}

resource "google_compute_network_endpoint" "served" {
  for_each = local.serving == null ? toset([]) : toset([local.serving])

  project                = google_project.instance.project_id
  zone                   = var.zone
  network_endpoint_group = google_compute_network_endpoint_group.neg.name
  instance               = google_compute_instance.vm[each.key].name
  ip_address             = google_compute_instance.vm[each.key].network_interface[0].network_ip
  port                   = 80
}

resource "google_compute_health_check" "http" {
  project             = google_project.instance.project_id
  name                = "${var.slug}-health"
  check_interval_sec  = 10
  timeout_sec         = 5
  healthy_threshold   = 2
  unhealthy_threshold = 3

  http_health_check {
    port         = 80
    request_path = "/-/healthz"
  }
}

# Who may reach the load balancer: Cloudflare's ranges for a public instance, the customer's
# allowlist otherwise; everything else is refused. Log4Shell (CVE-2021-44228) probes are refused
# first, whoever sends them. The rules are static blocks, read top to bottom (checkov, which
# tests/provisioning/test_checkov.py runs, cannot see rules beside a dynamic block).
resource "google_compute_security_policy" "access" {
  project = google_project.instance.project_id
  name    = "${var.slug}-access"

  rule {
    action      = "deny(403)"
    priority    = 900
    description = "Log4j JNDI lookups (CVE-2021-44228, CVE-2021-45046)"
    match {
      expr {
        expression = "evaluatePreconfiguredExpr('cve-canary')"
      }
    }
  }

  rule {
    action      = "allow"
    priority    = 1000
    description = var.public ? "Cloudflare (1 of 3)" : "The customer's allowed ranges"
    match {
      versioned_expr = "SRC_IPS_V1"
      config {
        src_ip_ranges = var.public ? local.cloudflare_ranges[0] : var.allowed_customer_ip_ranges
      }
    }
  }

  # Cloudflare's other ranges: allowed for a public instance, refused (as by the default rule)
  # for one behind the customer's allowlist.
  rule {
    action      = var.public ? "allow" : "deny(403)"
    priority    = 1001
    description = "Cloudflare (2 of 3)"
    match {
      versioned_expr = "SRC_IPS_V1"
      config {
        src_ip_ranges = local.cloudflare_ranges[1]
      }
    }
  }

  rule {
    action      = var.public ? "allow" : "deny(403)"
    priority    = 1002
    description = "Cloudflare (3 of 3)"
    match {
      versioned_expr = "SRC_IPS_V1"
      config {
        src_ip_ranges = local.cloudflare_ranges[2]
      }
    }
  }

  rule {
    action      = "deny(403)"
    priority    = 2147483647
    description = "Default rule"
    match {
      versioned_expr = "SRC_IPS_V1"
      config {
        src_ip_ranges = ["*"]
      }
    }
  }
}

resource "google_compute_backend_service" "backend" {
  project               = google_project.instance.project_id
  name                  = "${var.slug}-backend-service"
  protocol              = "HTTP"
  load_balancing_scheme = "EXTERNAL_MANAGED"
  timeout_sec           = 300
  health_checks         = [google_compute_health_check.http.id]
  security_policy       = google_compute_security_policy.access.id

  backend {
    group                 = google_compute_network_endpoint_group.neg.id
    balancing_mode        = "RATE"
    max_rate_per_endpoint = 1000
  }

  log_config {
    enable = true
  }
}

resource "google_compute_url_map" "https" {
  project         = google_project.instance.project_id
  name            = "${var.slug}-url-map"
  default_service = google_compute_backend_service.backend.id
}

resource "google_compute_managed_ssl_certificate" "https" {
  project = google_project.instance.project_id
  name    = "${var.slug}-certificate"

  managed {
    domains = [local.hostname]
  }
}

resource "google_compute_target_https_proxy" "https" {
  project          = google_project.instance.project_id
  name             = "${var.slug}-https-proxy"
  url_map          = google_compute_url_map.https.id
  ssl_certificates = [google_compute_managed_ssl_certificate.https.id]
}

resource "google_compute_global_address" "address" {
  project = google_project.instance.project_id
  name    = "${var.slug}-address"
}

resource "google_compute_global_forwarding_rule" "https" {
  project               = google_project.instance.project_id
  name                  = "${var.slug}-https"
  target                = google_compute_target_https_proxy.https.id
  ip_address            = google_compute_global_address.address.id
  port_range            = "443"
  load_balancing_scheme = "EXTERNAL_MANAGED"
}

# Alerting: an uptime check on the sign-in page and a policy when it fails for 5 minutes.

resource "google_monitoring_uptime_check_config" "https" {
  count = var.enable_alerting ? 1 : 0

  project      = google_project.instance.project_id
  display_name = "${var.slug} sign-in page"
  timeout      = "10s"
  period       = "60s"

  http_check {
    path         = "/sign-in"
    port         = 443
    use_ssl      = true
    validate_ssl = true
  }

  monitored_resource {
    type = "uptime_url"
    labels = {
      project_id = google_project.instance.project_id
      host       = local.hostname
    }
  }

  depends_on = [google_project_service.services]
}

resource "google_monitoring_alert_policy" "down" {
  count = var.enable_alerting ? 1 : 0

  project      = google_project.instance.project_id
  display_name = "${var.slug} is down"
  combiner     = "OR"

  conditions {
    display_name = "Uptime check failing"

    condition_threshold {
      filter          = "metric.type=\"monitoring.googleapis.com/uptime_check/check_passed\" AND resource.type=\"uptime_url\" AND metric.label.check_id=\"${google_monitoring_uptime_check_config.https[0].uptime_check_id}\""
      comparison      = "COMPARISON_GT"
      threshold_value = 1
      duration        = "300s"

      aggregations {
        alignment_period     = "1200s"
        per_series_aligner   = "ALIGN_NEXT_OLDER"
        cross_series_reducer = "REDUCE_COUNT_FALSE"
        group_by_fields      = ["resource.label.*"]
      }

      trigger {
        count = 1
      }
    }
  }
}

# Executors: an autoscaled regional group that runs the instance's batch jobs.

resource "google_compute_instance_template" "executor" {
  count = var.enable_executors ? 1 : 0

  project      = google_project.instance.project_id
  name_prefix  = "${var.slug}-executor-"
  machine_type = "n1-standard-4"
  tags         = ["executor"]
  labels       = local.labels

  disk {
    source_image = "ubuntu-os-cloud/ubuntu-2204-lts"
    disk_size_gb = 100
    auto_delete  = true
    boot         = true
  }

  network_interface {
    subnetwork = google_compute_subnetwork.subnet.id
  }

  metadata = {
    enable-oslogin         = "TRUE"
    block-project-ssh-keys = true
    instance-version       = var.instance_version
    sourcegraph-url        = "https://${local.hostname}"
  }

  service_account {
    email  = google_service_account.vm.email
    scopes = ["cloud-platform"]
  }

  lifecycle {
    create_before_destroy = true
  }
}

resource "google_compute_region_instance_group_manager" "executors" {
  count = var.enable_executors ? 1 : 0

  project            = google_project.instance.project_id
  region             = var.region
  name               = "${var.slug}-executors"
  base_instance_name = "${var.slug}-executor"

  version {
    instance_template = google_compute_instance_template.executor[0].id
  }
}

resource "google_compute_region_autoscaler" "executors" {
  count = var.enable_executors ? 1 : 0

  project = google_project.instance.project_id
  region  = var.region
  name    = "${var.slug}-executors"
  target  = google_compute_region_instance_group_manager.executors[0].id

  autoscaling_policy {
    min_replicas    = var.executor_min_replicas
    max_replicas    = var.executor_max_replicas
    cooldown_period = 120

    cpu_utilization {
      target = 0.6
    }
  }
}
