# want: 6:10 Invalid device name
board "b" {
  plugin "vcan" {
    path = "berth-plugin-vcan"
  }
  device "CAN 0" {
    class  = "can"
    plugin = "vcan"
  }
}
