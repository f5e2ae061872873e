# want: 14:14 Device used twice
board "b" {
  plugin "vcan" {
    path = "berth-plugin-vcan"
  }
  device "can0" {
    class  = "can"
    plugin = "vcan"
    id     = "vcan0"
  }
  device "can1" {
    class  = "can"
    plugin = "vcan"
    id     = "vcan0"
  }
}
