# want: 4:16 Missing required argument
stack "s" {
  container "a" {
    can "body" {
      receive = ["0x100"]
    }
    images = ["berth.local/a:1"]
  }
}
