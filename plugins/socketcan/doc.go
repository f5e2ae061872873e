// Package socketcan is berth's SocketCAN device plugin: it drives any
// kernel CAN interface (can0, vcan0, a USB adapter) as a berth CAN bus.
//
// Each bus handle ([Plugin.Open]) is its own raw CAN socket bound to the
// interface, so the kernel gives it what other sockets and other nodes
// send and not its own frames, exactly the contract's handle semantics.
// Sockets are opened with golang.org/x/sys/unix rather than
// go.einride.tech/can's socketcan.Dial because a CAN FD bus needs the
// CAN_RAW_FD_FRAMES option set before bind, which einride's Dial does not
// offer; the frame layout (struct can_frame / canfd_frame) is in frame.go.
// Every socket enables CAN_RAW_ERR_FILTER, so controller error frames
// (bus-off, error-passive, restarted, ...) reach the streams as error
// frames and update the device's health in the fingerprint ([DecodeError]).
//
// Bit rates: when the board sets bitrate (and data_bitrate for FD), the
// plugin takes the interface down, programs the bit timing and FD control
// mode over rtnetlink (the netlink package reads CAN link attributes but
// cannot set them, so link.go builds the IFLA_CAN_* request itself), and
// brings it up again. State is read from netlink (IFLA_CAN_STATE).
//
// Receive timestamps are taken when the frame is read from the socket;
// the kernel's own (SO_TIMESTAMPNS) would be closer to the wire and is the
// next step.
package socketcan
