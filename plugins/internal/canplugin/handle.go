// Package canplugin holds what berth's built-in CAN plugins share: the
// bookkeeping of one bus handle ([Handle]: closed state, the receive
// [can.Hub], frame validation, counters) around a plugin-specific [Port]
// that moves frames, per-device counters that outlive handles
// ([Tally], for Stats), and reading a plugin's cty config ([Config]).
// The plugins own their transports; this package owns none.
package canplugin

import (
	"context"
	"fmt"
	"sync"

	"github.com/berth-io/berth/devices/can"
)

// Port is the transport behind one [Handle]: a socket on a kernel CAN
// interface, a connection to a virtual bus. The handle calls its methods
// only while open, and Close exactly once.
type Port interface {
	// Send transmits a frame the handle has already validated for the
	// bus's mode. It returns once the frame is queued for transmission,
	// blocking (bounded by ctx) while the transmit queue is full.
	Send(ctx context.Context, f can.Frame) error
	// State returns the controller state.
	State(ctx context.Context) (can.State, error)
	// Close stops the port; it must stop calling the deliver function it
	// was given before it returns.
	Close() error
}

// Deliver hands frames received from the bus to a handle's streams, in bus
// order; the frames' Timestamp must be set. lost counts frames the
// transport itself dropped before delivery (added to the handle's Drops).
type Deliver func(lost uint64, frames ...can.Frame)

// Handle implements [can.Bus] on a [Port]. Its methods are safe for
// concurrent use.
type Handle struct {
	mode  can.Mode
	hub   *can.Hub
	port  Port
	tally *Tally
	dev   string

	mu     sync.Mutex
	tx     uint64
	lost   uint64
	closed bool
}

// Open returns a handle on device dev of the given mode. dial builds the
// handle's port and receives the function the port delivers received
// frames with; the port may deliver as soon as dial is called. The
// handle's counters are added to tally (which may be nil) when it closes.
func Open(dev string, mode can.Mode, tally *Tally, dial func(Deliver) (Port, error)) (*Handle, error) {
	h := &Handle{mode: mode, hub: can.NewHub(0), tally: tally, dev: dev}
	port, err := dial(h.deliver)
	if err != nil {
		h.hub.Close()
		return nil, err
	}
	h.port = port
	if tally != nil {
		tally.attach(dev, h)
	}
	return h, nil
}

func (h *Handle) deliver(lost uint64, frames ...can.Frame) {
	if lost > 0 {
		h.mu.Lock()
		h.lost += lost
		h.mu.Unlock()
	}
	if len(frames) > 0 {
		h.hub.Publish(frames...)
	}
}

// Mode returns the bus's mode.
func (h *Handle) Mode() can.Mode { return h.mode }

func (h *Handle) check(op string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return fmt.Errorf("%s: %w", op, can.ErrClosed)
	}
	return nil
}

// Receive starts a stream; see [can.Bus].
func (h *Handle) Receive(ctx context.Context) (can.Stream, error) {
	if err := h.check("receive"); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("receive: %w", err)
	}
	return h.hub.Receive(ctx)
}

// Send validates f for the bus's mode and hands a copy to the port.
func (h *Handle) Send(ctx context.Context, f can.Frame) error {
	if err := h.check("send"); err != nil {
		return err
	}
	if err := f.Validate(h.mode); err != nil {
		return fmt.Errorf("send %s: %w", f, err)
	}
	f = f.Clone()
	f.Timestamp = timeZero
	if err := h.port.Send(ctx, f); err != nil {
		return fmt.Errorf("send %s: %w", f, err)
	}
	h.mu.Lock()
	h.tx++
	h.mu.Unlock()
	return nil
}

// State returns the port's controller state.
func (h *Handle) State(ctx context.Context) (can.State, error) {
	if err := h.check("state"); err != nil {
		return can.StateUnknown, err
	}
	return h.port.State(ctx)
}

// Counters returns the handle's counters.
func (h *Handle) Counters(context.Context) (can.Counters, error) {
	if err := h.check("counters"); err != nil {
		return can.Counters{}, err
	}
	return h.counters(), nil
}

func (h *Handle) counters() can.Counters {
	c := h.hub.Counters()
	h.mu.Lock()
	c.TxFrames = h.tx
	c.Drops += h.lost
	h.mu.Unlock()
	return c
}

// Close closes the port and ends the handle's streams with [can.ErrClosed].
// A second Close returns nil.
func (h *Handle) Close() error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil
	}
	h.closed = true
	h.mu.Unlock()
	err := h.port.Close()
	h.hub.Close()
	if h.tally != nil {
		h.tally.detach(h.dev, h)
	}
	if err != nil {
		return fmt.Errorf("close: %w", err)
	}
	return nil
}
