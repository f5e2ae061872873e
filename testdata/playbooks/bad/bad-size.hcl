# want: 5:26 Invalid size
stack "s" {
  container "a" {
    images = ["berth.local/a:1"]
    resources { memory = "64 parsecs" }
  }
}
