# want: 11:10 Duplicate device
board "b" {
  plugin "vcan" {
    path = "berth-plugin-vcan"
  }
  device "can0" {
    class  = "can"
    plugin = "vcan"
    id     = "vcan0"
  }
  device "can0" {
    class  = "can"
    plugin = "vcan"
    id     = "vcan1"
  }
}
