# want: 6:28 Relative mount path
stack "s" {
  volume "data" {}
  container "a" {
    images = ["berth.local/a:1"]
    volume "data" { path = "data" }
  }
}
