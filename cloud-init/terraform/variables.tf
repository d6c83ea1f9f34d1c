variable "region" {
  type = string
}

variable "ami" {
  description = "An image that runs cloud-init (Ubuntu, Debian, Amazon Linux 2023)."
  type        = string
}

variable "instance_type" {
  type    = string
  default = "t3.small"
}

variable "subnet_id" {
  type = string
}

variable "name" {
  type    = string
  default = "rampart-example"
}

variable "download_base" {
  description = "The collector's REST port with TLS, https://HOST:PORT: serves /ca.pem and /download/install.sh."
  type        = string
}

variable "install_sh_sha256" {
  description = "Expected SHA-256 of the collector's install.sh; \"\" trusts its .sha256 (fetched over the pinned CA)."
  type        = string
  default     = ""
  validation {
    condition     = can(regex("^([0-9a-fA-F]{64})?$", var.install_sh_sha256))
    error_message = "install_sh_sha256 is 64 hex digits or empty."
  }
}

variable "collector_url" {
  description = "The collector's agent port, https://HOST:PORT."
  type        = string
}

variable "ca_fingerprint" {
  description = "SHA-256 fingerprint of the collector's CA certificate."
  type        = string
}

variable "enrollment_token" {
  description = "A single-use, short-lived bootstrap token."
  type        = string
  sensitive   = true
  validation {
    condition     = !can(regex("['\n]", var.enrollment_token))
    error_message = "The token cannot contain a quote or a newline."
  }
}

variable "terraform_project" {
  type = string
  validation {
    condition     = !can(regex("['\n,]", var.terraform_project))
    error_message = "The project cannot contain a quote, a comma or a newline."
  }
}

variable "labels" {
  description = "More agent labels; keys and values cannot contain a quote, a comma or a newline."
  type        = map(string)
  default     = {}
}

variable "collector_api" {
  description = "The collector's REST base URL, e.g. https://collector.example:8443."
  type        = string
}

variable "collector_api_cacert" {
  description = "CA bundle for the REST endpoint, or \"\" for the system store."
  type        = string
  default     = ""
}

variable "provisioner_token" {
  description = "An API token with the provisioner role (for the handover gate)."
  type        = string
  sensitive   = true
}

variable "handover_timeout_seconds" {
  type    = number
  default = 1800
}
