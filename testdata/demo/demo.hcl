# The demo stack behind `make demo`: a key-value store, a sensor that writes
# a reading into it every half second, and a dashboard that reads it back.
# Each container's root file system is its images stacked bottom to top: the
# busybox base, then (for the sensor) a shared config image, then the app.
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
}
