# want: 6:26 Unknown network
stack "s" {
  network "front" {}
  container "a" {
    images   = ["berth.local/a:1"]
    networks = ["front", "back"]
  }
}
