package broker

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/berth-io/berth/devices/can"
)

// recorder is a subscription's deliver that keeps what it took; take
// says how many of each batch it takes (nil: all).
type recorder struct {
	mu    sync.Mutex
	got   []can.Frame
	calls int
	take  func(batch []can.Frame) int
	more  chan struct{}
}

func newRecorder() *recorder { return &recorder{more: make(chan struct{}, 1)} }

func (r *recorder) deliver(fs []can.Frame) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	n := len(fs)
	if r.take != nil {
		n = r.take(fs)
	}
	r.got = append(r.got, fs[:max(0, min(n, len(fs)))]...) // copy: fs is the broker's
	select {
	case r.more <- struct{}{}:
	default:
	}
	return n
}

// wait waits until the recorder holds n frames and returns them.
func (r *recorder) wait(t *testing.T, n int) []can.Frame {
	t.Helper()
	deadline := time.After(timeout)
	for {
		r.mu.Lock()
		got := append([]can.Frame(nil), r.got...)
		r.mu.Unlock()
		if len(got) >= n {
			return got
		}
		select {
		case <-r.more:
		case <-deadline:
			t.Fatalf("subscription got %d of %d frames", len(got), n)
		}
	}
}

func mustSubscribe(t *testing.T, ctx context.Context, b can.Bus, deliver func([]can.Frame) int) <-chan struct{} {
	t.Helper()
	sub, ok := b.(can.Subscriber)
	if !ok {
		t.Fatalf("broker session %T is not a can.Subscriber", b)
	}
	done, err := sub.Subscribe(ctx, deliver)
	if err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	return done
}

// TestSubscribeOrder: a subscription gets its grant's frames, from the
// plugin and from other sessions, in the bus order a stream sees, and
// ends (done closed, no more calls) when its ctx ends or the session
// closes.
func TestSubscribeOrder(t *testing.T) {
	ctx := testCtx(t)
	drv, bus := newFake(can.Classical)
	b := New(drv)
	defer b.Close()
	g := Grant{Name: "body", Device: "can0", Receive: Filters{Range(0x100, 0x1FF, false)}, Send: Filters{AnyID()}}
	rx := mustOpen(t, ctx, b, "sub", g)
	tx := mustOpen(t, ctx, b, "tx", allowAll("all", "can0"))
	ref := mustReceive(t, ctx, rx) // a stream on the same session, for the order
	rec := newRecorder()
	sctx, unsubscribe := context.WithCancel(ctx)
	done := mustSubscribe(t, sctx, rx, rec.deliver)

	const n = 300
	var want []can.Frame
	for i := range n {
		f := marker(i)
		if i%3 == 0 {
			f.ID = 0x200 + uint32(i%0x100) // outside the grant
		} else {
			want = append(want, f)
		}
		if i%2 == 0 {
			bus.Inject(f)
		} else if err := tx.Send(ctx, f); err != nil {
			t.Fatal(err)
		}
	}
	got := rec.wait(t, len(want))
	streamed := collect(t, ref, len(want))
	for i := range want {
		if got[i].String() != streamed[i].String() {
			t.Fatalf("frame %d: subscription got %s, the stream %s", i, got[i], streamed[i])
		}
	}
	if len(got) != len(want) {
		t.Fatalf("subscription got %d frames, want %d", len(got), len(want))
	}
	if st := b.Stats()[0].Sessions[0]; st.Received != uint64(len(want)) || st.Delivered != 2*uint64(len(want)) || st.Dropped != 0 {
		t.Errorf("stats %+v: want %d received, delivered to the stream and the subscription, none dropped", st, len(want))
	}

	unsubscribe()
	select {
	case <-done:
	case <-time.After(timeout):
		t.Fatal("done not closed after ctx ended")
	}
	rec.mu.Lock()
	calls := rec.calls
	rec.mu.Unlock()
	bus.Inject(marker(1))
	collect(t, ref, 1)
	rec.mu.Lock()
	if rec.calls != calls {
		t.Errorf("deliver called after the subscription ended")
	}
	rec.mu.Unlock()

	done = mustSubscribe(t, ctx, rx, rec.deliver)
	_ = rx.Close()
	select {
	case <-done:
	case <-time.After(timeout):
		t.Fatal("done not closed after the session closed")
	}
	if _, err := rx.(can.Subscriber).Subscribe(ctx, rec.deliver); !errors.Is(err, can.ErrClosed) {
		t.Errorf("subscribe on a closed session: %v, want can.ErrClosed", err)
	}
}

