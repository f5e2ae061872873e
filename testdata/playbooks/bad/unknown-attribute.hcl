# want: 5:5 Unsupported argument
stack "s" {
  container "a" {
    images = ["berth.local/a:1"]
    memory = "64MiB"
  }
}
