variable "log_level" {
  type    = string
  default = "info"
}
locals { base = "berth.local/busybox:1.35" }

stack "demo" {
  network "backend" { subnet = "10.89.0.0/24" }
  volume "db-data" {}

  container "db" {
    images      = [local.base, "berth.local/kvdb:1"]
    command     = ["/bin/kvdb"]
    args        = ["-listen", ":7000"]
    env         = { LOG_LEVEL = var.log_level }
    working_dir = "/"
    user        = "1000:1000"
    read_only   = true
    networks    = ["backend"]
    volume "db-data" {
      path      = "/var/lib/kvdb"
      read_only = false
    }
    resources {
      memory = "64MiB"
      cpu    = 0.5
      pids   = 64
    }
    restart {
      policy    = "on-failure"
      attempts  = 5
      delay     = "1s"
      max_delay = "30s"
    }
    health {
      exec         = ["/bin/kvdb", "-ping"]
      interval     = "2s"
      timeout      = "1s"
      retries      = 3
      start_period = "5s"
    }
    stop {
      signal  = "SIGTERM"
      timeout = "10s"
    }
  }
  container "app" {
    images = [local.base, "berth.local/app:1"]
    depends_on "db" { condition = "healthy" }
    networks = ["backend"]
  }
}
