# want: 1:1 Missing stack block
variable "x" {
  default = 1
}
