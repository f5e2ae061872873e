# want: 9:9 Duplicate grant
stack "s" {
  container "a" {
    images = ["berth.local/a:1"]
    can "body" {
      bus     = "can0"
      receive = ["0x100"]
    }
    can "body" {
      bus     = "can1"
      receive = ["0x200"]
    }
  }
}
