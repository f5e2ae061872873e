# CAN grants of every shape; the buses are the sim board's
# (board-support/sim/board.hcl).
variable "diag_ids" {
  type    = list(string)
  default = ["0x7DF", "0x7E0-0x7E7"]
}

stack "vehicle" {
  container "gateway" {
    images = ["berth.local/cantool:1"]

    # Many filters of every form; a CAN FD session with error frames.
    can "body" {
      bus          = "can0"
      receive      = ["0x100-0x1FF", "0x7DF", "0x18DAF100/0x1FFFFF00x", "0x123x"]
      send         = ["0x7E0"]
      send_rate    = 100
      send_burst   = 10
      fd           = true
      error_frames = true
    }

    # A second grant on another bus, served natively when berthd can.
    can "diag" {
      bus     = "can1"
      receive = var.diag_ids
      send    = ["*"]
      native  = true
    }
  }

  container "logger" {
    images = ["berth.local/cantool:1"]

    # Receive only, everything; a second grant on the bus "body" is on.
    can "all" {
      bus     = "can0"
      receive = ["*"]
    }

    # A slow sender: one frame every two seconds.
    can "beacon" {
      bus       = "can1"
      send      = ["0x18FF0000-0x18FF00FF"]
      send_rate = 0.5
    }
  }
}
