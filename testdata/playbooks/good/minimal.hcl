stack "tiny" {
  container "hello" {
    images = ["berth.local/busybox:1.35"]
  }
}
