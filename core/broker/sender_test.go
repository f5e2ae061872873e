package broker

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berth-io/berth/core/syncbuf"
	"github.com/berth-io/berth/devices/can"
	"github.com/berth-io/berth/devices/can/cantest"
)

// gateOpener opens buses whose Sends each wait, once they have started
// (entered), until the test lets one through (release).
type gateOpener struct {
	drv     *cantest.Driver
	entered chan can.Frame
	release chan struct{}
}

func (o *gateOpener) Open(ctx context.Context, dev string) (can.Bus, error) {
	b, err := o.drv.Open(ctx, dev)
	if err != nil {
		return nil, err
	}
	return &gateBus{Bus: b, o: o}, nil
}

type gateBus struct {
	can.Bus
	o *gateOpener
}

func (b *gateBus) Send(ctx context.Context, f can.Frame) error {
	b.o.entered <- f
	<-b.o.release
	return b.Bus.Send(ctx, f)
}

// sendAsync runs s.Send in a goroutine and returns its result channel.
func sendAsync(ctx context.Context, s can.Bus, f can.Frame) <-chan error {
	c := make(chan error, 1)
	go func() { c <- s.Send(ctx, f) }()
	return c
}

// waitQueued waits until the device's sender holds n calls not taken.
func waitQueued(t *testing.T, b *Broker, n int) {
	t.Helper()
	b.mu.Lock()
	q := &b.devices["can0"].tx
	b.mu.Unlock()
	for deadline := time.Now().Add(timeout); ; time.Sleep(time.Millisecond) {
		q.mu.Lock()
		k := len(q.queue)
		q.mu.Unlock()
		if k >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d sends queued after %v, want %d", k, timeout, n)
		}
	}
}

// TestSendQueue: while a frame is out on the plugin bus, Sends of other
// sessions queue; one whose ctx ends, or whose session closes, before the
// sender takes it is not sent; the rest go in one batch after, in arrival
// order, on the plugin bus and in the echo to the other sessions, and
// each Send gets its own frame's result.
func TestSendQueue(t *testing.T) {
	ctx := testCtx(t)
	drv, bus := newFake(can.Classical)
	o := &gateOpener{drv: drv, entered: make(chan can.Frame, 16), release: make(chan struct{})}
	b := New(o)
	defer b.Close()
	rx := mustOpen(t, ctx, b, "reader", allowAll("all", "can0"))
	rs := mustReceive(t, ctx, rx)
	plugin := bus.Open()
	defer plugin.Close()
	ps := mustReceive(t, ctx, plugin)
	var tx [4]can.Bus
	for i := range tx {
		tx[i] = mustOpen(t, ctx, b, "writer", allowAll("all", "can0"))
	}
	first := sendAsync(ctx, tx[0], marker(1))
	if f := <-o.entered; f.String() != marker(1).String() {
		t.Fatalf("plugin got %s first, want %s", f, marker(1))
	}
	cctx, cancel := context.WithCancel(ctx)
	cancelled := sendAsync(cctx, tx[1], marker(2))
	waitQueued(t, b, 1)
	second := sendAsync(ctx, tx[2], marker(3))
	waitQueued(t, b, 2)
	closed := sendAsync(ctx, tx[3], marker(4))
	waitQueued(t, b, 3)
	third := sendAsync(ctx, tx[2], can.Frame{ID: 0x800}) // refused before queueing
	if err := <-third; !errors.Is(err, can.ErrInvalidID) {
		t.Errorf("send of a bad frame: %v, want ErrInvalidID", err)
	}
	fourth := sendAsync(ctx, tx[0], marker(5))
	waitQueued(t, b, 4)

	cancel()
	if err := <-cancelled; !errors.Is(err, context.Canceled) {
		t.Errorf("queued send whose ctx ended: %v, want context.Canceled", err)
	}
	_ = tx[3].Close()
	if err := <-closed; !errors.Is(err, can.ErrClosed) || !strings.Contains(err.Error(), "container writer") {
		t.Errorf("queued send of a closed session: %v, want can.ErrClosed naming the container", err)
	}
	close(o.release)
	for i, c := range []<-chan error{first, second, fourth} {
		if err := <-c; err != nil {
			t.Errorf("send %d: %v", i, err)
		}
	}
	want := []can.Frame{marker(1), marker(3), marker(5)}
	for name, s := range map[string]can.Stream{"plugin bus": ps, "other session": rs} {
		got := collect(t, s, len(want))
		for i := range want {
			if got[i].String() != want[i].String() {
				t.Errorf("%s received %v, want %v", name, got, want)
				break
			}
		}
	}
	c, _ := tx[0].Counters(ctx)
	if c.TxFrames != 2 {
		t.Errorf("session counted %d frames sent, want 2", c.TxFrames)
	}
	if st := b.Stats()[0]; st.FramesSent != 3 {
		t.Errorf("device counted %d frames sent, want 3", st.FramesSent)
	}
}

