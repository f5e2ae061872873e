# want: 2:1 No value for required variable
variable "tag" {
  type = string
}
stack "s" {
  container "a" {
    images = ["berth.local/a:${var.tag}"]
  }
}
