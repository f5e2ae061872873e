# want: 6:10 Duplicate plugin
board "b" {
  plugin "vcan" {
    path = "berth-plugin-vcan"
  }
  plugin "vcan" {
    path = "/usr/lib/berth/plugins/berth-plugin-vcan"
  }
  device "can0" {
    class  = "can"
    plugin = "vcan"
  }
}
