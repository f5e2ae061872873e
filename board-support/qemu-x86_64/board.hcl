# The qemu-x86_64 board: the hardware-in-the-loop VM, whose real Linux
# kernel has SocketCAN. Its CAN bus can0 is the kernel's virtual CAN
# interface vcan0 (created in the VM with `ip link add vcan0 type vcan`),
# driven by the socketcan plugin (plugins/socketcan).
board "qemu-x86_64" {
  description = "HIL VM: kernel SocketCAN on vcan0"

  plugin "socketcan" {
    path = "berth-plugin-socketcan"
    config {
      devices = {
        can0 = { interface = "vcan0" }
      }
    }
  }

  device "can0" {
    class  = "can"
    plugin = "socketcan"
    id     = "can0"
  }
}
