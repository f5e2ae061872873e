# want: 4:15 Reference to undeclared name
stack "s" {
  container "a" {
    images = [var.image]
  }
}
