# want: 6:13 Duplicate container
stack "s" {
  container "a" {
    images = ["berth.local/a:1"]
  }
  container "a" {
    images = ["berth.local/a:2"]
  }
}
