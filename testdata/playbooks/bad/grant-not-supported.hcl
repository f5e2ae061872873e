# want: 5:5 Device grants are not yet supported
stack "s" {
  container "a" {
    images = ["berth.local/a:1"]
    i2c "sensors" { bus = "i2c0" }
  }
}
