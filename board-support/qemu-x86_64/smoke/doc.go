// Package smoke checks that the HIL VM (board-support/qemu-x86_64, run by
// cmd/berth-hil) gives tests what this board promises: a kernel with
// SocketCAN (vcan interfaces and raw CAN sockets) and an i2c-stub chip at
// 0x48 behind /dev/i2c-N. Its tests need that kernel: on a host without it
// they skip with the reason; inside the VM (BERTH_HIL set) a missing
// feature fails them instead. Run them with `make hil`.
package smoke
