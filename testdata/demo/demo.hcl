# The demo stack behind `make demo`: a key-value store, a sensor that writes
# a reading into it every half second, and a dashboard that reads it back.
# Each container's root file system is its images stacked bottom to top: the
# busybox base, then (for the sensor) a shared config image, then the app.
#
# Two more containers share the board's CAN bus can0 (on the sim board, a
# userspace virtual bus): "speedo" receives only the powertrain frames
# 0x100-0x1FF, "body" only the body frames 0x200-0x2FF, and body may send
# its door status 0x2A0 and nothing else, at most 20 frames a second.
variable "interval" {
  type        = string
  default     = "500ms"
  description = "How often the sensor writes a reading."
}

locals {
  base = "berth.local/busybox:1.35"
}

stack "demo" {
  network "backend" {}

  volume "kvdb-data" {}

  container "kvdb" {
    images   = [local.base, "berth.local/kvdb:1"]
    args     = ["-listen", ":7000", "-data", "/var/lib/kvdb"]
    networks = ["backend"]

    volume "kvdb-data" {
      path = "/var/lib/kvdb"
    }

    resources {
      memory = "32MiB"
      pids   = 64
    }

    health {
      exec     = ["/bin/kvdb", "-ping", "127.0.0.1:7000"]
      interval = "1s"
      timeout  = "1s"
      retries  = 3
    }
  }

  container "sensor" {
    images   = [local.base, "berth.local/base-config:1", "berth.local/sensor:1"]
    args     = ["-db", "kvdb:7000", "-interval", var.interval]
    networks = ["backend"]

    depends_on "kvdb" {
      condition = "healthy"
    }

    restart {
      policy    = "on-failure"
      delay     = "500ms"
      max_delay = "10s"
    }
  }

  container "dashboard" {
    images   = [local.base, "berth.local/dashboard:1"]
    args     = ["-db", "kvdb:7000"]
    networks = ["backend"]

    depends_on "kvdb" {
      condition = "healthy"
    }

    stop {
      signal  = "SIGINT"
      timeout = "5s"
    }
  }

  container "speedo" {
    images = [local.base, "berth.local/cantool:1"]
    args   = ["dump", "powertrain"]

    can "powertrain" {
      bus     = "can0"
      receive = ["0x100-0x1FF"]
    }
  }

  container "body" {
    images  = [local.base, "berth.local/cantool:1"]
    command = ["/bin/sh", "-c", "cantool every body 2A0#0001 1s & exec cantool dump body"]

    can "body" {
      bus       = "can0"
      receive   = ["0x200-0x2FF"]
      send      = ["0x2A0"]
      send_rate = 20
    }
  }
}
