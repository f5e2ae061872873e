package broker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/berth-io/berth/devices/can"
)

// session is one container's grant on one device, as a can.Bus (and a
// can.BatchSender and can.Subscriber).
type session struct {
	d         *device
	container string
	grant     Grant
	hub       *can.Hub
	limiter   *bucket // nil: unlimited

	closeOnce sync.Once
	done      chan struct{} // closed by Close

	subs []*subscription // guarded by d.mu

	// subDrops are frames subscriptions did not take; the hub counts
	// its streams' drops.
	delivered, subDrops, sent, refused, rateLimited atomic.Uint64
}

func newSession(d *device, container string, g Grant) *session {
	s := &session{d: d, container: container, grant: g, hub: can.NewHub(d.b.cfg.depth), done: make(chan struct{})}
	if !g.SendRate.Unlimited() {
		s.limiter = newBucket(g.SendRate, d.b.cfg.clock)
	}
	return s
}

// wants reports whether the session's grant selects f; fd says whether
// the device runs CAN FD.
func (s *session) wants(f can.Frame, fd bool) bool {
	switch {
	case f.Error:
		return s.grant.ErrorFrames
	case f.FD && !(fd && s.grant.FD):
		return false
	}
	return s.grant.Receive.Match(f.ID, f.Extended)
}

func (s *session) closed() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

func (s *session) errClosed(op string) error {
	return fmt.Errorf("%s: container %s: grant %q: session %w", op, s.container, s.grant.Name, can.ErrClosed)
}

// Mode is CAN FD when the grant allows FD and the device runs it, else
// classical.
func (s *session) Mode() can.Mode {
	if s.grant.FD && s.d.getMode() == can.FD {
		return can.FD
	}
	return can.Classical
}

// Receive starts a stream of the frames the grant's receive filter
// selects, from the plugin and from the device's other sessions, in bus
// order. While the device's plugin is down the stream pauses; it does not
// end. It ends with ctx's error, or can.ErrClosed once the session is
// closed (after the frames already queued). A stream whose reader falls
// behind by more than the broker's depth loses the newest frames, counted
// in Counters().Drops; no other stream or session notices.
func (s *session) Receive(ctx context.Context) (can.Stream, error) {
	if s.closed() {
		return nil, s.errClosed("receive")
	}
	st, err := s.hub.Receive(ctx)
	if err != nil {
		return nil, s.errClosed("receive")
	}
	return &stream{Stream: st, s: s}, nil
}

type stream struct {
	can.Stream
	s *session
}

func (st *stream) Recv() ([]can.Frame, error) {
	fs, err := st.Stream.Recv()
	st.s.delivered.Add(uint64(len(fs)))
	return fs, err
}

// subscription is one Subscribe's callback.
type subscription struct {
	deliver func([]can.Frame) int
	done    chan struct{} // closed by whoever removes it from subs
	stop    func() bool   // forgets the ctx watch
}

// Subscribe implements can.Subscriber: deliver gets what Receive would
// stream, from the device's dispatch, under the device's lock (so in bus
// order, and deliver must not call the broker). Frames it does not take
// count in Counters().Drops and the stats' Dropped, as a slow stream's
// do. It pauses while the plugin is down. done is closed once ctx ended
// or the session closed, after deliver's last call.
func (s *session) Subscribe(ctx context.Context, deliver func([]can.Frame) int) (<-chan struct{}, error) {
	if deliver == nil {
		return nil, fmt.Errorf("subscribe: container %s: grant %q: deliver is nil: pass a function", s.container, s.grant.Name)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("subscribe: %w", err)
	}
	sub := &subscription{deliver: deliver, done: make(chan struct{})}
	s.d.mu.Lock()
	if s.closed() {
		s.d.mu.Unlock()
		return nil, s.errClosed("subscribe")
	}
	s.subs = append(s.subs, sub)
	sub.stop = context.AfterFunc(ctx, func() { s.unsubscribe(sub) })
	s.d.mu.Unlock()
	return sub.done, nil
}