// TestSessionSendBatch: a session's SendBatch checks each frame as Send
// does, sends the accepted ones together in order, and reports each
// frame's error in a *can.BatchError.
func TestSessionSendBatch(t *testing.T) {
	ctx := testCtx(t)
	drv, bus := newFake(can.Classical)
	b := New(drv)
	defer b.Close()
	g := allowAll("body", "can0")
	g.Send = Filters{mustFilter(t, "0x100-0x1FF")}
	tx := mustOpen(t, ctx, b, "app", g)
	plugin := bus.Open()
	defer plugin.Close()
	ps := mustReceive(t, ctx, plugin)
	frames := []can.Frame{marker(1), {ID: 0x321}, marker(2), {ID: 0x800}, marker(3)}
	err := can.SendBatch(ctx, tx, frames)
	var be *can.BatchError
	if !errors.As(err, &be) || len(be.Errs) != len(frames) || be.Failed() != 2 ||
		!errors.Is(be.Errs[1], ErrPermissionDenied) || !errors.Is(be.Errs[3], can.ErrInvalidID) {
		t.Fatalf("SendBatch: %v, want frames 1 and 3 refused", err)
	}
	got := collect(t, ps, 3)
	for i, f := range []can.Frame{marker(1), marker(2), marker(3)} {
		if got[i].String() != f.String() {
			t.Fatalf("plugin bus received %v, want markers 1, 2, 3", got)
		}
	}
	if err := can.SendBatch(ctx, tx, frames[:1]); err != nil {
		t.Errorf("SendBatch of one good frame: %v", err)
	}
	if st := b.Stats()[0].Sessions[0]; st.Sent != 4 || st.Refused != 2 {
		t.Errorf("stats %+v, want 4 sent, 2 refused", st)
	}
}

func mustFilter(t *testing.T, s string) Filter {
	t.Helper()
	f, err := ParseFilter(s)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// TestBatchPluginGone: many sessions sending at once when the plugin goes
// away all get ErrUnavailable, and the device is declared down once.
func TestBatchPluginGone(t *testing.T) {
	ctx := testCtx(t)
	drv, _ := newFake(can.Classical)
	fl := newFlaky(drv)
	var logs syncbuf.Buffer
	b := New(fl, WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	defer b.Close()
	var tx [8]can.Bus
	for i := range tx {
		tx[i] = mustOpen(t, ctx, b, "app", allowAll("all", "can0"))
	}
	fl.waitSubscribed(t)
	var (
		wg   sync.WaitGroup
		sent = make(chan struct{}, 1024)
	)
	for _, s := range tx {
		wg.Go(func() {
			for i := 0; ; i++ {
				err := s.Send(ctx, marker(i))
				if err == nil {
					select {
					case sent <- struct{}{}:
					default:
					}
					continue
				}
				if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), `grant "all"`) {
					t.Errorf("send while the plugin is gone: %v, want ErrUnavailable naming the grant", err)
				}
				return
			}
		})
	}
	for range 200 { // the plugin goes away with sends in flight
		<-sent
	}
	fl.fail()
	wg.Wait()
	if n := strings.Count(logs.String(), "device down"); n != 1 {
		t.Errorf("device declared down %d times, want once:\n%s", n, logs.String())
	}
}
