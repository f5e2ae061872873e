# want: 3:17 Missing required argument
stack "s" {
  container "a" {
    command = ["/bin/sh"]
  }
}
