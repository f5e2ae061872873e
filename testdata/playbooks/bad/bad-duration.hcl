# want: 5:23 Invalid duration
stack "s" {
  container "a" {
    images = ["berth.local/a:1"]
    restart { delay = "-1s" }
  }
}
