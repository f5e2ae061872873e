# want: 7:17 Incorrect attribute value type
stack "s" {
  container "a" {
    images = ["berth.local/a:1"]
    can "body" {
      bus     = "can0"
      receive = "0x100"
    }
  }
}
