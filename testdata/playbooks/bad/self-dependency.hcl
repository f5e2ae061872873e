# want: 5:5 Self dependency
stack "s" {
  container "a" {
    images = ["berth.local/a:1"]
    depends_on "a" {}
  }
}
