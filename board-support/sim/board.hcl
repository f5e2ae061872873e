# The sim board: the default, a simulated ECU that runs anywhere with no
# hardware and no kernel CAN. Its two CAN buses are virtual buses of the
# userspace vcan plugin (plugins/vcan), shared through its hub socket by
# every process in this network namespace that names the same socket, so
# two berthd instances (two simulated ECUs) talk over them.
board "sim" {
  description = "Simulated ECU: two virtual CAN buses, runs anywhere, no hardware"

  plugin "vcan" {
    path = "berth-plugin-vcan"
    config {
      socket = "@berth-vcan"
      buses = {
        vcan0 = {}
        vcan1 = {}
      }
    }
  }

  device "can0" {
    class  = "can"
    plugin = "vcan"
    id     = "vcan0"
  }

  device "can1" {
    class  = "can"
    plugin = "vcan"
    id     = "vcan1"
  }
}
