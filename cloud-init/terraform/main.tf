# Example: an EC2 instance bootstrapped with Rampart's AWS template, counted as handed
# over only once the collector's handover gate allows it. Untested here (no registry
# access for providers in this project's CI): `terraform validate` it in your pipeline.

terraform {
  required_version = ">= 1.4" # terraform_data
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.0"
    }
  }
}

provider "aws" {
  region = var.region
}

locals {
  user_data = templatefile("${path.module}/../aws/user-data.yaml.tftpl", {
    download_base     = var.download_base
    install_sh_sha256 = var.install_sh_sha256
    collector_url     = var.collector_url
    ca_fingerprint    = var.ca_fingerprint
    enrollment_token  = var.enrollment_token
    terraform_project = var.terraform_project
    labels            = join(",", [for k, v in var.labels : "${k}=${v}"])
    ssh_user          = var.ssh_user
    ssh_public_key    = var.ssh_public_key
  })
}

resource "aws_instance" "vm" {
  ami                         = var.ami
  instance_type               = var.instance_type
  subnet_id                   = var.subnet_id
  user_data                   = local.user_data
  user_data_replace_on_change = true

  # IMDSv2 only, one hop: user-data (with the token) is not reachable from containers.
  metadata_options {
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }

  tags = {
    Name    = var.name
    project = var.terraform_project
  }
}

# The handover: polls GET /api/v1/handover/{instance id} until allowed=true (the scan on
# provision passed, an admin released the VM, or its project is exempt). Fails the apply
# when the gate stays closed past the timeout, so nothing downstream gets the VM.
resource "terraform_data" "handover" {
  triggers_replace = [aws_instance.vm.id]

  provisioner "local-exec" {
    command = "${path.module}/wait-handover.sh"
    environment = {
      RAMPART_API      = var.collector_api
      RAMPART_TOKEN    = var.provisioner_token
      RAMPART_VM       = aws_instance.vm.id
      RAMPART_TIMEOUT  = tostring(var.handover_timeout_seconds)
      RAMPART_INTERVAL = "10"
      RAMPART_CACERT   = var.collector_api_cacert
    }
  }
}
