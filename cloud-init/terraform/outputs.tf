output "instance_id" {
  value = aws_instance.vm.id
}

output "handed_over_instance_id" {
  description = "Known only once the handover gate allowed the VM."
  value       = aws_instance.vm.id
  depends_on  = [terraform_data.handover]
}
