# Variables of every supported type, locals built from locals, and functions.
variable "registry" {
  type    = string
  default = "berth.local"
}
variable "replicas_memory" {
  type    = number
  default = 32
}
variable "debug" {
  type    = bool
  default = false
}
variable "extra_args" {
  type    = list(string)
  default = ["-v"]
}
variable "labels" {
  type    = map(string)
  default = { TEAM = "body" }
}

locals {
  tag   = "1"
  image = "${local.repo}:${local.tag}"
}
locals {
  repo = format("%s/%s", var.registry, lower("APP"))
}

stack "vars" {
  volume "scratch" {
    type = "tmpfs"
    size = "16MiB"
  }
  container "app" {
    images = [local.image]
    args   = concat(["-serve"], var.extra_args)
    env    = merge(var.labels, { DEBUG = tostring(var.debug) })
    volume "scratch" { path = "/scratch" }
    resources { memory = "${var.replicas_memory}m" }
  }
}
