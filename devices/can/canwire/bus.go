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
type Bus struct {
	s   *clientSession
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
	s, err := dialSession(ctx, path, grant, FlagFD|FlagTimestamp|FlagAck|FlagBatch, o)
	if err != nil {
		return nil, err
	}
	b := &Bus{s: s, hub: can.NewHub(o.depth)}
	s.deliver = func(frames []can.Frame) { b.hub.Publish(frames...) }
	s.ended = b.hub.Close
	s.start()
	return b, nil
}

// Mode returns the mode of the grant's bus.
func (b *Bus) Mode() can.Mode { return b.s.mode }

// Receive starts a stream of the frames the session receives; see
// can.Bus. When the server ends the session, streams end with
// can.ErrClosed.
func (b *Bus) Receive(ctx context.Context) (can.Stream, error) {
	if err := b.s.closed(); err != nil {
		return nil, fmt.Errorf("receive: %w", err)
	}
	return b.hub.Receive(ctx)
}

// Send sends f. A frame that fails f.Validate is refused here; a refusal
// by the server comes back as an [*Error] with the server's text.
func (b *Bus) Send(ctx context.Context, f can.Frame) error {
	if err := b.s.closed(); err != nil {
		return fmt.Errorf("send: %w", err)
	}
	if err := f.Validate(b.s.mode); err != nil {
		return fmt.Errorf("send %s: %w", f, err)
	}
	_, err := b.s.request(ctx, nil, time.Time{}, appendFrame(nil, f, false))
	return err
}

// State returns the controller state of the grant's bus.
func (b *Bus) State(ctx context.Context) (can.State, error) {
	c, err := b.s.request(ctx, nil, time.Time{}, appendControl(nil, control{Kind: KindState}))
	if err != nil {
		return can.StateUnknown, fmt.Errorf("state: %w", err)
	}
	return can.State(c.Code), nil
}

// Counters returns the session's counters as the server counts them, with
// the frames this client dropped added to Drops.
func (b *Bus) Counters(ctx context.Context) (can.Counters, error) {
	c, err := b.s.request(ctx, nil, time.Time{}, appendControl(nil, control{Kind: KindCounters}))
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

// Close ends the session: its streams end with can.ErrClosed, and the
// server closes its side of the handle. Calling it twice is safe.
func (b *Bus) Close() error {
	b.s.closeSession()
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
