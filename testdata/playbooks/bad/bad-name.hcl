# want: 3:13 Invalid container name
stack "s" {
  container "My_App" {
    images = ["berth.local/a:1"]
  }
}
