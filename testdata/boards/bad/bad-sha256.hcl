# want: 5:14 Invalid sha256
board "b" {
  plugin "vcan" {
    path   = "berth-plugin-vcan"
    sha256 = "deadbeef"
  }
  device "can0" {
    class  = "can"
    plugin = "vcan"
  }
}
