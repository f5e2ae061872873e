# want: 8:20 send_burst without send_rate
stack "s" {
  container "a" {
    images = ["berth.local/a:1"]
    can "body" {
      bus        = "can0"
      send       = ["0x7E0"]
      send_burst = 10
    }
  }
}
