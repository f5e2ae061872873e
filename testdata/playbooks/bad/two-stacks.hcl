# want: 7:1 Duplicate stack block
stack "s" {
  container "a" {
    images = ["berth.local/a:1"]
  }
}
stack "t" {
  container "b" {
    images = ["berth.local/b:1"]
  }
}
