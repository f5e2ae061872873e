// Package canwire owns the container-facing CAN wire protocol: how a program
// inside a container talks CAN over its device socket
// (/run/berth/device.sock), the server side the broker runs on that socket
// ([Serve], [ServeConn]) and the Go client container programs import
// ([Dial] for a net.Conn einride's socketcan package uses unchanged,
// [OpenBus] and [Driver] for a can.Bus).
//
// The protocol is SOCK_SEQPACKET with Linux SocketCAN's own struct can_frame
// and struct canfd_frame records; PROTOCOL.md beside this file documents it
// byte by byte, so a C or Python program can speak it too.
//
// The client survives a restart of berthd by itself: containers outlive the
// daemon, and the new daemon serves each container's socket again at the
// same path. When the server hangs up, a [Conn] or [Bus] redials with the
// same hello (50ms back-off doubling to 1s) for as long as it is open;
// meanwhile reads and receive streams wait, and sends fail at once with an
// error matching [ErrUnavailable], as while a plugin restarts. Frames the
// bus carried while the client was away are not seen and not counted. A
// new server that refuses the grant (the playbook changed) ends the client
// with its error. [WithoutRedial] turns this off for callers that should
// fail fast when berthd is gone, such as `berth can` on the operator
// socket.
package canwire

import (
	"encoding/binary"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/berth-io/berth/devices/can"
)

// Network is the socket type the protocol runs on (SOCK_SEQPACKET).
const Network = "unixpacket"

// DefaultSocket is where a container finds its device socket.
const DefaultSocket = "/run/berth/device.sock"

// Sizes on the wire. Every integer is little-endian.
const (
	// FrameSize is sizeof(struct can_frame) (CAN_MTU).
	FrameSize = 16
	// FDFrameSize is sizeof(struct canfd_frame) (CANFD_MTU).
	FDFrameSize = 72
	// TimestampSize is the receive timestamp trailer a record carries when
	// the client asked for FlagTimestamp.
	TimestampSize = 8
	// HeaderSize is the size of a control message header and of a hello
	// header.
	HeaderSize = 16
	// MaxText is the longest error text or grant a message carries.
	MaxText = 1024
	// MaxMessage is the largest message either side sends.
	MaxMessage = 16384
)

// Hello flags: what the client asks of the session.
const (
	// FlagFD: deliver CAN FD frames (as canfd_frame records). Without it
	// FD frames are not delivered, as on a CAN_RAW socket without
	// CAN_RAW_FD_FRAMES.
	FlagFD = 0x01
	// FlagTimestamp: every received record is followed by an 8-byte
	// receive timestamp.
	FlagTimestamp = 0x02
	// FlagAck: every client message after the hello is answered, in
	// order, by a Result or an Error message. Without it only refusals
	// are answered.
	FlagAck = 0x04
	// FlagBatch: the server may pack several records into one message.
	FlagBatch = 0x08

	flagsKnown = FlagFD | FlagTimestamp | FlagAck | FlagBatch
)

// Version is the protocol version a hello names.
const Version = 1

// helloMagic opens every hello.
const helloMagic = "BRTH"

// ControlID is the can_id word that opens every control message: all three
// SocketCAN flag bits and all 29 ID bits set, which no frame has.
const ControlID = 0xFFFFFFFF

// Kind is the kind of a control message.
type Kind uint8

// The control message kinds.
const (
	// KindHelloOK (server): the session is open; Code holds the bus mode
	// (0 classical, 1 FD).
	KindHelloOK Kind = 1
	// KindResult (server): the client message numbered Seq succeeded.
	// For a state query Code holds the state; for a counters query the
	// payload holds four uint64: rx_frames, tx_frames, errors, drops.
	KindResult Kind = 2
	// KindError (server): the client message numbered Seq (0: the hello,
	// or no message: an event of the session) failed; Code is the status
	// code, Detail a finer reason, the payload the error text.
	KindError Kind = 3
	// KindState (client): query the controller state.
	KindState Kind = 4
	// KindCounters (client): query the session's counters.
	KindCounters Kind = 5
)

