package broker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/berth-io/berth/devices"
	"github.com/berth-io/berth/devices/can"
)

// device is one board device in use: the one plugin bus and receive
// stream the broker holds for it, and the sessions on it.
type device struct {
	b    *Broker
	name string

	// ready is closed once the first open finished; startErr is its
	// error. refs counts sessions and pending Opens (guarded by b.mu).
	ready    chan struct{}
	startErr error
	refs     int

	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{} // closed when run returns
	// tx sends the sessions' frames, in one order that every session
	// sees.
	tx   sender
	mode atomic.Int32 // can.Mode of the plugin bus

	mu       sync.Mutex
	sessions []*session // in open order
	bus      can.Bus    // nil while down
	cause    error      // why bus is nil
	last     time.Time  // newest receive timestamp dispatched
	framesIn uint64
	sent     uint64
	reopens  int
	scratch  []can.Frame
}

func newDevice(b *Broker, name string) *device {
	ctx, cancel := context.WithCancel(b.ctx)
	d := &device{b: b, name: name, ready: make(chan struct{}), ctx: ctx, cancel: cancel}
	d.tx.d = d
	return d
}

// start opens the plugin bus and its stream and starts fanning out.
func (d *device) start(ctx context.Context) error {
	bus, stream, err := d.open(ctx)
	if err != nil {
		return err
	}
	d.up(bus, false)
	d.done = make(chan struct{})
	go d.run(bus, stream)
	return nil
}

// open opens the device and a receive stream that lasts as long as the
// device.
func (d *device) open(ctx context.Context) (can.Bus, can.Stream, error) {
	bus, err := d.b.opener.Open(ctx, d.name)
	if err != nil {
		return nil, nil, err
	}
	stream, err := bus.Receive(d.ctx)
	if err != nil {
		_ = bus.Close()
		return nil, nil, fmt.Errorf("receive %s: %w", d.name, err)
	}
	return bus, stream, nil
}

// stop ends the fan-out and closes the plugin bus. Only the last
// reference calls it.
func (d *device) stop() {
	d.cancel()
	if d.done != nil {
		<-d.done
	}
}

// run reads the plugin stream and fans it out until the device stops;
// when the stream fails it marks the device down and reopens it. A stream
// that fails again before delivering anything backs off, so a plugin
// whose streams break at once is not reopened in a tight loop.
func (d *device) run(bus can.Bus, stream can.Stream) {
	defer close(d.done)
	var pause time.Duration
	for {
		frames, err := stream.Recv()
		if err == nil {
			pause = 0
			d.mu.Lock()
			d.framesIn += uint64(len(frames))
			d.dispatchLocked(nil, frames)
			d.mu.Unlock()
			continue
		}
		if d.ctx.Err() != nil {
			d.mu.Lock()
			d.bus, d.cause = nil, fmt.Errorf("device %s: %w", d.name, can.ErrClosed)
			d.mu.Unlock()
			_ = bus.Close()
			return
		}
		d.lost(bus, err)
		if bus, stream = d.reopen(pause); bus == nil {
			return
		}
		pause = min(max(2*pause, d.b.cfg.retryMin), d.b.cfg.retryMax)
	}
}

// lost marks the device down because bus failed with err and closes bus,
// unless it was marked already (by whoever closed it then): a batch whose
// every frame failed with the plugin declares it down once.
func (d *device) lost(bus can.Bus, err error) {
	d.mu.Lock()
	mark := d.bus == bus
	if mark {
		d.bus, d.cause = nil, err
		d.b.cfg.log.Warn("broker: device down; its sessions pause until it is back", "device", d.name, "err", err)
	}
	d.mu.Unlock()
	if mark {
		_ = bus.Close()
	}
}

// reopen waits for the device to come back and opens it again, after
// pause and with back-off between failed attempts. It returns nil when
// the device stops first.
func (d *device) reopen(pause time.Duration) (can.Bus, can.Stream) {
	if !d.sleep(pause) {
		return nil, nil
	}
	delay := d.b.cfg.retryMin
	for {
		if w, ok := d.b.opener.(Waiter); ok {
			if err := w.Wait(d.ctx, d.name); err != nil && d.ctx.Err() == nil {
				d.setCause(err)
			}
		}
		if d.ctx.Err() != nil {
			return nil, nil
		}
		bus, stream, err := d.open(d.ctx)
		if err == nil {
			d.up(bus, true)
			return bus, stream
		}
		if d.ctx.Err() != nil {
			return nil, nil
		}
		d.setCause(err)
		d.b.cfg.log.Debug("broker: reopen failed", "device", d.name, "err", err, "retry", delay)
		if !d.sleep(delay) {
			return nil, nil
		}
		delay = min(2*delay, d.b.cfg.retryMax)
	}
}

