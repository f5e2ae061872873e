package broker

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/berth-io/berth/devices"
	"github.com/berth-io/berth/devices/can"
	"github.com/berth-io/berth/devices/can/cantest"
)

// timeout bounds every wait in the tests.
const timeout = 10 * time.Second

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	return ctx
}

// allowAll is a grant that allows everything on device.
func allowAll(name, device string) Grant {
	return Grant{Name: name, Device: device, Receive: Filters{AnyID()}, Send: Filters{AnyID()}, FD: true, ErrorFrames: true}
}

func mustOpen(t testing.TB, ctx context.Context, b *Broker, container string, g Grant) can.Bus {
	t.Helper()
	s, err := b.Open(ctx, container, g)
	if err != nil {
		t.Fatalf("open %s: %v", g, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func mustReceive(t testing.TB, ctx context.Context, b can.Bus) can.Stream {
	t.Helper()
	s, err := b.Receive(ctx)
	if err != nil {
		t.Fatalf("receive: %v", err)
	}
	return s
}

// collect reads exactly n frames (the stream's ctx bounds the wait).
func collect(t testing.TB, s can.Stream, n int) []can.Frame {
	t.Helper()
	var got []can.Frame
	for len(got) < n {
		fs, err := s.Recv()
		if err != nil {
			t.Fatalf("recv after %d of %d frames: %v", len(got), n, err)
		}
		got = append(got, fs...)
	}
	if len(got) != n {
		t.Fatalf("received %d frames, want %d", len(got), n)
	}
	return got
}

// until reads frames until one equal to last (by String) arrives and
// returns those before it.
func until(t testing.TB, s can.Stream, last can.Frame) []can.Frame {
	t.Helper()
	var got []can.Frame
	for {
		fs, err := s.Recv()
		if err != nil {
			t.Fatalf("recv after %d frames, waiting for %s: %v", len(got), last, err)
		}
		for i, f := range fs {
			if f.String() == last.String() {
				if i != len(fs)-1 {
					t.Fatalf("frames after the last one %s: %v", last, fs[i+1:])
				}
				return got
			}
			got = append(got, f)
		}
	}
}

func marker(i int) can.Frame {
	return can.Frame{ID: 0x100 + uint32(i%0x100), Data: []byte{byte(i >> 16), byte(i >> 8), byte(i)}}
}

// fakeClock is a Clock that moves only when told to.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	timers  map[*fakeTimer]struct{}
	changed chan struct{} // closed and replaced when timers change
}

type fakeTimer struct {
	at time.Time
	c  chan time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Unix(1_000_000, 0), timers: make(map[*fakeTimer]struct{}), changed: make(chan struct{})}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) NewTimer(d time.Duration) (<-chan time.Time, func() bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{at: c.now.Add(d), c: make(chan time.Time, 1)}
	if d <= 0 {
		t.c <- c.now
		return t.c, func() bool { return false }
	}
	c.timers[t] = struct{}{}
	c.signalLocked()
	return t.c, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		_, ok := c.timers[t]
		delete(c.timers, t)
		c.signalLocked()
		return ok
	}
}

func (c *fakeClock) signalLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// Advance moves the clock on by d and fires the timers due.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	for t := range c.timers {
		if !t.at.After(c.now) {
			t.c <- c.now
			delete(c.timers, t)
		}
	}
	c.signalLocked()
}

// waitTimers blocks until at least n timers are pending.
func (c *fakeClock) waitTimers(t testing.TB, n int) {
	t.Helper()
	deadline := time.After(timeout)
	for {
		c.mu.Lock()
		k, ch := len(c.timers), c.changed
		c.mu.Unlock()
		if k >= n {
			return
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("%d timers pending after %v, want %d", k, timeout, n)
		}
	}
}

// flakyOpener opens buses on a cantest.Driver and can play a plugin
// crash: fail kills every bus it opened (their calls fail with
// devices.ErrUnavailable, as the plugin host's do) and refuses to open
// until recover.
type flakyOpener struct {
	drv        *cantest.Driver
	subscribed chan struct{} // one token per Receive on a bus

	mu    sync.Mutex
	down  bool
	upCh  chan struct{}
	buses []*flakyBus
}

func newFlaky(drv *cantest.Driver) *flakyOpener {
	return &flakyOpener{drv: drv, subscribed: make(chan struct{}, 64), upCh: make(chan struct{})}
}

func (o *flakyOpener) Open(ctx context.Context, dev string) (can.Bus, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.down {
		return nil, fmt.Errorf("open %s: %w: plugin fake is restarting", dev, devices.ErrUnavailable)
	}
	b, err := o.drv.Open(ctx, dev)
	if err != nil {
		return nil, err
	}
	fb := &flakyBus{Bus: b, o: o, dead: make(chan struct{})}
	o.buses = append(o.buses, fb)
	return fb, nil
}

func (o *flakyOpener) Wait(ctx context.Context, dev string) error {
	for {
		o.mu.Lock()
		down, ch := o.down, o.upCh
		o.mu.Unlock()
		if !down {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (o *flakyOpener) fail() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.down = true
	o.upCh = make(chan struct{})
	for _, b := range o.buses {
		close(b.dead)
	}
	o.buses = nil
}

func (o *flakyOpener) recover() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.down = false
	close(o.upCh)
}

// waitSubscribed waits for the next Receive on a bus.
func (o *flakyOpener) waitSubscribed(t testing.TB) {
	t.Helper()
	select {
	case <-o.subscribed:
	case <-time.After(timeout):
		t.Fatal("the broker did not open a receive stream")
	}
}

type flakyBus struct {
	can.Bus
	o    *flakyOpener
	dead chan struct{}
}

func (b *flakyBus) isDead() bool {
	select {
	case <-b.dead:
		return true
	default:
		return false
	}
}

func (b *flakyBus) gone(op string) error {
	return fmt.Errorf("%s: %w: plugin fake went away", op, devices.ErrUnavailable)
}

func (b *flakyBus) Send(ctx context.Context, f can.Frame) error {
	if b.isDead() {
		return b.gone("send")
	}
	return b.Bus.Send(ctx, f)
}

func (b *flakyBus) State(ctx context.Context) (can.State, error) {
	if b.isDead() {
		return can.StateUnknown, b.gone("state")
	}
	return b.Bus.State(ctx)
}

func (b *flakyBus) Receive(ctx context.Context) (can.Stream, error) {
	if b.isDead() {
		return nil, b.gone("receive")
	}
	cctx, cancel := context.WithCancel(ctx)
	go func() {
		select {
		case <-b.dead:
			cancel()
		case <-cctx.Done():
		}
	}()
	s, err := b.Bus.Receive(cctx)
	if err != nil {
		cancel()
		return nil, err
	}
	b.o.subscribed <- struct{}{}
	return &flakyStream{Stream: s, b: b}, nil
}

type flakyStream struct {
	can.Stream
	b *flakyBus
}

func (s *flakyStream) Recv() ([]can.Frame, error) {
	fs, err := s.Stream.Recv()
	if err != nil && s.b.isDead() {
		return nil, s.b.gone("receive")
	}
	return fs, err
}

// noWait hides an Opener's Wait, so the broker retries with back-off.
type noWait struct{ Opener }
