# want: 5:5 Unsupported argument
board "b" {
  plugin "vcan" {
    path    = "berth-plugin-vcan"
    version = "1.0"
  }
  device "can0" {
    class  = "can"
    plugin = "vcan"
  }
}
