# want: 7:14 Unknown device class
board "b" {
  plugin "vcan" {
    path = "berth-plugin-vcan"
  }
  device "can0" {
    class  = "flexray"
    plugin = "vcan"
  }
}
