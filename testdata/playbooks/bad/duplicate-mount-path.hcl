# want: 8:27 Duplicate mount path
stack "s" {
  volume "one" {}
  volume "two" {}
  container "a" {
    images = ["berth.local/a:1"]
    volume "one" { path = "/data" }
    volume "two" { path = "/data/" }
  }
}
