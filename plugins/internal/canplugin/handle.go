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
	// blocking (bounded by ctx) while the transmit queue is full. It does
	// not keep f (or its Data) after it returns.
	Send(ctx context.Context, f can.Frame) error
	// State returns the controller state.
	State(ctx context.Context) (can.State, error)
	// Close stops the port; it must stop calling the deliver function it
	// was given before it returns.
	Close() error
}

// BatchPort is a [Port] that queues many frames in one call; a Handle's
// SendBatch uses it when its port has it.
type BatchPort interface {
	Port
	// SendBatch queues frames in order, as that many Sends would, and
	// returns how many it queued: all of them, or n and the error of
	// frames[n] (the frames after it were not tried). It does not keep
	// the frames after it returns.
	SendBatch(ctx context.Context, frames []can.Frame) (int, error)
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

var _ can.BatchSender = (*Handle)(nil)

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

// Send validates f for the bus's mode and hands it to the port.
func (h *Handle) Send(ctx context.Context, f can.Frame) error {
	if err := h.check("send"); err != nil {
		return err
	}
	if err := f.Validate(h.mode); err != nil {
		return fmt.Errorf("send %s: %w", f, err)
	}
	f.Timestamp = timeZero
	if err := h.port.Send(ctx, f); err != nil {
		return fmt.Errorf("send %s: %w", f, err)
	}
	h.mu.Lock()
	h.tx++
	h.mu.Unlock()
	return nil
}

// SendBatch implements can.BatchSender: each frame is validated and
// refused on its own, and the others go to the port in order, in one
// call when the port is a [BatchPort].
func (h *Handle) SendBatch(ctx context.Context, frames []can.Frame) error {
	errs := make([]error, len(frames))
	failed := false
	if err := h.check("send"); err != nil {
		for i := range errs {
			errs[i] = err
		}
		return &can.BatchError{Errs: errs}
	}
	valid := make([]can.Frame, 0, len(frames))
	pos := make([]int, 0, len(frames))
	for i, f := range frames {
		if err := f.Validate(h.mode); err != nil {
			errs[i], failed = fmt.Errorf("send %s: %w", f, err), true
			continue
		}
		f.Timestamp = timeZero
		valid, pos = append(valid, f), append(pos, i)
	}
	sent := 0
	for k := 0; k < len(valid); {
		n, err := h.sendPort(ctx, valid[k:])
		sent += n
		k += n
		if err != nil {
			errs[pos[k]], failed = fmt.Errorf("send %s: %w", valid[k], err), true
			k++
		}
	}
	h.mu.Lock()
	h.tx += uint64(sent)
	h.mu.Unlock()
	if !failed {
		return nil
	}
	return &can.BatchError{Errs: errs}
}

// sendPort queues frames on the port until one fails; see
// [BatchPort.SendBatch].
func (h *Handle) sendPort(ctx context.Context, frames []can.Frame) (int, error) {
	if bp, ok := h.port.(BatchPort); ok {
		return bp.SendBatch(ctx, frames)
	}
	for i, f := range frames {
		if err := h.port.Send(ctx, f); err != nil {
			return i, err
		}
	}
	return len(frames), nil
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
