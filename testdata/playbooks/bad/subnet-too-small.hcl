# want: 3:26 Subnet too small
stack "s" {
  network "n" { subnet = "10.89.0.0/30" }
  container "a" {
    images   = ["berth.local/a:1"]
    networks = ["n"]
  }
}
