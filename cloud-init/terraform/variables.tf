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

# Every value below reaches the VM's first-boot script (base64-encoded, and checked again
# there); these validations refuse anything but the plain forms the collector produces.

variable "download_base" {
  description = "The collector's REST port with TLS, https://HOST:PORT: serves /ca.pem and /download/install.sh."
  type        = string
  validation {
    condition     = can(regex("^https://([A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?|\\[[0-9A-Fa-f:.]+\\])(:[0-9]{1,5})?/?$", var.download_base))
    error_message = "The download_base must be https://HOST[:PORT] (a DNS name, an IPv4 address or a [bracketed] IPv6 address; no path, no credentials)."
  }
}

variable "install_sh_sha256" {
  description = "Expected SHA-256 of the collector's install.sh; \"\" trusts its .sha256 (fetched over the pinned CA)."
  type        = string
  default     = ""
  validation {
    condition     = can(regex("^([0-9a-fA-F]{64})?$", var.install_sh_sha256))
    error_message = "The install_sh_sha256 is 64 hex digits or empty."
  }
}

variable "collector_url" {
  description = "The collector's agent port, https://HOST:PORT."
  type        = string
  validation {
    condition     = can(regex("^https://([A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?|\\[[0-9A-Fa-f:.]+\\])(:[0-9]{1,5})?/?$", var.collector_url))
    error_message = "The collector_url must be https://HOST[:PORT] (a DNS name, an IPv4 address or a [bracketed] IPv6 address; no path, no credentials)."
  }
}

variable "ca_fingerprint" {
  description = "SHA-256 fingerprint of the collector's CA certificate: 64 hex digits, or 32 hex pairs joined by colons."
  type        = string
  validation {
    condition     = can(regex("^[0-9A-Fa-f]{64}$|^([0-9A-Fa-f]{2}:){31}[0-9A-Fa-f]{2}$", var.ca_fingerprint))
    error_message = "The ca_fingerprint must be a SHA-256: 64 hex digits, colons between pairs allowed."
  }
}

variable "enrollment_token" {
  description = "A single-use, short-lived bootstrap token."
  type        = string
  sensitive   = true
  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{8,256}$", var.enrollment_token))
    error_message = "The token is one word of letters, digits, _ and - (as the collector prints it)."
  }
}

variable "terraform_project" {
  type = string
  validation {
    condition     = can(regex("^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$", var.terraform_project))
    error_message = "The terraform_project is 1 to 63 letters, digits, _ . and -, starting with a letter or digit."
  }
}

variable "labels" {
  description = "More agent labels. Keys: letters, digits, _ . / - (up to 63, starting with a letter or digit); values: letters, digits, _ . : / @ + - (up to 255)."
  type        = map(string)
  default     = {}
  validation {
    condition     = alltrue([
      for k, v in var.labels :
      can(regex("^[A-Za-z0-9][A-Za-z0-9_./-]{0,62}$", k)) && can(regex("^[A-Za-z0-9_.:/@+-]{0,255}$", v))
    ])
    error_message = "Label keys are letters, digits, _ . / - (up to 63, starting with a letter or digit); values letters, digits, _ . : / @ + - (up to 255): no spaces, quotes, commas or shell characters."
  }
  validation {
    condition     = !contains(keys(var.labels), "project")
    error_message = "Set the project with terraform_project, not as a label."
  }
}

variable "ssh_user" {
  description = "The user the collector's scans over SSH log in as (its SSH User setting). Made with passwordless sudo on the VM if it does not exist."
  type        = string
  default     = "ubuntu"
  validation {
    condition     = can(regex("^[a-z_][a-z0-9_-]{0,31}$", var.ssh_user)) && var.ssh_user != "root"
    error_message = "The ssh_user is a user name (a lower-case letter or _, then letters, digits, _ or -, at most 32), not root."
  }
}

variable "ssh_public_key" {
  description = "The collector's SSH public key (GET /api/v1/ssh), added to ssh_user's authorized_keys so the VM can also be scanned over SSH; \"\" for none."
  type        = string
  default     = ""
  validation {
    condition     = can(regex("^(ssh-ed25519 [A-Za-z0-9+/]{68}( [A-Za-z0-9@._-]{1,64})?)?$", var.ssh_public_key))
    error_message = "The ssh_public_key is the collector's key as GET /api/v1/ssh gives it (ssh-ed25519, the key, a comment), or \"\"."
  }
}

variable "collector_api" {
  description = "The collector's REST base URL, e.g. https://collector.example:8443 (http:// only on loopback)."
  type        = string
  validation {
    condition     = can(regex("^(https://([A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?|\\[[0-9A-Fa-f:.]+\\])|http://(localhost|127\\.[0-9]+\\.[0-9]+\\.[0-9]+|\\[::1\\]))(:[0-9]{1,5})?/?$", var.collector_api))
    error_message = "The collector_api must be https://HOST[:PORT], or http:// to localhost, 127.x.x.x or [::1] only."
  }
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
