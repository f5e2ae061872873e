# want: 7:20 Conflicting network settings
stack "s" {
  network "n" {}
  container "a" {
    images       = ["berth.local/a:1"]
    networks     = ["n"]
    network_mode = "host"
  }
}
