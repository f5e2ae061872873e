# want: 5:5 Unsupported block type
stack "s" {
  container "a" {
    images = ["berth.local/a:1"]
    healthcheck {}
  }
}
