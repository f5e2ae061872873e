# want: 1:1 Missing board block
plugin "vcan" {
  path = "berth-plugin-vcan"
}
