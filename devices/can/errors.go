package can

import (
	"errors"
	"fmt"

	"github.com/berth-io/berth/devices"
)

// Sentinel errors of the CAN class. Every error the contract returns wraps
// one of these (or a context error), also across the gRPC shim, so callers
// test them with errors.Is.
var (
	// ErrInvalidFrame: the frame is malformed or not allowed on this bus.
	// Each of the more specific errors below wraps it.
	ErrInvalidFrame = errors.New("invalid CAN frame")
	// ErrInvalidID: the ID does not fit its format (an ID above 0x7FF
	// without the extended flag, or above 0x1FFFFFFF).
	ErrInvalidID = fmt.Errorf("%w: id out of range", ErrInvalidFrame)
	// ErrInvalidLength: the data length is not one the frame's kind
	// allows (0–8 classic, 0–8,12,16,20,24,32,48,64 FD).
	ErrInvalidLength = fmt.Errorf("%w: data length not allowed", ErrInvalidFrame)
	// ErrInvalidFlags: a combination of flags no frame can have (RTR on
	// an FD frame, BRS without FD, sending an error frame, ...).
	ErrInvalidFlags = fmt.Errorf("%w: flags not allowed", ErrInvalidFrame)
	// ErrFDOnClassicalBus: a CAN FD frame was sent on a classical bus.
	ErrFDOnClassicalBus = fmt.Errorf("%w: CAN FD frame on a classical CAN bus", ErrInvalidFrame)

	// ErrBusOff: the controller is bus-off and cannot send.
	ErrBusOff = errors.New("bus-off")
	// ErrBusStopped: the controller is stopped (interface down).
	ErrBusStopped = errors.New("bus stopped")

	// ErrUnknownDevice: no CAN bus with that device ID (the same value as
	// devices.ErrUnknownDevice).
	ErrUnknownDevice = devices.ErrUnknownDevice
	// ErrClosed: the bus handle was closed (the same value as
	// devices.ErrClosed).
	ErrClosed = devices.ErrClosed
)
