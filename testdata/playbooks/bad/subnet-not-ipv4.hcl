# want: 3:26 Invalid subnet
stack "s" {
  network "n" { subnet = "fd00::/64" }
  container "a" {
    images = ["berth.local/a:1"]
  }
}
