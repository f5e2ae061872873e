# want: 4:13 Invalid default value for variable
variable "n" {
  type    = number
  default = "many"
}
stack "s" {
  container "a" {
    images = ["berth.local/a:1"]
  }
}
