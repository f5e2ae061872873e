# want: 13:5 Dependency cycle: a -> b -> c -> a
stack "s" {
  container "a" {
    images = ["berth.local/a:1"]
    depends_on "b" {}
  }
  container "b" {
    images = ["berth.local/b:1"]
    depends_on "c" {}
  }
  container "c" {
    images = ["berth.local/c:1"]
    depends_on "a" {}
  }
}
