# want: 2:7 Invalid board name
board "My Board" {
  plugin "vcan" {
    path = "berth-plugin-vcan"
  }
  device "can0" {
    class  = "can"
    plugin = "vcan"
  }
}
