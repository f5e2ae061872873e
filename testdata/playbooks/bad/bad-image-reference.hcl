# want: 4:15 Invalid image reference
stack "s" {
  container "a" {
    images = ["Berth Local/App"]
  }
}
