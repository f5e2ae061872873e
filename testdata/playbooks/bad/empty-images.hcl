# want: 4:14 No images
stack "s" {
  container "a" {
    images = []
  }
}
