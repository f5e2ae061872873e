# want: 5:21 Unknown signal
stack "s" {
  container "a" {
    images = ["berth.local/a:1"]
    stop { signal = "SIGNOPE" }
  }
}
