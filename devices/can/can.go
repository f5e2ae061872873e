// Package can owns the CAN device class contract: the [Frame] type and its
// validation, and the small [Driver] / [Bus] / [Stream] interfaces a CAN
// device plugin implements and the broker consumes, with the optional
// [BatchSender] for bursts ([SendBatch] works on any Bus). There is no
// protobuf in the contract; the go-plugin gRPC shim sits beside it
// (plugin.go, client.go, server.go, and sender.go, which batches the
// host's Sends on one stream per handle; wire form in proto/). [Hub] is
// the fan-out every driver needs between its receive path and its
// streams. Conversions to and from go.einride.tech/can frames are in
// einride.go. Fakes and the conformance suite every implementation runs
// are in can/cantest.
package can

import (
	"context"
	"fmt"
)

// Mode is what a bus runs: classical CAN or CAN FD.
type Mode int

// The modes. A CAN FD bus carries classical frames too.
const (
	Classical Mode = iota
	FD
)

// String returns "classical" or "fd".
func (m Mode) String() string {
	if m == FD {
		return "fd"
	}
	return "classical"
}

// State is a CAN controller's error state (ISO 11898-1), plus stopped.
type State int

// The states. The zero value is StateUnknown.
const (
	StateUnknown State = iota
	StateErrorActive
	StateErrorPassive
	StateBusOff
	StateStopped
)

// String returns the state as ip-link(8) prints it ("error-active", ...).
func (s State) String() string {
	switch s {
	case StateErrorActive:
		return "error-active"
	case StateErrorPassive:
		return "error-passive"
	case StateBusOff:
		return "bus-off"
	case StateStopped:
		return "stopped"
	case StateUnknown:
		return "unknown"
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// Counters count the traffic of one bus handle (one [Driver.Open]).
type Counters struct {
	// RxFrames are frames the handle received (data, RTR and error
	// frames), whether or not a stream read them.
	RxFrames uint64
	// TxFrames are frames the handle sent successfully.
	TxFrames uint64
	// Errors are error frames the handle received.
	Errors uint64
	// Drops are received frames the handle's streams lost because their
	// reader fell behind.
	Drops uint64
}

// Counter names used in devices.DeviceStats for the CAN class.
const (
	CounterRxFrames = "rx_frames"
	CounterTxFrames = "tx_frames"
	CounterErrors   = "errors"
	CounterDrops    = "drops"
)

// AttrInterface is the fingerprint attribute that names the host kernel
// network interface a CAN device is (SocketCAN's "can0", "vcan0"). A plugin
// sets it only for such devices; berthd serves a `native = true` grant on a
// device that has it as a kernel interface in the container (core/cannative).
const AttrInterface = "interface"

// Map returns the counters keyed by the Counter* names, as
// devices.DeviceStats carries them.
func (c Counters) Map() map[string]uint64 {
	return map[string]uint64{
		CounterRxFrames: c.RxFrames,
		CounterTxFrames: c.TxFrames,
		CounterErrors:   c.Errors,
		CounterDrops:    c.Drops,
	}
}

// Driver is the CAN class contract a plugin implements: it opens the CAN
// buses the plugin drives, by device ID (the IDs its fingerprint reports).
type Driver interface {
	// Open opens the bus with the given device ID; an unknown ID gives an
	// error wrapping [ErrUnknownDevice]. ctx bounds the call only, not
	// the life of the handle. Every Open returns a new,
	// independent handle, like a new socket on a kernel CAN interface:
	// frames sent through one handle are received by every other handle
	// on the same bus, but not by the handle that sent them. The caller
	// owns the returned Bus and must Close it.
	Open(ctx context.Context, device string) (Bus, error)
}

// Bus is one open handle on a CAN bus. Its methods are safe for concurrent
// use.
type Bus interface {
	// Mode says whether the bus runs classical CAN or CAN FD. It does
	// not block.
	Mode() Mode
	// Receive starts a stream that delivers every frame the handle
	// receives from the moment Receive returns, in bus order, until ctx
	// ends (Recv then returns ctx.Err()) or the handle is closed (Recv
	// then returns an error wrapping [ErrClosed]). Several streams may be
	// open at once; each gets every frame. The stream needs no Close:
	// cancel ctx to end it.
	Receive(ctx context.Context) (Stream, error)
	// Send transmits one frame. It returns once the controller has
	// accepted the frame for transmission. A frame that fails
	// [Frame.Validate] for the bus's mode is refused with an error
	// wrapping [ErrInvalidFrame] (and the specific sentinel); a bus that
	// is off or stopped refuses with [ErrBusOff] or [ErrBusStopped].
	// Frames go on the bus in the order their Sends were made (Sends
	// that overlap in time, in either order), and each Send returns its
	// own frame's result, also among concurrent ones. When ctx ends
	// first, Send returns ctx's error; the frame may have gone out.
	Send(ctx context.Context, f Frame) error
	// State returns the controller's current error state.
	State(ctx context.Context) (State, error)
	// Counters returns the handle's counters.
	Counters(ctx context.Context) (Counters, error)
	// Close releases the handle and ends its streams with [ErrClosed];
	// later calls return [ErrClosed]. Calling Close twice is safe and the
	// second call returns nil. Close does not stop the bus: other
	// handles keep working.
	Close() error
}

// Stream is a stream of received frames.
type Stream interface {
	// Recv blocks until at least one frame is there and returns all
	// frames waiting (at most [MaxBatch]), oldest first. The caller owns
	// the returned slice. Recv must not be called concurrently with
	// itself.
	Recv() ([]Frame, error)
}
