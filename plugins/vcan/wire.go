package vcan

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"time"

	"github.com/berth-io/berth/devices/can"
)

// The hub protocol, over a unix stream socket. Every message is
//
//	u32 length (little endian, of what follows) | u8 type | body
//
// A member opens with hello; the hub answers welcome or refuse (and closes).
// Then both sides send frame messages; the hub also sends lost when it had
// to drop frames for a member that did not keep up.
//
//	hello:   u8 protocol version | u8 mode (0 classical, 1 fd) | bus name
//	welcome: (empty)
//	refuse:  reason (UTF-8)
//	frame:   u32 id | u8 flags | u8 remote length | i64 timestamp (unix ns,
//	         0 from a member) | data (0–64 bytes)
//	lost:    u64 frames dropped for this member since the last lost
const (
	protocolVersion = 1

	msgHello   = 1
	msgWelcome = 2
	msgRefuse  = 3
	msgFrame   = 4
	msgLost    = 5

	frameHeaderLen = 4 + 1 + 1 + 8
	maxMessage     = 1 + frameHeaderLen + can.MaxFDData + 256
)

// Frame flags.
const (
	flagExtended = 1 << iota
	flagRemote
	flagError
	flagFD
	flagBRS
	flagESI
)

func appendHeader(b []byte, typ byte, n int) []byte {
	b = binary.LittleEndian.AppendUint32(b, uint32(1+n))
	return append(b, typ)
}

func appendHello(b []byte, bus string, mode can.Mode) []byte {
	b = appendHeader(b, msgHello, 2+len(bus))
	return append(append(b, protocolVersion, byte(mode)), bus...)
}

func appendRefuse(b []byte, reason string) []byte {
	return append(appendHeader(b, msgRefuse, len(reason)), reason...)
}

func appendLost(b []byte, n uint64) []byte {
	return binary.LittleEndian.AppendUint64(appendHeader(b, msgLost, 8), n)
}

// appendFrame encodes f; ts is its timestamp in unix nanoseconds (0 for
// a frame a member sends).
func appendFrame(b []byte, f can.Frame, ts int64) []byte {
	var flags byte
	for _, x := range []struct {
		on  bool
		bit byte
	}{{f.Extended, flagExtended}, {f.Remote, flagRemote}, {f.Error, flagError}, {f.FD, flagFD}, {f.BRS, flagBRS}, {f.ESI, flagESI}} {
		if x.on {
			flags |= x.bit
		}
	}
	b = appendHeader(b, msgFrame, frameHeaderLen+len(f.Data))
	b = binary.LittleEndian.AppendUint32(b, f.ID)
	b = append(b, flags, f.RemoteLen)
	b = binary.LittleEndian.AppendUint64(b, uint64(ts))
	return append(b, f.Data...)
}

// decodeFrame decodes a frame message body (after the type byte).
func decodeFrame(body []byte) (can.Frame, error) {
	if len(body) < frameHeaderLen || len(body) > frameHeaderLen+can.MaxFDData {
		return can.Frame{}, fmt.Errorf("%w: frame message of %d bytes", errProtocol, len(body))
	}
	flags := body[4]
	f := can.Frame{
		ID:        binary.LittleEndian.Uint32(body),
		Extended:  flags&flagExtended != 0,
		Remote:    flags&flagRemote != 0,
		Error:     flags&flagError != 0,
		FD:        flags&flagFD != 0,
		BRS:       flags&flagBRS != 0,
		ESI:       flags&flagESI != 0,
		RemoteLen: body[5],
	}
	if ts := int64(binary.LittleEndian.Uint64(body[6:])); ts != 0 {
		f.Timestamp = time.Unix(0, ts)
	}
	if data := body[frameHeaderLen:]; len(data) > 0 {
		f.Data = append([]byte(nil), data...)
	}
	return f, nil
}

// reader reads messages from a connection.
type reader struct {
	r   *bufio.Reader
	buf []byte
}

func newReader(r io.Reader) *reader {
	return &reader{r: bufio.NewReaderSize(r, 64<<10), buf: make([]byte, maxMessage)}
}

// next returns the next message's type and body; the body is valid until
// the next call.
func (r *reader) next() (byte, []byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r.r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := binary.LittleEndian.Uint32(hdr[:])
	if n < 1 || n > maxMessage {
		return 0, nil, fmt.Errorf("%w: message of %d bytes", errProtocol, n)
	}
	msg := r.buf[:n]
	if _, err := io.ReadFull(r.r, msg); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return 0, nil, err
	}
	return msg[0], msg[1:], nil
}

// buffered reports whether another message may be read without blocking
// on the connection (at least its length prefix is buffered).
func (r *reader) buffered() bool { return r.r.Buffered() >= 4 }
