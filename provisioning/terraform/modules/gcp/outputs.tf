# The same outputs as modules/sandbox.

output "instance_name" {
  description = "The VM the load balancer serves (the last deployment), or an empty string when scaled to zero."
  value       = local.serving == null ? "" : google_compute_instance.vm[local.serving].name
}

output "instance_ip" {
  description = "The instance's static address."
  value       = google_compute_global_address.address.address
}

output "url" {
  description = "Where the instance answers."
  value       = "https://${local.hostname}"
}

output "project_id" {
  description = "The customer's GCP project."
  value       = google_project.instance.project_id
}

output "zone" {
  description = "Zone of the VM and its data disk."
  value       = var.zone
}

output "data_disk" {
  description = "The served deployment's data disk, or an empty string when scaled to zero."
  value       = local.serving == null ? "" : google_compute_disk.data[local.serving].name
}

output "deployments" {
  description = "VM name per deployment color."
  value       = { for color, vm in google_compute_instance.vm : color => vm.name }
}
