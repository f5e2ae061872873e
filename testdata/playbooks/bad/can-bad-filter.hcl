# want: 6:33 Invalid CAN filter
stack "s" {
  container "a" {
    images = ["berth.local/a:1"]
    can "body" {
      receive = ["0x100-0x1FF", "7DF", "0x7E8"]
      bus     = "can0"
    }
  }
}
