// Package cantest holds test doubles for the CAN class and the conformance
// suite every CAN implementation runs ([Run]).
//
//   - [Bus] is an in-memory CAN bus (the wire) with programmable state;
//     [Driver] drives named Buses, so several opens of one bus see each
//     other's frames as on a real bus.
//   - [MockDriver] has function fields, with [StaticOpen] and [ErrorOpen]
//     to fill them, for tests that need one exact answer.
//   - [Record] wraps a can.Bus and records what was sent through it.
package cantest

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/berth-io/berth/devices/can"
)

// Bus is an in-memory CAN bus. Every handle opened on it receives the
// frames the other handles send, stamped with a receive time that is
// strictly increasing along the bus. Its methods are safe for concurrent
// use.
type Bus struct {
	mode  can.Mode
	depth int

	mu      sync.Mutex
	state   can.State
	handles map[*handle]struct{}
	last    time.Time
}

// BusOption configures a Bus.
type BusOption func(*Bus)

// WithDepth sets how many frames each stream buffers before it drops
// (default can.DefaultDepth).
func WithDepth(n int) BusOption { return func(b *Bus) { b.depth = n } }

// NewBus returns an idle, error-active bus of mode m.
func NewBus(m can.Mode, opts ...BusOption) *Bus {
	b := &Bus{mode: m, state: can.StateErrorActive, handles: make(map[*handle]struct{})}
	for _, o := range opts {
		o(b)
	}
	return b
}

// SetState programs the controller state every handle reports. Sends fail
// with can.ErrBusOff in StateBusOff and can.ErrBusStopped in StateStopped.
func (b *Bus) SetState(s can.State) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.state = s
}

// Inject puts frames on the bus as another node (or, for error frames, the
// controller) would: every open handle receives them. Frames with a zero
// Timestamp are stamped.
func (b *Bus) Inject(frames ...can.Frame) {
	b.deliver(nil, frames)
}

// Open returns a new handle on the bus. The caller closes it.
func (b *Bus) Open() can.Bus {
	h := &handle{bus: b, hub: can.NewHub(b.depth)}
	b.mu.Lock()
	b.handles[h] = struct{}{}
	b.mu.Unlock()
	return h
}

// Handles returns how many handles are open on the bus.
func (b *Bus) Handles() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.handles)
}

// Streams returns how many receive streams are open on the bus's open
// handles. A frame injected once it reaches n is seen by n streams, where
// Handles alone does not say that a handle's reader has started.
func (b *Bus) Streams() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for h := range b.handles {
		n += int(h.streams.Load())
	}
	return n
}

// deliver stamps and hands frames to every handle but from, under the bus
// lock, so every handle sees one bus order.
func (b *Bus) deliver(from *handle, frames []can.Frame) {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]can.Frame, len(frames))
	for i, f := range frames {
		f = f.Clone()
		if f.Timestamp.IsZero() {
			now := time.Now()
			if !now.After(b.last) {
				now = b.last.Add(time.Nanosecond)
			}
			b.last = now
			f.Timestamp = now
		}
		out[i] = f
	}
	for h := range b.handles {
		if h != from {
			h.hub.Publish(out...)
		}
	}
}

type handle struct {
	bus *Bus
	hub *can.Hub

	streams atomic.Int32 // open receive streams

	mu     sync.Mutex
	tx     uint64
	closed bool
}

func (h *handle) Mode() can.Mode { return h.bus.mode }

func (h *handle) check(op string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return fmt.Errorf("%s: %w", op, can.ErrClosed)
	}
	return nil
}

func (h *handle) Receive(ctx context.Context) (can.Stream, error) {
	if err := h.check("receive"); err != nil {
		return nil, err
	}
	s, err := h.hub.Receive(ctx)
	if err != nil {
		return nil, err
	}
	h.streams.Add(1)
	context.AfterFunc(ctx, func() { h.streams.Add(-1) })
	return s, nil
}

