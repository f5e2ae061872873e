# want: 9:14 Empty device ID
board "b" {
  plugin "vcan" {
    path = "berth-plugin-vcan"
  }
  device "can0" {
    class  = "can"
    plugin = "vcan"
    id     = ""
  }
}
