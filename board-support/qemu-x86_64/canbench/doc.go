// Package canbench compares berth's CAN paths inside the HIL VM
// (board-support/qemu-x86_64, run by cmd/berth-hil), on one vcan0 and with
// real processes and sockets: (a) a raw SocketCAN socket to another on
// vcan0; (b) the native path, a vxcan interface in a fresh network
// namespace narrowed by can-gw rules (core/cannative.Attach), in both
// directions; (c) the broker path, the socketcan plugin process
// (cmd/berth-plugin-socketcan) under core/pluginhost, core/broker, and a
// canwire client on a device socket, in both directions.
//
// TestPaths prints one table (one-way latency p50/p99 at a steady rate,
// and throughput with a bounded window, each against (a)) and fails when a
// path loses, duplicates or reorders a frame, or lets an ID outside its
// grant through. It needs the VM: on another host it skips with the
// reason; inside it (BERTH_HIL set) a missing feature fails it. `make
// hil` (and so `make test`) runs it for its checks; `make bench` runs it
// after the host bench to print the table; by hand (-v shows the table:
// go test hides a passing package's output otherwise):
//
//	go build -o bin/berth-hil ./cmd/berth-hil
//	CGO_ENABLED=0 go test -count=1 -exec $PWD/bin/berth-hil -v -run '^TestPaths$' ./board-support/qemu-x86_64/canbench
//
// TestRunChecks checks the checks (a lost frame, a leak) anywhere, on
// unix socket pairs.
//
// hil.hcl ships the socketcan plugin and the qemu-x86_64 board file into
// the VM.
package canbench
