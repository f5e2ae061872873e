# want: 11:1 Duplicate board block
board "a" {
  plugin "vcan" {
    path = "berth-plugin-vcan"
  }
  device "can0" {
    class  = "can"
    plugin = "vcan"
  }
}
board "b" {
}
