package can

import (
	"encoding/hex"
	"fmt"
	"strings"
	"time"
)

// Limits of CAN identifiers and data.
const (
	MaxID          = 0x7FF      // largest standard (11-bit) ID
	MaxExtendedID  = 0x1FFFFFFF // largest extended (29-bit) ID
	MaxClassicData = 8          // data bytes in a classical frame
	MaxFDData      = 64         // data bytes in a CAN FD frame
)

// Frame is one CAN frame, as sent or received.
type Frame struct {
	// ID is the identifier: 11 bits, or 29 bits with Extended. On an
	// error frame it holds the error class bits (linux/can/error.h).
	ID uint32
	// Extended marks a 29-bit identifier.
	Extended bool
	// Remote marks a remote transmission request (classical only).
	Remote bool
	// Error marks an error frame, reported by the controller. Error
	// frames are received, never sent.
	Error bool
	// FD marks a CAN FD frame; BRS (bit-rate switch) and ESI (error state
	// indicator) are its flags.
	FD, BRS, ESI bool
	// RemoteLen is the data length a remote frame requests (0–8); zero
	// on every other frame.
	RemoteLen uint8
	// Data is the payload: 0–8 bytes on a classical frame; 0–8, 12, 16,
	// 20, 24, 32, 48 or 64 bytes on an FD frame; empty on a remote frame.
	Data []byte
	// Timestamp is when the frame was received on the bus; zero on
	// frames to send. It is kept to the nanosecond across the plugin
	// boundary.
	Timestamp time.Time
}

// Validate reports whether f may be sent on a bus of mode m. The errors
// wrap [ErrInvalidFrame] and one of the specific sentinels.
func (f Frame) Validate(m Mode) error {
	switch {
	case f.Extended && f.ID > MaxExtendedID:
		return fmt.Errorf("%w: extended id 0x%X does not fit in 29 bits", ErrInvalidID, f.ID)
	case !f.Extended && f.ID > MaxID:
		return fmt.Errorf("%w: id 0x%X does not fit in 11 bits; a 29-bit id needs the extended flag", ErrInvalidID, f.ID)
	case f.Error:
		return fmt.Errorf("%w: error frames are reported by the controller and cannot be sent", ErrInvalidFlags)
	case f.Remote && f.FD:
		return fmt.Errorf("%w: CAN FD has no remote frames", ErrInvalidFlags)
	case f.Remote && len(f.Data) != 0:
		return fmt.Errorf("%w: a remote frame carries no data; set RemoteLen", ErrInvalidFlags)
	case f.Remote && f.RemoteLen > MaxClassicData:
		return fmt.Errorf("%w: remote frame requests %d bytes, at most %d", ErrInvalidLength, f.RemoteLen, MaxClassicData)
	case !f.Remote && f.RemoteLen != 0:
		return fmt.Errorf("%w: RemoteLen set on a frame that is not a remote frame", ErrInvalidFlags)
	case !f.FD && (f.BRS || f.ESI):
		return fmt.Errorf("%w: BRS and ESI are CAN FD flags", ErrInvalidFlags)
	case !f.FD && len(f.Data) > MaxClassicData:
		return fmt.Errorf("%w: %d data bytes in a classical frame, at most %d", ErrInvalidLength, len(f.Data), MaxClassicData)
	case f.FD && !ValidFDLen(len(f.Data)):
		return fmt.Errorf("%w: %d data bytes in a CAN FD frame; allowed: 0-8, 12, 16, 20, 24, 32, 48, 64", ErrInvalidLength, len(f.Data))
	case f.FD && m != FD:
		return fmt.Errorf("%w", ErrFDOnClassicalBus)
	}
	return nil
}

// ValidFDLen reports whether n is a data length a CAN FD frame can have.
func ValidFDLen(n int) bool {
	switch {
	case n >= 0 && n <= 8:
		return true
	case n == 12, n == 16, n == 20, n == 24, n == 32, n == 48, n == 64:
		return true
	}
	return false
}

// String formats f as candump(1) log lines do: "123#DEADBEEF",
// "12345678#R4", "123##1AABB" (FD with flags nibble), error frames with the
// error flag in the ID ("20000004#...").
func (f Frame) String() string {
	var b strings.Builder
	id := f.ID
	if f.Error {
		fmt.Fprintf(&b, "%08X", id|0x20000000)
	} else if f.Extended {
		fmt.Fprintf(&b, "%08X", id)
	} else {
		fmt.Fprintf(&b, "%03X", id)
	}
	b.WriteByte('#')
	switch {
	case f.Remote:
		b.WriteByte('R')
		if f.RemoteLen > 0 {
			fmt.Fprintf(&b, "%d", f.RemoteLen)
		}
	case f.FD:
		flags := 0
		if f.BRS {
			flags |= 1
		}
		if f.ESI {
			flags |= 2
		}
		fmt.Fprintf(&b, "#%X", flags)
		b.WriteString(strings.ToUpper(hex.EncodeToString(f.Data)))
	default:
		b.WriteString(strings.ToUpper(hex.EncodeToString(f.Data)))
	}
	return b.String()
}

// Clone returns a copy of f that shares no memory with it.
func (f Frame) Clone() Frame {
	if f.Data != nil {
		f.Data = append([]byte(nil), f.Data...)
	}
	return f
}
