// Package containers checks that the HIL VM (board-support/qemu-x86_64, run
// by cmd/berth-hil) runs real containers and berth itself: runc runs a
// busybox container, berthd runs a stack on the qemu-x86_64 board (its
// socketcan plugin driving the kernel's vcan0), and can-utils and
// iproute2's ip work on vcan and can-gw. hil.hcl ships berth's programs and
// the board file into the VM. The tests need that VM: on another host they
// skip with the reason; inside it (BERTH_HIL set) a missing feature fails
// them. Run them with `make hil`.
package containers
