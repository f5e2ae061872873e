# want: 3:26 Invalid volume type
stack "s" {
  volume "data" { type = "ramdisk" }
  container "a" {
    images = ["berth.local/a:1"]
  }
}
