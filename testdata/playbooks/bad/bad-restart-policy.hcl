# want: 5:24 Invalid restart policy
stack "s" {
  container "a" {
    images = ["berth.local/a:1"]
    restart { policy = "sometimes" }
  }
}
