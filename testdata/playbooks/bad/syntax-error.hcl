# want: 5:3 Missing item separator
stack "s" {
  container "a" {
    images = ["x:1"
  }
}
