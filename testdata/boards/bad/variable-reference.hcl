# want: 4:12 Unknown variable
board "b" {
  plugin "vcan" {
    path = var.plugin_path
  }
  device "can0" {
    class  = "can"
    plugin = "vcan"
  }
}
