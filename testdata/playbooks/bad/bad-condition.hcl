# want: 8:34 Invalid dependency condition
stack "s" {
  container "a" {
    images = ["berth.local/a:1"]
  }
  container "b" {
    images = ["berth.local/b:1"]
    depends_on "a" { condition = "ready" }
  }
}
