# want: 8:14 Unknown plugin
board "b" {
  plugin "vcan" {
    path = "berth-plugin-vcan"
  }
  device "can0" {
    class  = "can"
    plugin = "socketcan"
  }
}