// unsubscribe ends sub, or all subscriptions when sub is nil.
func (s *session) unsubscribe(sub *subscription) {
	s.d.mu.Lock()
	var gone []*subscription
	s.subs = slices.DeleteFunc(s.subs, func(x *subscription) bool {
		if sub == nil || x == sub {
			gone = append(gone, x)
			return true
		}
		return false
	})
	s.d.mu.Unlock()
	for _, x := range gone {
		x.stop()
		close(x.done)
	}
}

// deliverLocked hands frames, which the grant selected, to the session's
// subscriptions and counts what they take and drop. Callers hold d.mu.
func (s *session) deliverLocked(frames []can.Frame) {
	for _, sub := range s.subs {
		n := min(max(sub.deliver(frames), 0), len(frames))
		s.delivered.Add(uint64(n))
		s.subDrops.Add(uint64(len(frames) - n))
	}
}

// Send checks f against the grant and sends it on the device's plugin
// bus. It refuses, without sending:
//   - a malformed frame, with the can.ErrInvalidFrame error Validate gives
//     for the session's mode, and a CAN FD frame from a grant without FD
//     on an FD bus, with a [*DeniedError] wrapping can.ErrFDOnClassicalBus;
//   - an ID outside the grant's send list, with a [*DeniedError] wrapping
//     [ErrPermissionDenied];
//   - any frame while the device's plugin is down, with an error wrapping
//     [ErrUnavailable].
//
// Over the grant's send rate Send blocks until the token bucket has a
// token, in arrival order; when ctx ends first (or its deadline is too
// near for the wait) it fails with a [*DeniedError] wrapping
// [ErrRateLimited] and ctx's error. Each session has its own bucket, so a
// flooding session waits on itself and not on others. A frame sent is
// received by the device's other sessions whose grants select it.
//
// Frames go on the bus in the order their Sends passed these checks,
// across the device's sessions: the device's sender sends what is queued
// together, in one batch per plugin round trip. When ctx ends or the
// session closes before the sender took the frame, it is not sent; when
// ctx ends after, Send returns ctx's error and the frame may have gone
// out.
func (s *session) Send(ctx context.Context, f can.Frame) error {
	if err := s.admit(ctx, f); err != nil {
		return err
	}
	if errs := s.send(ctx, []can.Frame{f}); errs != nil {
		return s.sendErr(f, errs[0])
	}
	return nil
}

// SendBatch implements can.BatchSender: each frame is checked as Send
// checks it (the rate limiter waits frame by frame), and the frames
// accepted are queued together, so no other Send comes between them on
// the bus. It returns nil when every frame was sent, else a
// *can.BatchError holding the error Send would have given each frame.
func (s *session) SendBatch(ctx context.Context, frames []can.Frame) error {
	errs := make([]error, len(frames))
	failed := false
	ok := make([]can.Frame, 0, len(frames))
	pos := make([]int, 0, len(frames))
	for i, f := range frames {
		if err := s.admit(ctx, f); err != nil {
			errs[i], failed = err, true
			continue
		}
		ok, pos = append(ok, f), append(pos, i)
	}
	if len(ok) > 0 {
		for k, err := range s.send(ctx, ok) {
			if err != nil {
				errs[pos[k]], failed = s.sendErr(ok[k], err), true
			}
		}
	}
	if !failed {
		return nil
	}
	return &can.BatchError{Errs: errs}
}

