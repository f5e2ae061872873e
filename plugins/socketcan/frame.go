package socketcan

import (
	"encoding/binary"
	"fmt"
	"strings"

	"github.com/berth-io/berth/devices/can"
)

// Kernel frame layout (linux/can.h), host byte order (little endian on
// every platform berth targets).
const (
	classicMTU = 16 // struct can_frame
	fdMTU      = 72 // struct canfd_frame

	flagEFF = 0x80000000 // CAN_EFF_FLAG
	flagRTR = 0x40000000 // CAN_RTR_FLAG
	flagERR = 0x20000000 // CAN_ERR_FLAG
	maskEFF = 0x1FFFFFFF
	maskSFF = 0x7FF

	fdBRS = 0x01 // CANFD_BRS
	fdESI = 0x02 // CANFD_ESI
	fdFDF = 0x04 // CANFD_FDF
)

// encodeFrame returns f as the kernel takes it: a 16-byte can_frame, or
// a 72-byte canfd_frame for an FD frame. f must be valid.
func encodeFrame(f can.Frame) []byte {
	id := f.ID
	if f.Extended {
		id |= flagEFF
	}
	if f.Remote {
		id |= flagRTR
	}
	if !f.FD {
		b := make([]byte, classicMTU)
		binary.LittleEndian.PutUint32(b, id)
		b[4] = byte(len(f.Data))
		if f.Remote {
			b[4] = f.RemoteLen
		}
		copy(b[8:], f.Data)
		return b
	}
	b := make([]byte, fdMTU)
	binary.LittleEndian.PutUint32(b, id)
	b[4] = byte(len(f.Data))
	b[5] = fdFDF
	if f.BRS {
		b[5] |= fdBRS
	}
	if f.ESI {
		b[5] |= fdESI
	}
	copy(b[8:], f.Data)
	return b
}

// decodeFrame converts a frame read from a raw CAN socket (16 or 72
// bytes). The timestamp is left zero.
func decodeFrame(b []byte) (can.Frame, error) {
	if len(b) != classicMTU && len(b) != fdMTU {
		return can.Frame{}, fmt.Errorf("decode frame: %w: %d bytes from the socket, want %d or %d", can.ErrInvalidLength, len(b), classicMTU, fdMTU)
	}
	raw := binary.LittleEndian.Uint32(b)
	n := int(b[4])
	f := can.Frame{Extended: raw&flagEFF != 0, Error: raw&flagERR != 0}
	switch {
	case f.Error:
		f.ID = raw & maskEFF
		f.Extended = false
	case f.Extended:
		f.ID = raw & maskEFF
	default:
		f.ID = raw & maskSFF
	}
	if len(b) == fdMTU {
		if n > can.MaxFDData || !can.ValidFDLen(n) {
			return can.Frame{}, fmt.Errorf("decode frame: %w: FD length %d", can.ErrInvalidLength, n)
		}
		f.FD, f.BRS, f.ESI = true, b[5]&fdBRS != 0, b[5]&fdESI != 0
	} else {
		if n > can.MaxClassicData {
			n = can.MaxClassicData // a DLC of 9–15 means 8 bytes
		}
		if raw&flagRTR != 0 && !f.Error {
			f.Remote, f.RemoteLen = true, uint8(n)
			return f, nil
		}
	}
	if n > 0 {
		f.Data = append([]byte(nil), b[8:8+n]...)
	}
	return f, nil
}

// Error classes in an error frame's ID, and controller status bits in its
// data[1] (linux/can/error.h).
const (
	errTxTimeout  = 0x001
	errLostArb    = 0x002
	errCrtl       = 0x004
	errProt       = 0x008
	errTrx        = 0x010
	errAck        = 0x020
	errBusOff     = 0x040
	errBusError   = 0x080
	errRestarted  = 0x100
	errCnt        = 0x200
	crtlRxWarning = 0x04
	crtlTxWarning = 0x08
	crtlRxPassive = 0x10
	crtlTxPassive = 0x20
	crtlActive    = 0x40
)

// ErrorInfo is what an error frame says about the controller.
type ErrorInfo struct {
	// State is the state the frame reports the controller in;
	// can.StateUnknown when it says nothing about the state.
	State can.State
	// Classes names the error classes set, e.g. ["bus-off"].
	Classes []string
}

// String joins the classes: "bus-off, controller(rx-passive)".
func (e ErrorInfo) String() string { return strings.Join(e.Classes, ", ") }

// DecodeError reads an error frame (f.Error set, as decoded from the
// socket): which error classes it reports, and the controller state they
// imply. A frame that is not an error frame gives the zero ErrorInfo.
func DecodeError(f can.Frame) ErrorInfo {
	var e ErrorInfo
	if !f.Error {
		return e
	}
	data := func(i int) byte {
		if i < len(f.Data) {
			return f.Data[i]
		}
		return 0
	}
	for _, c := range []struct {
		bit  uint32
		name string
	}{{errTxTimeout, "tx-timeout"}, {errLostArb, "lost-arbitration"}, {errProt, "protocol"},
		{errTrx, "transceiver"}, {errAck, "no-ack"}, {errBusError, "bus-error"}, {errCnt, "error-counter"}} {
		if f.ID&c.bit != 0 {
			e.Classes = append(e.Classes, c.name)
		}
	}
	if f.ID&errCrtl != 0 {
		var st []string
		d := data(1)
		for _, c := range []struct {
			bit  byte
			name string
		}{{crtlRxWarning, "rx-warning"}, {crtlTxWarning, "tx-warning"}, {crtlRxPassive, "rx-passive"}, {crtlTxPassive, "tx-passive"}, {crtlActive, "active"}} {
			if d&c.bit != 0 {
				st = append(st, c.name)
			}
		}
		e.Classes = append(e.Classes, "controller("+strings.Join(st, ",")+")")
		switch {
		case d&(crtlRxPassive|crtlTxPassive) != 0:
			e.State = can.StateErrorPassive
		case d&crtlActive != 0:
			e.State = can.StateErrorActive
		}
	}
	if f.ID&errRestarted != 0 {
		e.Classes = append(e.Classes, "restarted")
		e.State = can.StateErrorActive
	}
	if f.ID&errBusOff != 0 {
		e.Classes = append(e.Classes, "bus-off")
		e.State = can.StateBusOff
	}
	return e
}
