package broker

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berth-io/berth/devices/can"
	"github.com/berth-io/berth/devices/can/canwire"
)

// TestRateLimit floods a session from several goroutines over one second
// of fake time, in 1 ms steps, and checks that what got through is the
// burst plus the rate, within one frame.
func TestRateLimit(t *testing.T) {
	for _, c := range []struct {
		rate  Rate
		steps int
		step  time.Duration
	}{
		{Rate{PerSecond: 1000, Burst: 10}, 1000, time.Millisecond},
		{Rate{PerSecond: 100}, 1000, time.Millisecond}, // default burst: 10
		{Rate{PerSecond: 37.5, Burst: 1}, 400, 5 * time.Millisecond},
		{Rate{PerSecond: 5000, Burst: 50}, 200, time.Millisecond}, // several tokens a step
	} {
		t.Run(c.rate.String(), func(t *testing.T) {
			ctx := testCtx(t)
			drv, _ := newFake(can.Classical)
			clock := newFakeClock()
			b := New(drv, WithClock(clock))
			defer b.Close()
			g := allowAll("flood", "can0")
			g.SendRate = c.rate
			s := mustOpen(t, ctx, b, "app", g)
			fctx, stop := context.WithCancel(ctx)
			var wg sync.WaitGroup
			const senders = 3
			for range senders {
				wg.Go(func() {
					for fctx.Err() == nil {
						_ = s.Send(fctx, can.Frame{ID: 0x100})
					}
				})
			}
			for range c.steps {
				clock.waitTimers(t, senders) // every sender waits for a token
				clock.Advance(c.step)
			}
			clock.waitTimers(t, senders)
			cs, _ := s.Counters(ctx)
			stop()
			wg.Wait()
			window := time.Duration(c.steps) * c.step
			want := float64(c.rate.burst()) + c.rate.PerSecond*window.Seconds()
			achieved := float64(cs.TxFrames-uint64(c.rate.burst())) / window.Seconds()
			t.Logf("%s over %v: %d frames sent, %.1f frames/s after the burst", c.rate, window, cs.TxFrames, achieved)
			if d := float64(cs.TxFrames) - want; d < -1 || d > 1 {
				t.Errorf("%d frames sent over %v at %s, want %.0f ± 1", cs.TxFrames, window, c.rate, want)
			}
		})
	}
}

func TestRateLimitedErrors(t *testing.T) {
	ctx := testCtx(t)
	drv, _ := newFake(can.Classical)
	clock := newFakeClock()
	b := New(drv, WithClock(clock))
	defer b.Close()
	g := allowAll("slow", "can0")
	g.SendRate = Rate{PerSecond: 1, Burst: 1}
	s := mustOpen(t, ctx, b, "app", g)
	if err := s.Send(ctx, marker(0)); err != nil {
		t.Fatalf("first send within the burst: %v", err)
	}
	// A deadline nearer than the next token fails at once.
	dctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	err := s.Send(dctx, marker(1))
	cancel()
	if !errors.Is(err, ErrRateLimited) || !errors.Is(err, canwire.ErrRateLimited) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("send with a near deadline: %v, want ErrRateLimited and DeadlineExceeded", err)
	}
	if want := `container app: grant "slow" allows 1 frames/s, burst 1`; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("error %v, want it to say %q", err, want)
	}
	// A send waiting for a token ends with its ctx, or with Close.
	for _, how := range []string{"cancel", "close"} {
		cctx, cancel := context.WithCancel(ctx)
		errc := make(chan error, 1)
		go func() { errc <- s.Send(cctx, marker(2)) }()
		clock.waitTimers(t, 1)
		if how == "cancel" {
			cancel()
		} else {
			_ = s.Close()
		}
		select {
		case err := <-errc:
			if how == "cancel" && (!errors.Is(err, ErrRateLimited) || !errors.Is(err, context.Canceled)) {
				t.Errorf("cancelled wait: %v, want ErrRateLimited and Canceled", err)
			}
			if how == "close" && !errors.Is(err, can.ErrClosed) {
				t.Errorf("wait ended by Close: %v, want ErrClosed", err)
			}
		case <-time.After(timeout):
			t.Fatalf("send waiting for a token did not end on %s", how)
		}
		cancel()
	}
	if st := b.Stats(); len(st) != 0 {
		t.Errorf("stats after close: %+v", st)
	}
}

// TestFloodDoesNotStarve: a session flooding past its rate, and one
// flooding with no limit, do not keep a third session from sending, and
// a reader sees the third session's frames in order.
func TestFloodDoesNotStarve(t *testing.T) {
	ctx := testCtx(t)
	drv, _ := newFake(can.Classical)
	clock := newFakeClock() // never advanced: the limited flood stays blocked
	b := New(drv, WithClock(clock))
	defer b.Close()
	limited := allowAll("limited", "can0")
	limited.SendRate = Rate{PerSecond: 10, Burst: 1}
	lim := mustOpen(t, ctx, b, "flood1", limited)
	free := mustOpen(t, ctx, b, "flood2", Grant{Name: "free", Device: "can0", Send: Filters{Single(0x200, false)}})
	polite := mustOpen(t, ctx, b, "polite", Grant{Name: "p", Device: "can0", Send: Filters{Range(0x100, 0x1FF, false)}})
	reader := mustOpen(t, ctx, b, "reader", Grant{Name: "r", Device: "can0", Receive: Filters{Range(0x100, 0x1FF, false)}})
	rs := mustReceive(t, ctx, reader)

	fctx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer stop()
	for range 4 {
		wg.Go(func() {
			for fctx.Err() == nil {
				_ = lim.Send(fctx, can.Frame{ID: 0x300})
			}
		})
	}
	flooding := make(chan struct{})
	wg.Go(func() {
		for i := 0; fctx.Err() == nil; i++ {
			if err := free.Send(fctx, can.Frame{ID: 0x200}); err == nil && i == 0 {
				close(flooding)
			}
		}
	})
	// Both floods are on: the limited senders have used the burst and
	// wait for tokens, the unlimited one has sent.
	clock.waitTimers(t, 4)
	select {
	case <-flooding:
	case <-time.After(timeout):
		t.Fatal("the unlimited flood did not start")
	}
	const n = 500
	for i := range n {
		if err := polite.Send(ctx, marker(i)); err != nil {
			t.Fatalf("polite send %d: %v", i, err)
		}
	}
	got := collect(t, rs, n)
	for i, f := range got {
		if f.String() != marker(i).String() {
			t.Fatalf("reader: frame %d is %s, want %s", i, f, marker(i))
		}
	}
	if c, _ := lim.Counters(ctx); c.TxFrames != 1 {
		t.Errorf("rate-limited flood sent %d frames with the clock stopped, want its burst of 1", c.TxFrames)
	}
}
