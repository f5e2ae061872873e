# want: 4:15 Call to unknown function
stack "s" {
  container "a" {
    images = [uppercase("berth.local/a:1")]
  }
}
