# want: 7:17 Invalid retries
stack "s" {
  container "a" {
    images = ["berth.local/a:1"]
    health {
      exec    = ["/bin/true"]
      retries = 1.5
    }
  }
}
