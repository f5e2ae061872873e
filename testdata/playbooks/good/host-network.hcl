# Host networking, restart always, a custom stop signal and a start chain.
stack "gateway" {
  container "proxy" {
    images       = ["berth.local/busybox:1.35", "berth.local/proxy:2"]
    network_mode = "host"
    read_only    = false
    restart { policy = "always" }
    stop {
      signal  = "QUIT"
      timeout = "500ms"
    }
    depends_on "config" {}
  }
  container "config" {
    images = ["berth.local/config@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"]
    restart { policy = "never" }
  }
  container "metrics" {
    images = ["localhost:5000/metrics:latest"]
    depends_on "proxy" {}
    depends_on "config" {}
  }
}
