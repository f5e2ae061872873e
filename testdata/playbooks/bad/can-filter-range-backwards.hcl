# want: 7:15 Invalid CAN filter
stack "s" {
  container "a" {
    images = ["berth.local/a:1"]
    can "body" {
      bus  = "can0"
      send = ["0x1FF-0x100"]
    }
  }
}
