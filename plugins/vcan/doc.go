// Package vcan is berth's userspace virtual CAN bus: a device plugin for
// machines whose kernel has no CAN (developers' laptops, CI, containers),
// on which several processes on one host — several berthd instances, each
// a simulated ECU — share real buses.
//
// # Design
//
// The bus is a hub on a unix stream socket (by default the abstract
// socket "@berth-vcan"; a filesystem path works across network
// namespaces). The first plugin process that needs the hub hosts it; the
// others connect. Each bus handle ([Plugin.Open]) is one member
// connection, so the hub fans every frame out to every other member of
// the bus and never back to its sender. The hub puts frames into one bus
// order and stamps each with its bus time (unix nanoseconds, strictly
// increasing), which every receiver sees. Frames travel in length-prefixed
// messages (wire.go) that are written and read in batches, so a flood
// costs a few syscalls per hundred frames.
//
// When the hosting process dies the kernel frees the socket (or the flock
// guarding a filesystem socket); the members left elect a new host by
// racing to bind it and carry on. Frames in flight at that moment are
// lost, as on a bus that glitched.
//
// A member that falls behind loses only its own frames: the hub queues at
// most 256 KiB per member, drops the rest for that member and tells it how
// many (counted in its Drops). A sender whose queue to the hub is full
// blocks in Send until it drains or its ctx ends, like a full controller
// transmit queue.
//
// # Why not UDP multicast
//
// go.einride.tech/can's socketcan package can carry frames over UDP
// multicast, but measured on a 2-core host between two processes (one
// datagram per frame, loopback with multicast on, in a fresh network
// namespace) the receiver got only 42–71 % of a 200,000-frame flood sent
// at about 400,000 frames/s: datagrams are dropped silently when the
// receiver's socket buffer fills, with no back-pressure and no count. Its
// frames are classical only (16-byte struct can_frame), every sender hears
// itself, and lo needs setting up (`ip link set lo multicast on`, a route
// for 239.0.0.0/8). The unix socket hub needs no network set-up, carries
// CAN FD, keeps order, and makes loss visible; BenchmarkHub and
// BenchmarkProcesses measure its throughput, the latter between two
// plugin processes through the gRPC shim.
package vcan