func (h *handle) Send(ctx context.Context, f can.Frame) error {
	if err := h.check("send"); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("send: %w", err)
	}
	if err := f.Validate(h.bus.mode); err != nil {
		return fmt.Errorf("send: %w", err)
	}
	h.bus.mu.Lock()
	st := h.bus.state
	h.bus.mu.Unlock()
	switch st {
	case can.StateBusOff:
		return fmt.Errorf("send: %w", can.ErrBusOff)
	case can.StateStopped:
		return fmt.Errorf("send: %w", can.ErrBusStopped)
	}
	f.Timestamp = time.Time{}
	h.bus.deliver(h, []can.Frame{f})
	h.mu.Lock()
	h.tx++
	h.mu.Unlock()
	return nil
}

func (h *handle) State(context.Context) (can.State, error) {
	if err := h.check("state"); err != nil {
		return can.StateUnknown, err
	}
	h.bus.mu.Lock()
	defer h.bus.mu.Unlock()
	return h.bus.state, nil
}

func (h *handle) Counters(context.Context) (can.Counters, error) {
	if err := h.check("counters"); err != nil {
		return can.Counters{}, err
	}
	c := h.hub.Counters()
	h.mu.Lock()
	c.TxFrames = h.tx
	h.mu.Unlock()
	return c, nil
}

func (h *handle) Close() error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil
	}
	h.closed = true
	h.mu.Unlock()
	h.bus.mu.Lock()
	delete(h.bus.handles, h)
	h.bus.mu.Unlock()
	h.hub.Close()
	return nil
}

// Driver is a can.Driver over in-memory Buses, keyed by device ID.
type Driver struct {
	mu    sync.Mutex
	buses map[string]*Bus
}

// NewDriver returns a driver with no buses.
func NewDriver() *Driver {
	return &Driver{buses: make(map[string]*Bus)}
}

// Add makes b reachable as device id and returns it.
func (d *Driver) Add(id string, b *Bus) *Bus {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.buses[id] = b
	return b
}

// Bus returns the bus with device ID id, or nil.
func (d *Driver) Bus(id string) *Bus {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.buses[id]
}

// Open opens a new handle on the bus named device.
func (d *Driver) Open(ctx context.Context, device string) (can.Bus, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("open %s: %w", device, err)
	}
	b := d.Bus(device)
	if b == nil {
		return nil, fmt.Errorf("open %s: %w", device, can.ErrUnknownDevice)
	}
	return b.Open(), nil
}

// MockDriver is a can.Driver whose Open is a function field.
type MockDriver struct {
	OpenF func(ctx context.Context, device string) (can.Bus, error)
}

// Open calls OpenF.
func (m *MockDriver) Open(ctx context.Context, device string) (can.Bus, error) {
	return m.OpenF(ctx, device)
}

// StaticOpen returns an OpenF that always returns b.
func StaticOpen(b can.Bus) func(context.Context, string) (can.Bus, error) {
	return func(context.Context, string) (can.Bus, error) { return b, nil }
}

// ErrorOpen returns an OpenF that always fails with err.
func ErrorOpen(err error) func(context.Context, string) (can.Bus, error) {
	return func(context.Context, string) (can.Bus, error) { return nil, err }
}

// Record wraps a can.Bus and records every frame sent through it
// successfully. Record embeds the bus, so Record.Close closes the wrapped
// handle: wrap only a handle you own.
type Record struct {
	can.Bus

	mu   sync.Mutex
	sent []can.Frame
}

// Send sends through the wrapped bus and records f when that succeeds.
func (r *Record) Send(ctx context.Context, f can.Frame) error {
	if err := r.Bus.Send(ctx, f); err != nil {
		return err
	}
	r.mu.Lock()
	r.sent = append(r.sent, f.Clone())
	r.mu.Unlock()
	return nil
}

// Sent returns a copy of the frames sent so far, in order.
func (r *Record) Sent() []can.Frame {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]can.Frame(nil), r.sent...)
}
