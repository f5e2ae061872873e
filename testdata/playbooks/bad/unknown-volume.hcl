# want: 6:12 Unknown volume
stack "s" {
  volume "data" {}
  container "a" {
    images = ["berth.local/a:1"]
    volume "dta" { path = "/data" }
  }
}