// sleep waits for dt and reports whether the device is still running.
func (d *device) sleep(dt time.Duration) bool {
	if dt <= 0 {
		return d.ctx.Err() == nil
	}
	t := time.NewTimer(dt)
	defer t.Stop()
	select {
	case <-d.ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

func (d *device) setCause(err error) {
	d.mu.Lock()
	d.cause = err
	d.mu.Unlock()
}

// up makes bus the device's bus.
func (d *device) up(bus can.Bus, again bool) {
	d.mode.Store(int32(bus.Mode()))
	d.mu.Lock()
	d.bus, d.cause = bus, nil
	if again {
		d.reopens++
	}
	n := len(d.sessions)
	d.mu.Unlock()
	if again {
		d.b.cfg.log.Info("broker: device back; its sessions resume", "device", d.name, "sessions", n)
	}
}

// current returns the plugin bus, or nil and an error wrapping
// ErrUnavailable while the device is down.
func (d *device) current() (can.Bus, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.bus != nil {
		return d.bus, nil
	}
	return nil, d.unavailableLocked()
}

func (d *device) unavailableLocked() error {
	if d.cause == nil {
		return fmt.Errorf("%w: %s is reopening; the session resumes by itself", ErrUnavailable, d.name)
	}
	return fmt.Errorf("%w: %s is down, the session resumes by itself once it is back: %w", ErrUnavailable, d.name, d.cause)
}

// failed handles an error from a call on bus: if it says the plugin went
// away, the device is marked down and the error returned wraps
// ErrUnavailable; otherwise err is returned as it is.
func (d *device) failed(bus can.Bus, err error) error {
	if errors.Is(err, can.ErrClosed) {
		// The broker closed bus under the call, having found it dead.
		d.mu.Lock()
		stale := d.bus != bus
		d.mu.Unlock()
		if stale {
			return fmt.Errorf("%w: %s went down during the call, the session resumes by itself once it is back: %w", ErrUnavailable, d.name, err)
		}
	}
	if !errors.Is(err, devices.ErrUnavailable) {
		return err
	}
	d.lost(bus, err)
	if errors.Is(err, ErrUnavailable) {
		return err
	}
	return fmt.Errorf("%w: %s is down, the session resumes by itself once it is back: %w", ErrUnavailable, d.name, err)
}

func (d *device) getMode() can.Mode { return can.Mode(d.mode.Load()) }

func (d *device) add(s *session) {
	d.mu.Lock()
	d.sessions = append(d.sessions, s)
	d.mu.Unlock()
}

func (d *device) remove(s *session) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for i, x := range d.sessions {
		if x == s {
			d.sessions = append(d.sessions[:i:i], d.sessions[i+1:]...)
			return
		}
	}
}

// dispatchLocked hands frames to every session but from whose grant
// selects them, in order: to its streams and its subscriptions. It never
// blocks: a session's hub drops what its readers cannot take, and a
// subscription's deliver must not block. Callers hold d.mu, which keeps
// one order for frames from the plugin and frames the sessions send.
func (d *device) dispatchLocked(from *session, frames []can.Frame) {
	for _, f := range frames {
		if f.Timestamp.After(d.last) {
			d.last = f.Timestamp
		}
	}
	fd := d.getMode() == can.FD
	for _, s := range d.sessions {
		if s == from {
			continue
		}
		buf := d.scratch[:0]
		for _, f := range frames {
			if s.wants(f, fd) {
				buf = append(buf, f)
			}
		}
		if len(buf) > 0 {
			s.hub.Publish(buf...)
			s.deliverLocked(buf)
		}
		d.scratch = buf[:0]
	}
}

func (d *device) stats() DeviceStats {
	d.mu.Lock()
	defer d.mu.Unlock()
	st := DeviceStats{
		Device: d.name, Mode: d.getMode(), Available: d.bus != nil,
		Reopens: d.reopens, FramesIn: d.framesIn, FramesSent: d.sent,
	}
	if d.bus == nil {
		st.Reason = d.unavailableLocked().Error()
	}
	for _, s := range d.sessions {
		st.Sessions = append(st.Sessions, s.stats())
	}
	return st
}
