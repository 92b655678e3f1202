# The same outputs as modules/gcp.

output "instance_name" {
  description = "The VM the load balancer serves (the last deployment), or an empty string when scaled to zero."
  value       = local.serving == null ? "" : terraform_data.vm[local.serving].output.name
}

output "instance_ip" {
  description = "The instance's static address."
  value       = terraform_data.address.output.address
}

output "url" {
  description = "Where the instance answers."
  value       = "https://${var.slug}.${var.domain}"
}

output "project_id" {
  description = "The customer's GCP project."
  value       = terraform_data.project.output.project_id
}

output "zone" {
  description = "Zone of the VM and its data disk."
  value       = var.zone
}

output "data_disk" {
  description = "The served deployment's data disk, or an empty string when scaled to zero."
  value       = local.serving == null ? "" : terraform_data.data_disk[local.serving].output.name
}

output "deployments" {
  description = "VM name per deployment color."
  value       = { for color, vm in terraform_data.vm : color => vm.output.name }
}
