package broker

import (
	"errors"
	"testing"
	"time"

	"github.com/berth-io/berth/devices"
	"github.com/berth-io/berth/devices/can"
)

// TestPluginRestart: when the plugin goes away, sessions see Unavailable
// on send and state, their streams pause, and they resume by themselves
// once the plugin is back, without being reopened; with and without a
// Waiter.
func TestPluginRestart(t *testing.T) {
	for _, waiter := range []bool{true, false} {
		name := "Wait"
		if !waiter {
			name = "backoff"
		}
		t.Run(name, func(t *testing.T) {
			ctx := testCtx(t)
			drv, bus := newFake(can.Classical)
			fl := newFlaky(drv)
			var op Opener = fl
			if !waiter {
				op = noWait{fl}
			}
			b := New(op, WithRetry(time.Millisecond, 20*time.Millisecond))
			defer b.Close()
			rx := mustOpen(t, ctx, b, "reader", allowAll("all", "can0"))
			tx := mustOpen(t, ctx, b, "writer", allowAll("all", "can0"))
			fl.waitSubscribed(t)
			rs := mustReceive(t, ctx, rx)
			type result struct {
				fs  []can.Frame
				err error
			}
			recv := make(chan result, 1)
			next := func() {
				go func() {
					fs, err := rs.Recv()
					recv <- result{fs, err}
				}()
			}
			next()
			bus.Inject(marker(1))
			if r := <-recv; r.err != nil || len(r.fs) != 1 || r.fs[0].String() != marker(1).String() {
				t.Fatalf("before the crash: %v, %v", r.fs, r.err)
			}
			next() // waits across the crash

			fl.fail()
			err := tx.Send(ctx, marker(2))
			if !errors.Is(err, ErrUnavailable) || !errors.Is(err, devices.ErrUnavailable) {
				t.Fatalf("send while the plugin is down: %v, want ErrUnavailable", err)
			}
			if _, err := tx.State(ctx); !errors.Is(err, ErrUnavailable) {
				t.Errorf("state while the plugin is down: %v, want ErrUnavailable", err)
			}
			if st := b.Stats()[0]; st.Available || st.Reason == "" || len(st.Sessions) != 2 {
				t.Errorf("stats while down: %+v, want unavailable with a reason and both sessions", st)
			}
			if _, err := b.Open(ctx, "late", allowAll("all", "can0")); err != nil {
				t.Errorf("open on a device that is down, with sessions on it: %v", err)
			}
			select {
			case r := <-recv:
				t.Fatalf("stream returned while the plugin was down: %v, %v", r.fs, r.err)
			default:
			}

			fl.recover()
			fl.waitSubscribed(t)
			bus.Inject(marker(3))
			select {
			case r := <-recv:
				if r.err != nil || len(r.fs) != 1 || r.fs[0].String() != marker(3).String() {
					t.Fatalf("after the restart: %v, %v; want %s", r.fs, r.err, marker(3))
				}
			case <-time.After(timeout):
				t.Fatal("the stream did not resume after the plugin came back")
			}
			// The same sessions send and receive again.
			if err := tx.Send(ctx, marker(4)); err != nil {
				t.Fatalf("send after the restart: %v", err)
			}
			if got := collect(t, rs, 1); got[0].String() != marker(4).String() {
				t.Errorf("after the restart the reader got %s, want %s", got[0], marker(4))
			}
			st := b.Stats()[0]
			if !st.Available || st.Reopens != 1 || len(st.Sessions) != 3 {
				t.Errorf("stats after the restart: %+v, want available, 1 reopen, 3 sessions", st)
			}
			if bus.Handles() != 1 {
				t.Errorf("%d plugin handles open, want 1 (the dead one closed)", bus.Handles())
			}
		})
	}
}

// TestOpenWhileDown: the first session on a device whose plugin is down
// fails with the opener's Unavailable, and works once it is back.
func TestOpenWhileDown(t *testing.T) {
	ctx := testCtx(t)
	drv, _ := newFake(can.Classical)
	fl := newFlaky(drv)
	b := New(fl)
	defer b.Close()
	fl.fail()
	if _, err := b.Open(ctx, "app", allowAll("all", "can0")); !errors.Is(err, devices.ErrUnavailable) {
		t.Fatalf("open while down: %v, want devices.ErrUnavailable", err)
	}
	fl.recover()
	mustOpen(t, ctx, b, "app", allowAll("all", "can0"))
}