// SocketCAN constants (linux/can.h).
const (
	canEFFFlag = 0x80000000
	canRTRFlag = 0x40000000
	canERRFlag = 0x20000000
	canEFFMask = 0x1FFFFFFF
	canfdBRS   = 0x01
	canfdESI   = 0x02
	canfdFDF   = 0x04
)

// Hello is the first message of a session, from the client.
type Hello struct {
	// Flags are the Flag* bits.
	Flags uint8
	// Class is the device class the grant is for ("can").
	Class string
	// Grant is the grant's name in the container's playbook.
	Grant string
}

// String returns the grant as the hello names it: "can body".
func (h Hello) String() string { return h.Class + " " + h.Grant }

// appendHello appends the hello message for h.
func appendHello(b []byte, h Hello) []byte {
	b = append(b, helloMagic...)
	b = append(b, Version, h.Flags, 0, 0)
	b = append(b, make([]byte, HeaderSize-8)...)
	b = append(b, h.Class...)
	b = append(b, ' ')
	return append(b, h.Grant...)
}

// decodeHello parses a hello message.
func decodeHello(b []byte) (Hello, error) {
	if len(b) < HeaderSize || string(b[:4]) != helloMagic {
		return Hello{}, fmt.Errorf("%w: the first message is not a hello", ErrProtocol)
	}
	if b[4] != Version {
		return Hello{}, fmt.Errorf("%w: hello version %d, this server speaks %d", ErrProtocol, b[4], Version)
	}
	h := Hello{Flags: b[5]}
	if h.Flags&^flagsKnown != 0 {
		return Hello{}, fmt.Errorf("%w: unknown hello flags 0x%02X", ErrProtocol, h.Flags&^flagsKnown)
	}
	text := b[HeaderSize:]
	if len(text) > MaxText {
		return Hello{}, fmt.Errorf("%w: grant of %d bytes, at most %d", ErrProtocol, len(text), MaxText)
	}
	if !utf8.Valid(text) || strings.IndexFunc(string(text), func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 {
		return Hello{}, fmt.Errorf("%w: grant %q is not printable UTF-8", ErrProtocol, text)
	}
	class, name, ok := strings.Cut(string(text), " ")
	if !ok || class == "" || name == "" || strings.ContainsRune(name, ' ') {
		return Hello{}, fmt.Errorf("%w: grant %q is not \"<class> <name>\"", ErrProtocol, text)
	}
	h.Class, h.Grant = class, name
	return h, nil
}

// control is a control message.
type control struct {
	Kind    Kind
	Code    uint8
	Detail  uint8
	Seq     uint64
	Payload []byte
}

func appendControl(b []byte, c control) []byte {
	b = binary.LittleEndian.AppendUint32(b, ControlID)
	b = append(b, byte(c.Kind), c.Code, c.Detail, 0)
	b = binary.LittleEndian.AppendUint64(b, c.Seq)
	return append(b, c.Payload...)
}

func isControl(b []byte) bool {
	return len(b) >= 4 && binary.LittleEndian.Uint32(b) == ControlID
}

func decodeControl(b []byte) (control, error) {
	if len(b) < HeaderSize || !isControl(b) {
		return control{}, fmt.Errorf("%w: control message of %d bytes", ErrProtocol, len(b))
	}
	return control{
		Kind:    Kind(b[4]),
		Code:    b[5],
		Detail:  b[6],
		Seq:     binary.LittleEndian.Uint64(b[8:]),
		Payload: b[HeaderSize:],
	}, nil
}

// appendFrame appends f as a can_frame, or a canfd_frame when f.FD, and
// the timestamp trailer when ts is set. The frame is not validated: an
// invalid frame is encoded as faithfully as the layout allows, so the
// receiving side refuses it with the exact reason.
func appendFrame(b []byte, f can.Frame, ts bool) []byte {
	id := f.ID & canEFFMask
	if f.Extended {
		id |= canEFFFlag
	}
	if f.Remote {
		id |= canRTRFlag
	}
	if f.Error {
		id |= canERRFlag
	}
	b = binary.LittleEndian.AppendUint32(b, id)
	if f.FD {
		var flags byte = canfdFDF
		if f.BRS {
			flags |= canfdBRS
		}
		if f.ESI {
			flags |= canfdESI
		}
		n := min(len(f.Data), can.MaxFDData)
		b = append(b, byte(n), flags, 0, 0)
		b = append(b, f.Data[:n]...)
		b = append(b, make([]byte, can.MaxFDData-n)...)
	} else {
		n := min(len(f.Data), can.MaxClassicData)
		length := byte(n)
		if f.Remote {
			length = f.RemoteLen
		}
		b = append(b, length, 0, 0, 0)
		b = append(b, f.Data[:n]...)
		b = append(b, make([]byte, can.MaxClassicData-n)...)
	}
	if ts {
		var ns int64
		if !f.Timestamp.IsZero() {
			ns = f.Timestamp.UnixNano()
		}
		b = binary.LittleEndian.AppendUint64(b, uint64(ns))
	}
	return b
}

// recordSize returns the size of the record that opens b: the flags byte
// of a canfd_frame has CANFD_FDF set, the pad byte of a can_frame is zero.
func recordSize(b []byte, ts bool) int {
	n := FrameSize
	if len(b) > 5 && b[5]&canfdFDF != 0 {
		n = FDFrameSize
	}
	if ts {
		n += TimestampSize
	}
	return n
}

// decodeRecord decodes one record of exactly its size: 16 or 72 bytes, plus
// the timestamp trailer when ts. It refuses, with errors wrapping
// can.ErrInvalidFrame, what the layout cannot hold; everything else is
// left for Frame.Validate.
func decodeRecord(b []byte, ts bool) (can.Frame, error) {
	body := b
	var f can.Frame
	if ts {
		if len(b) < TimestampSize {
			return f, fmt.Errorf("%w: record of %d bytes", can.ErrInvalidLength, len(b))
		}
		body = b[:len(b)-TimestampSize]
		if ns := int64(binary.LittleEndian.Uint64(b[len(body):])); ns != 0 {
			f.Timestamp = time.Unix(0, ns)
		}
	}
	switch len(body) {
	case FrameSize, FDFrameSize:
	default:
		return f, fmt.Errorf("%w: a record is %d (can_frame) or %d (canfd_frame) bytes, not %d",
			can.ErrInvalidLength, FrameSize, FDFrameSize, len(body))
	}
	id := binary.LittleEndian.Uint32(body)
	f.ID = id & canEFFMask
	f.Extended = id&canEFFFlag != 0
	f.Remote = id&canRTRFlag != 0
	f.Error = id&canERRFlag != 0
	n := int(body[4])
	if len(body) == FDFrameSize {
		flags := body[5]
		if flags&^(canfdBRS|canfdESI|canfdFDF) != 0 {
			return f, fmt.Errorf("%w: canfd_frame flags 0x%02X", can.ErrInvalidFlags, flags)
		}
		if n > can.MaxFDData {
			return f, fmt.Errorf("%w: canfd_frame len %d, at most %d", can.ErrInvalidLength, n, can.MaxFDData)
		}
		f.FD, f.BRS, f.ESI = true, flags&canfdBRS != 0, flags&canfdESI != 0
		f.Data = append([]byte(nil), body[8:8+n]...)
		return f, nil
	}
	if n > can.MaxClassicData {
		return f, fmt.Errorf("%w: can_frame len %d, at most %d", can.ErrInvalidLength, n, can.MaxClassicData)
	}
	if f.Remote {
		f.RemoteLen = uint8(n)
		return f, nil
	}
	f.Data = append([]byte(nil), body[8:8+n]...)
	return f, nil
}

// decodeRecords decodes a message of one or more records.
func decodeRecords(b []byte, ts bool) ([]can.Frame, error) {
	var out []can.Frame
	for len(b) > 0 {
		n := recordSize(b, ts)
		if n > len(b) {
			return out, fmt.Errorf("%w: message ends inside a %d-byte record", ErrProtocol, n)
		}
		f, err := decodeRecord(b[:n], ts)
		if err != nil {
			return out, err
		}
		out = append(out, f)
		b = b[n:]
	}
	return out, nil
}