// TestSubscribeDrops: frames deliver does not take are counted as that
// session's drops, in Counters and Stats, as a slow stream's are; the
// other sessions lose nothing.
func TestSubscribeDrops(t *testing.T) {
	ctx := testCtx(t)
	drv, bus := newFake(can.Classical)
	b := New(drv)
	defer b.Close()
	slow := mustOpen(t, ctx, b, "slow", allowAll("all", "can0"))
	fast := mustOpen(t, ctx, b, "fast", allowAll("all", "can0"))
	rs, rf := newRecorder(), newRecorder()
	// The slow one takes the first frame of each call, and none after 30.
	rs.take = func([]can.Frame) int {
		if len(rs.got) >= 30 {
			return 0
		}
		return 1
	}
	mustSubscribe(t, ctx, slow, rs.deliver)
	mustSubscribe(t, ctx, fast, rf.deliver)
	const n, batch = 200, 10
	for i := 0; i < n; i += batch {
		frames := make([]can.Frame, batch)
		for j := range frames {
			frames[j] = marker(i + j)
		}
		bus.Inject(frames...)
	}
	got := rf.wait(t, n)
	for i, f := range got {
		if f.String() != marker(i).String() {
			t.Fatalf("fast: frame %d is %s, want %s", i, f, marker(i))
		}
	}
	rs.mu.Lock()
	kept := rs.got
	rs.mu.Unlock()
	if len(kept) == 0 {
		t.Fatal("the slow subscription took nothing")
	}
	for i, next := 0, 0; i < len(kept); i++ { // in bus order
		for next < n && marker(next).String() != kept[i].String() {
			next++
		}
		if next == n {
			t.Fatalf("slow: frame %d %s is out of order", i, kept[i])
		}
	}
	k := uint64(len(kept))
	sc, _ := slow.Counters(ctx)
	fc, _ := fast.Counters(ctx)
	if sc.RxFrames != n || sc.Drops != n-k {
		t.Errorf("slow counters %+v, want %d received, %d dropped", sc, n, n-k)
	}
	if fc.RxFrames != n || fc.Drops != 0 {
		t.Errorf("fast counters %+v, want %d received, none dropped", fc, n)
	}
	st := b.Stats()[0].Sessions
	if s, f := st[0], st[1]; s.Received != n || s.Delivered != k || s.Dropped != n-k ||
		f.Received != n || f.Delivered != n || f.Dropped != 0 {
		t.Errorf("session stats %+v, %+v", s, f)
	}
}

// TestSubscribeRestart: a subscription pauses while the plugin is down
// and resumes by itself once it is back, without subscribing again.
func TestSubscribeRestart(t *testing.T) {
	ctx := testCtx(t)
	drv, bus := newFake(can.Classical)
	fl := newFlaky(drv)
	b := New(fl, WithRetry(time.Millisecond, 20*time.Millisecond))
	defer b.Close()
	rx := mustOpen(t, ctx, b, "reader", allowAll("all", "can0"))
	fl.waitSubscribed(t)
	rec := newRecorder()
	done := mustSubscribe(t, ctx, rx, rec.deliver)
	bus.Inject(marker(1))
	rec.wait(t, 1)

	fl.fail()
	if err := rx.Send(ctx, marker(9)); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("send while the plugin is down: %v, want ErrUnavailable", err)
	}
	fl.recover()
	fl.waitSubscribed(t)
	bus.Inject(marker(2))
	if got := rec.wait(t, 2); got[1].String() != marker(2).String() || len(got) != 2 {
		t.Errorf("after the restart the subscription got %v, want %s then %s", got, marker(1), marker(2))
	}
	select {
	case <-done:
		t.Error("the subscription ended over the restart")
	default:
	}
	if st := b.Stats()[0]; !st.Available || st.Reopens != 1 || st.Sessions[0].Delivered != 2 {
		t.Errorf("stats after the restart: %+v", st)
	}
}
