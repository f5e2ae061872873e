# want: 8:5 Dependency cannot become healthy
stack "s" {
  container "db" {
    images = ["berth.local/db:1"]
  }
  container "app" {
    images = ["berth.local/app:1"]
    depends_on "db" { condition = "healthy" }
  }
}
