# The sim board: the default, a simulated ECU that runs anywhere with no
# hardware and no kernel CAN. Its two CAN buses are virtual buses of the
# userspace vcan plugin (plugins/vcan), shared by every process on this
# host that joins the same multicast group, so two berthd instances (two
# simulated ECUs) talk over them.
board "sim" {
  description = "Simulated ECU: two virtual CAN buses, runs anywhere, no hardware"

  plugin "vcan" {
    path = "berth-plugin-vcan"
    config {
      group = "239.64.0.1:20000"
      buses = ["vcan0", "vcan1"]
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
