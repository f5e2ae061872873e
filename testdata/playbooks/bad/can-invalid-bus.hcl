# want: 6:17 Invalid bus
stack "s" {
  container "a" {
    images = ["berth.local/a:1"]
    can "body" {
      bus     = "CAN 0"
      receive = ["0x100"]
    }
  }
}
