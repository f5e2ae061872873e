# want: 3:3 Cycle in local values
locals {
  a = local.b
  b = "${local.a}-x"
}
stack "s" {
  container "x" {
    images = [local.a]
  }
}