// admit runs Send's checks on f and waits for the send rate; nil means f
// may be queued. Refusals are counted.
func (s *session) admit(ctx context.Context, f can.Frame) error {
	if s.closed() {
		return s.errClosed(fmt.Sprintf("send %s", f))
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("send %s: %w", f, err)
	}
	if f.FD && !s.grant.FD && s.d.getMode() == can.FD {
		s.refused.Add(1)
		return &DeniedError{Container: s.container, Grant: s.grant.Name, Err: can.ErrFDOnClassicalBus,
			Reason: fmt.Sprintf("does not allow CAN FD frames (sending %s): add fd = true to it", f)}
	}
	if err := f.Validate(s.Mode()); err != nil {
		s.refused.Add(1)
		return fmt.Errorf("send %s: container %s: grant %q: %w", f, s.container, s.grant.Name, err)
	}
	if !s.grant.Send.Match(f.ID, f.Extended) {
		s.refused.Add(1)
		return &DeniedError{Container: s.container, Grant: s.grant.Name, Err: ErrPermissionDenied,
			Reason: fmt.Sprintf("does not allow sending %s: its send list is %s", formatID(f.ID, f.Extended), s.grant.Send)}
	}
	if _, err := s.d.current(); err != nil {
		return fmt.Errorf("send %s: container %s: grant %q: %w", f, s.container, s.grant.Name, err)
	}
	if s.limiter != nil {
		if err := s.limiter.wait(ctx, s.done); err != nil {
			if errors.Is(err, can.ErrClosed) {
				return s.errClosed(fmt.Sprintf("send %s", f))
			}
			s.rateLimited.Add(1)
			return &DeniedError{Container: s.container, Grant: s.grant.Name, Err: ErrRateLimited, Cause: err,
				Reason: fmt.Sprintf("allows %s: sending %s gave up waiting for the rate: %v", s.grant.SendRate, f, err)}
		}
	}
	return nil
}

// sendErr is the error Send returns for f when the sender gave it err.
func (s *session) sendErr(f can.Frame, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, errSessionClosed):
		return s.errClosed(fmt.Sprintf("send %s", f))
	case err == context.Canceled || err == context.DeadlineExceeded:
		return fmt.Errorf("send %s: %w", f, err)
	}
	return fmt.Errorf("send %s: container %s: grant %q: %w", f, s.container, s.grant.Name, err)
}

// State returns the device's controller state from its plugin; while the
// plugin is down it fails with an error wrapping [ErrUnavailable].
func (s *session) State(ctx context.Context) (can.State, error) {
	if s.closed() {
		return can.StateUnknown, s.errClosed("state")
	}
	bus, err := s.d.current()
	if err == nil {
		var st can.State
		if st, err = bus.State(ctx); err == nil {
			return st, nil
		}
		err = s.d.failed(bus, err)
	}
	return can.StateUnknown, fmt.Errorf("state: container %s: grant %q: %w", s.container, s.grant.Name, err)
}

// Counters returns the session's own counts, kept by the broker (they
// survive plugin restarts): RxFrames are frames its filter selected,
// Errors the error frames among them, Drops those its streams lost, and
// TxFrames frames it sent.
func (s *session) Counters(context.Context) (can.Counters, error) {
	if s.closed() {
		return can.Counters{}, s.errClosed("counters")
	}
	c := s.hub.Counters()
	c.Drops += s.subDrops.Load()
	c.TxFrames = s.sent.Load()
	return c, nil
}

// Close ends the session's streams with can.ErrClosed and its
// subscriptions, and leaves the
// device and other sessions running; the last session on a device closes
// the plugin bus. Safe to call twice.
func (s *session) Close() error {
	s.closeOnce.Do(func() {
		close(s.done)
		s.d.remove(s)
		s.unsubscribe(nil)
		s.hub.Close()
		s.d.b.sessionEnded(s.d.name, s.stats())
		s.d.b.cfg.log.Debug("broker session closed", "device", s.d.name, "container", s.container, "grant", s.grant.Name)
		s.d.b.release(s.d)
	})
	return nil
}

func (s *session) stats() SessionStats {
	c := s.hub.Counters()
	return SessionStats{
		Container: s.container, Grant: s.grant.Name, Open: 1,
		Received: c.RxFrames, Delivered: s.delivered.Load(), Dropped: c.Drops + s.subDrops.Load(),
		Sent: s.sent.Load(), Refused: s.refused.Load(), RateLimited: s.rateLimited.Load(),
	}
}
