# The same outputs as modules/gcp. A stand-in imported by `terraform import` (the first run of an
# adopted instance, for what that run removes) has no output until an apply sets it: until then
# an output says what the stand-in is named after, as the real resource's attributes would.

output "instance_name" {
  description = "The VM the load balancer serves (the last deployment), or an empty string when scaled to zero."
  value       = local.serving == null ? "" : try(terraform_data.vm[local.serving].output.name, "${var.slug}-${local.serving}")
}

output "instance_ip" {
  description = "The instance's static address."
  value       = try(terraform_data.address.output.address, local.address)
}

output "url" {
  description = "Where the instance answers."
  value       = "https://${var.slug}.${var.domain}"
}

output "project_id" {
  description = "The customer's GCP project."
  value       = try(terraform_data.project.output.project_id, var.project_id)
}

output "zone" {
  description = "Zone of the VM and its data disk."
  value       = var.zone
}

output "data_disk" {
  description = "The served deployment's data disk, or an empty string when scaled to zero."
  value       = local.serving == null ? "" : try(terraform_data.data_disk[local.serving].output.name, "${var.slug}-${local.serving}-data")
}

output "deployments" {
  description = "VM name per deployment color."
  value       = { for color, vm in terraform_data.vm : color => try(vm.output.name, "${var.slug}-${color}") }
}
