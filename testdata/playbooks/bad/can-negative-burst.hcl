# want: 9:20 Invalid send_burst
stack "s" {
  container "a" {
    images = ["berth.local/a:1"]
    can "body" {
      bus        = "can0"
      send       = ["0x7E0"]
      send_rate  = 10
      send_burst = -1
    }
  }
}
