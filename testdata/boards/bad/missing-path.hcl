# want: 3:17 Missing required argument
board "b" {
  plugin "vcan" {
    sha256 = "0000000000000000000000000000000000000000000000000000000000000000"
  }
  device "can0" {
    class  = "can"
    plugin = "vcan"
  }
}
