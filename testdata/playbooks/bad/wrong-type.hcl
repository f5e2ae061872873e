# want: 5:17 Incorrect attribute value type
stack "s" {
  container "a" {
    images    = ["berth.local/a:1"]
    read_only = "sometimes"
  }
}
