# want: 5:5 Unknown dependency
stack "s" {
  container "a" {
    images = ["berth.local/a:1"]
    depends_on "ghost" {}
  }
}
