package canwire

import (
	"context"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/berth-io/berth/devices/can"
)

// Bus is a session as a can.Bus: classical and CAN FD frames, error
// frames, receive timestamps to the nanosecond, state and counters. Each
// Bus is one connection to the device socket, so one independent handle on
// the grant's bus. Its methods are safe for concurrent use.
//
// A Bus survives a restart of the server (berthd) as a [Conn] does (see
// [Dial]): while the client redials, Send, State and Counters fail at once
// with an error matching [ErrUnavailable], and receive streams pause, then
// go on with the new session's frames; frames the bus carried meanwhile
// are not seen nor counted. Counters are the current session's: a new
// session's count from zero. A redial refused for good ends the Bus: its
// streams end with can.ErrClosed, and its methods return the refusal.
type Bus struct {
	l   *link
	hub *can.Hub
}

var _ can.Bus = (*Bus)(nil)

// OpenBus opens a session for the CAN grant named grant on the device
// socket at path and returns it as a can.Bus. ctx bounds the dial and the
// hello only. A grant the container does not hold fails with an error
// naming it that matches [ErrUnknownGrant] and can.ErrUnknownDevice. The
// caller closes the Bus.
func OpenBus(ctx context.Context, path, grant string, opts ...Option) (*Bus, error) {
	o := makeOptions(opts)
	hub := can.NewHub(o.depth)
	h := Hello{Flags: FlagFD | FlagTimestamp | FlagAck | FlagBatch, Class: "can", Grant: grant}
	l, err := openLink(ctx, path, h, o, func(frames []can.Frame) { hub.Publish(frames...) }, hub.Close)
	if err != nil {
		return nil, err
	}
	return &Bus{l: l, hub: hub}, nil
}

// Mode returns the mode of the grant's bus.
func (b *Bus) Mode() can.Mode { return b.l.busMode() }

// Receive starts a stream of the frames the session receives; see
// can.Bus. The stream goes on across redials; it ends with can.ErrClosed
// when the client ends (Close, a redial refused, or the server hanging up
// with redialing off).
func (b *Bus) Receive(ctx context.Context) (can.Stream, error) {
	if _, err := b.l.endErr(); err != nil {
		return nil, fmt.Errorf("receive: %w", err)
	}
	return b.hub.Receive(ctx)
}

// Send sends f. A frame that fails f.Validate is refused here; a refusal
// by the server comes back as an [*Error] with the server's text.
func (b *Bus) Send(ctx context.Context, f can.Frame) error {
	if _, err := b.l.endErr(); err != nil {
		return fmt.Errorf("send: %w", err)
	}
	if err := f.Validate(b.l.busMode()); err != nil {
		return fmt.Errorf("send %s: %w", f, err)
	}
	s, err := b.l.current()
	if err != nil {
		return fmt.Errorf("send: %w", err)
	}
	_, err = s.request(ctx, nil, time.Time{}, appendFrame(nil, f, false))
	return err
}

// State returns the controller state of the grant's bus.
func (b *Bus) State(ctx context.Context) (can.State, error) {
	c, err := b.query(ctx, KindState)
	if err != nil {
		return can.StateUnknown, fmt.Errorf("state: %w", err)
	}
	return can.State(c.Code), nil
}

// Counters returns the session's counters as the server counts them, with
// the frames this client dropped added to Drops.
func (b *Bus) Counters(ctx context.Context) (can.Counters, error) {
	c, err := b.query(ctx, KindCounters)
	if err != nil {
		return can.Counters{}, fmt.Errorf("counters: %w", err)
	}
	if len(c.Payload) != 32 {
		return can.Counters{}, fmt.Errorf("counters: %w: %d-byte answer, want 32", ErrProtocol, len(c.Payload))
	}
	u := func(i int) uint64 { return binary.LittleEndian.Uint64(c.Payload[8*i:]) }
	return can.Counters{
		RxFrames: u(0),
		TxFrames: u(1),
		Errors:   u(2),
		Drops:    u(3) + b.hub.Counters().Drops,
	}, nil
}

func (b *Bus) query(ctx context.Context, k Kind) (control, error) {
	s, err := b.l.current()
	if err != nil {
		return control{}, err
	}
	return s.request(ctx, nil, time.Time{}, appendControl(nil, control{Kind: k}))
}

// Close ends the session, or stops a redial: its streams end with
// can.ErrClosed, and the server closes its side of the handle. Calling it
// twice is safe.
func (b *Bus) Close() error {
	b.l.close()
	b.hub.Close()
	return nil
}

// Driver opens [Bus] sessions on one device socket: its Open takes a grant
// name where a can.Driver takes a device ID, so code written against
// can.Driver (and the conformance suite) runs on the container side.
type Driver struct {
	path string
	opts []Option
}

var _ can.Driver = (*Driver)(nil)

// NewDriver returns a Driver for the device socket at path.
func NewDriver(path string, opts ...Option) *Driver {
	return &Driver{path: path, opts: opts}
}

// Open opens a session for grant; see [OpenBus].
func (d *Driver) Open(ctx context.Context, grant string) (can.Bus, error) {
	b, err := OpenBus(ctx, d.path, grant, d.opts...)
	if err != nil {
		return nil, err
	}
	return b, nil
}
