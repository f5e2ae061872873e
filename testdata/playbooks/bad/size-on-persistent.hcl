# want: 3:26 Size on a persistent volume
stack "s" {
  volume "data" { size = "1GiB" }
  container "a" {
    images = ["berth.local/a:1"]
  }
}
