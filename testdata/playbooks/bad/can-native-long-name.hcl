# want: 5:9 Grant name too long for an interface
stack "s" {
  container "a" {
    images = ["berth.local/a:1"]
    can "powertrain-diagnostics" {
      bus     = "can0"
      receive = ["0x7E8"]
      native  = true
    }
  }
}
