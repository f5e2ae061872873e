# want: 6:5 Duplicate stop block
stack "s" {
  container "a" {
    images = ["berth.local/a:1"]
    stop { signal = "SIGINT" }
    stop { signal = "SIGTERM" }
  }
}
