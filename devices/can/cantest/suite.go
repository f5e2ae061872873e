package cantest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/berth-io/berth/devices/can"
)

// Harness is what a CAN implementation hands the conformance suite.
type Harness struct {
	// Driver is the implementation under test.
	Driver can.Driver
	// Device is the ID of a bus the suite may open several times at once
	// and send on freely.
	Device string
	// ClassicalDevice, when Device runs CAN FD, names a classical bus so
	// the suite can check that FD frames are refused there; empty skips
	// that check.
	ClassicalDevice string
	// Inject, when set, puts frames on Device's bus from outside (another
	// node; the controller for error frames). Nil skips the tests that
	// need it, saying so.
	Inject func(ctx context.Context, frames ...can.Frame) error
	// SetState, when set, programs Device's controller state. Nil skips
	// the state-change tests.
	SetState func(ctx context.Context, s can.State) error
}

// Timeout bounds every wait in the suite.
const Timeout = 10 * time.Second

// Run runs the conformance suite as subtests of t named name/...: factory
// is called once per subtest and must return a fresh bus (or one with no
// traffic from other subtests) and clean up with t.Cleanup.
func Run(t *testing.T, name string, factory func(t *testing.T) Harness) {
	t.Run(name, func(t *testing.T) {
		for _, tc := range []struct {
			name string
			fn   func(t *testing.T, h Harness)
		}{
			{"UnknownDevice", testUnknownDevice},
			{"RoundTrip", testRoundTrip},
			{"OwnFramesNotReceived", testOwnFramesNotReceived},
			{"FrameKinds", testFrameKinds},
			{"OrderAndTimestamps", testOrderAndTimestamps},
			{"SeveralStreams", testSeveralStreams},
			{"InvalidFramesRefused", testInvalidFrames},
			{"ConcurrentSenders", testConcurrentSenders},
			{"ConcurrentPerFrameErrors", testConcurrentPerFrameErrors},
			{"SendBatch", testSendBatch},
			{"CancelledSend", testCancelledSend},
			{"ErrorFrames", testErrorFrames},
			{"CancelEndsStream", testCancel},
			{"Close", testClose},
			{"Counters", testCounters},
			{"State", testState},
		} {
			t.Run(tc.name, func(t *testing.T) { tc.fn(t, factory(t)) })
		}
	})
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	t.Cleanup(cancel)
	return ctx
}

func open(t *testing.T, ctx context.Context, h Harness, dev string) can.Bus {
	t.Helper()
	b, err := h.Driver.Open(ctx, dev)
	if err != nil {
		t.Fatalf("open %s: %v", dev, err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func receive(t *testing.T, ctx context.Context, b can.Bus) can.Stream {
	t.Helper()
	s, err := b.Receive(ctx)
	if err != nil {
		t.Fatalf("receive: %v", err)
	}
	return s
}

func send(t *testing.T, ctx context.Context, b can.Bus, frames ...can.Frame) {
	t.Helper()
	for _, f := range frames {
		if err := b.Send(ctx, f); err != nil {
			t.Fatalf("send %s: %v", f, err)
		}
	}
}

// collect reads exactly n frames or fails once ctx (bounded by Timeout)
// ends.
func collect(t *testing.T, s can.Stream, n int) []can.Frame {
	t.Helper()
	var got []can.Frame
	for len(got) < n {
		batch, err := s.Recv()
		if err != nil {
			t.Fatalf("recv after %d of %d frames: %v", len(got), n, err)
		}
		if len(batch) == 0 {
			t.Fatalf("recv returned an empty batch")
		}
		if len(batch) > can.MaxBatch {
			t.Fatalf("recv returned %d frames, more than MaxBatch %d", len(batch), can.MaxBatch)
		}
		got = append(got, batch...)
	}
	if len(got) > n {
		t.Fatalf("received %d frames, want %d: extra %v", len(got), n, got[n:])
	}
	return got
}

// sameFrame compares everything but the timestamp.
func sameFrame(a, b can.Frame) bool {
	return a.ID == b.ID && a.Extended == b.Extended && a.Remote == b.Remote &&
		a.Error == b.Error && a.FD == b.FD && a.BRS == b.BRS && a.ESI == b.ESI &&
		a.RemoteLen == b.RemoteLen && bytes.Equal(a.Data, b.Data)
}

func checkFrames(t *testing.T, got, want []can.Frame) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d frames, want %d", len(got), len(want))
	}
	for i := range want {
		if !sameFrame(got[i], want[i]) {
			t.Errorf("frame %d: got %s %+v, want %s %+v", i, got[i], got[i], want[i], want[i])
		}
		if got[i].Timestamp.IsZero() {
			t.Errorf("frame %d (%s): zero receive timestamp", i, got[i])
		}
	}
}

func marker(i int) can.Frame {
	return can.Frame{ID: 0x7FF, Data: []byte{byte(i >> 8), byte(i)}}
}

func testUnknownDevice(t *testing.T, h Harness) {
	ctx := testCtx(t)
	b, err := h.Driver.Open(ctx, "no-such-device-"+h.Device)
	if err == nil {
		_ = b.Close()
		t.Fatal("open of an unknown device succeeded")
	}
	if !errors.Is(err, can.ErrUnknownDevice) {
		t.Fatalf("open unknown device: %v, want ErrUnknownDevice", err)
	}
}

func testRoundTrip(t *testing.T, h Harness) {
	ctx := testCtx(t)
	a, b := open(t, ctx, h, h.Device), open(t, ctx, h, h.Device)
	if a.Mode() != b.Mode() {
		t.Fatalf("two handles on one bus disagree on mode: %v and %v", a.Mode(), b.Mode())
	}
	sb := receive(t, ctx, b)
	f := can.Frame{ID: 0x123, Data: []byte{0xDE, 0xAD, 0xBE, 0xEF}}
	before := time.Now()
	send(t, ctx, a, f)
	got := collect(t, sb, 1)
	checkFrames(t, got, []can.Frame{f})
	if ts := got[0].Timestamp; ts.Before(before.Add(-time.Minute)) || ts.After(time.Now().Add(time.Minute)) {
		t.Errorf("receive timestamp %v is not near the send time %v", ts, before)
	}
	// And the other way.
	sa := receive(t, ctx, a)
	g := can.Frame{ID: 0x1ABCDE, Extended: true, Data: []byte{1}}
	send(t, ctx, b, g)
	checkFrames(t, collect(t, sa, 1), []can.Frame{g})
}

func testOwnFramesNotReceived(t *testing.T, h Harness) {
	ctx := testCtx(t)
	a, b := open(t, ctx, h, h.Device), open(t, ctx, h, h.Device)
	sa := receive(t, ctx, a)
	send(t, ctx, a, can.Frame{ID: 0x100, Data: []byte{1}})
	send(t, ctx, b, marker(1))
	// a sees b's marker and nothing of its own before it.
	checkFrames(t, collect(t, sa, 1), []can.Frame{marker(1)})
}

func frameKinds(m can.Mode) []can.Frame {
	frames := []can.Frame{
		{ID: 0x000},
		{ID: 0x7FF, Data: []byte{1, 2, 3, 4, 5, 6, 7, 8}},
		{ID: 0x1FFFFFFF, Extended: true, Data: []byte{0xAA}},
		{ID: 0x5, Extended: true}, // a small ID in the extended format stays extended
		{ID: 0x321, Remote: true, RemoteLen: 4},
		{ID: 0x1234567, Extended: true, Remote: true},
	}
	for n := 0; n <= 8; n++ {
		frames = append(frames, can.Frame{ID: 0x200 + uint32(n), Data: bytes.Repeat([]byte{byte(n)}, n)})
	}
	if m == can.FD {
		for _, n := range []int{0, 8, 12, 16, 20, 24, 32, 48, 64} {
			frames = append(frames,
				can.Frame{ID: 0x300 + uint32(n), FD: true, Data: bytes.Repeat([]byte{byte(n)}, n)},
				can.Frame{ID: 0x1300000 + uint32(n), Extended: true, FD: true, BRS: true, Data: bytes.Repeat([]byte{0x5A}, n)},
			)
		}
		frames = append(frames, can.Frame{ID: 0x301, FD: true, BRS: true, ESI: true, Data: []byte{9}})
	}
	return frames
}

func testFrameKinds(t *testing.T, h Harness) {
	ctx := testCtx(t)
	a, b := open(t, ctx, h, h.Device), open(t, ctx, h, h.Device)
	sb := receive(t, ctx, b)
	want := frameKinds(a.Mode())
	send(t, ctx, a, want...)
	checkFrames(t, collect(t, sb, len(want)), want)
	if a.Mode() != can.FD {
		t.Logf("%s is a classical bus: CAN FD frames not exercised", h.Device)
	}
}

func testOrderAndTimestamps(t *testing.T, h Harness) {
	ctx := testCtx(t)
	a, b := open(t, ctx, h, h.Device), open(t, ctx, h, h.Device)
	sb := receive(t, ctx, b)
	const n = 2000
	want := make([]can.Frame, n)
	for i := range want {
		want[i] = marker(i)
	}
	done := make(chan error, 1)
	go func() {
		for _, f := range want {
			if err := a.Send(ctx, f); err != nil {
				done <- fmt.Errorf("send %s: %w", f, err)
				return
			}
		}
		done <- nil
	}()
	got := collect(t, sb, n)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	checkFrames(t, got, want)
	for i := 1; i < len(got); i++ {
		if got[i].Timestamp.Before(got[i-1].Timestamp) {
			t.Fatalf("timestamps go back: frame %d at %v, frame %d at %v",
				i-1, got[i-1].Timestamp.UnixNano(), i, got[i].Timestamp.UnixNano())
		}
	}
}

func testSeveralStreams(t *testing.T, h Harness) {
	ctx := testCtx(t)
	a, b := open(t, ctx, h, h.Device), open(t, ctx, h, h.Device)
	s1, s2 := receive(t, ctx, b), receive(t, ctx, b)
	want := []can.Frame{marker(1), marker(2), marker(3)}
	send(t, ctx, a, want...)
	g1, g2 := collect(t, s1, 3), collect(t, s2, 3)
	checkFrames(t, g1, want)
	checkFrames(t, g2, want)
	for i := range g1 {
		if !g1[i].Timestamp.Equal(g2[i].Timestamp) {
			t.Errorf("frame %d: streams disagree on its timestamp: %v and %v", i, g1[i].Timestamp, g2[i].Timestamp)
		}
	}
}

func testInvalidFrames(t *testing.T, h Harness) {
	ctx := testCtx(t)
	a, b := open(t, ctx, h, h.Device), open(t, ctx, h, h.Device)
	sb := receive(t, ctx, b)
	cases := []struct {
		name string
		f    can.Frame
		want error
	}{
		{"29-bit id without extended flag", can.Frame{ID: 0x800}, can.ErrInvalidID},
		{"id beyond 29 bits", can.Frame{ID: 0x20000000, Extended: true}, can.ErrInvalidID},
		{"9 bytes classic", can.Frame{ID: 1, Data: make([]byte, 9)}, can.ErrInvalidLength},
		{"remote length 9", can.Frame{ID: 1, Remote: true, RemoteLen: 9}, can.ErrInvalidLength},
		{"remote with data", can.Frame{ID: 1, Remote: true, Data: []byte{1}}, can.ErrInvalidFlags},
		{"BRS without FD", can.Frame{ID: 1, BRS: true}, can.ErrInvalidFlags},
		{"error frame sent", can.Frame{ID: 4, Error: true, Data: make([]byte, 8)}, can.ErrInvalidFlags},
		{"FD remote", can.Frame{ID: 1, FD: true, Remote: true}, can.ErrInvalidFlags},
		{"FD 13 bytes", can.Frame{ID: 1, FD: true, Data: make([]byte, 13)}, can.ErrInvalidLength},
		{"FD 65 bytes", can.Frame{ID: 1, FD: true, Data: make([]byte, 65)}, can.ErrInvalidLength},
	}
	if a.Mode() == can.Classical {
		cases = append(cases, struct {
			name string
			f    can.Frame
			want error
		}{"FD on classical bus", can.Frame{ID: 1, FD: true, Data: []byte{1}}, can.ErrFDOnClassicalBus})
	}
	for _, c := range cases {
		err := a.Send(ctx, c.f)
		if !errors.Is(err, c.want) || !errors.Is(err, can.ErrInvalidFrame) {
			t.Errorf("%s: send %s: %v, want %v (an ErrInvalidFrame)", c.name, c.f, err, c.want)
		}
	}
	if a.Mode() == can.FD && h.ClassicalDevice != "" {
		c := open(t, ctx, h, h.ClassicalDevice)
		if err := c.Send(ctx, can.Frame{ID: 1, FD: true, Data: []byte{1}}); !errors.Is(err, can.ErrFDOnClassicalBus) {
			t.Errorf("FD frame on classical bus %s: %v, want ErrFDOnClassicalBus", h.ClassicalDevice, err)
		}
	}
	// Nothing refused reached the bus.
	send(t, ctx, a, marker(7))
	checkFrames(t, collect(t, sb, 1), []can.Frame{marker(7)})
	c, err := a.Counters(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if c.TxFrames != 1 {
		t.Errorf("tx frames %d after refused sends and one good one, want 1", c.TxFrames)
	}
}

func testErrorFrames(t *testing.T, h Harness) {
	if h.Inject == nil {
		t.Skip("harness cannot inject frames from outside: error frames not exercised")
	}
	ctx := testCtx(t)
	b := open(t, ctx, h, h.Device)
	sb := receive(t, ctx, b)
	errFrame := can.Frame{ID: 0x40, Error: true, Data: []byte{0, 0, 0, 0, 0, 0, 0, 0}} // CAN_ERR_BUSOFF
	remote := can.Frame{ID: 0x18DA00F1, Extended: true, Remote: true, RemoteLen: 8}
	if err := h.Inject(ctx, errFrame, remote); err != nil {
		t.Fatalf("inject: %v", err)
	}
	checkFrames(t, collect(t, sb, 2), []can.Frame{errFrame, remote})
	c, err := b.Counters(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if c.Errors != 1 || c.RxFrames != 2 {
		t.Errorf("counters after one error frame and one remote frame: %+v, want Errors 1, RxFrames 2", c)
	}
}

func testCancel(t *testing.T, h Harness) {
	ctx := testCtx(t)
	b := open(t, ctx, h, h.Device)
	sctx, cancel := context.WithCancel(ctx)
	s := receive(t, sctx, b)
	errc := make(chan error, 1)
	go func() {
		_, err := s.Recv()
		errc <- err
	}()
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("recv after cancel: %v, want context.Canceled", err)
		}
	case <-time.After(Timeout):
		t.Fatal("recv did not return after its ctx was cancelled")
	}
	// A stream started on a cancelled ctx ends at once, the same way.
	if s2, err := b.Receive(sctx); err == nil {
		if _, err = s2.Recv(); !errors.Is(err, context.Canceled) {
			t.Fatalf("recv on a cancelled ctx: %v, want context.Canceled", err)
		}
	} else if !errors.Is(err, context.Canceled) {
		t.Fatalf("receive on a cancelled ctx: %v, want context.Canceled", err)
	}
	// The handle still works.
	a := open(t, ctx, h, h.Device)
	s3 := receive(t, ctx, b)
	send(t, ctx, a, marker(3))
	checkFrames(t, collect(t, s3, 1), []can.Frame{marker(3)})
}

func testClose(t *testing.T, h Harness) {
	ctx := testCtx(t)
	a, b := open(t, ctx, h, h.Device), open(t, ctx, h, h.Device)
	sb := receive(t, ctx, b)
	errc := make(chan error, 1)
	go func() {
		for {
			if _, err := sb.Recv(); err != nil {
				errc <- err
				return
			}
		}
	}()
	if err := b.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	select {
	case err := <-errc:
		if !errors.Is(err, can.ErrClosed) {
			t.Fatalf("recv after close: %v, want ErrClosed", err)
		}
	case <-time.After(Timeout):
		t.Fatal("stream did not end after its bus handle was closed")
	}
	if err := b.Close(); err != nil {
		t.Errorf("second close: %v, want nil", err)
	}
	if err := b.Send(ctx, marker(1)); !errors.Is(err, can.ErrClosed) {
		t.Errorf("send after close: %v, want ErrClosed", err)
	}
	if _, err := b.Receive(ctx); !errors.Is(err, can.ErrClosed) {
		t.Errorf("receive after close: %v, want ErrClosed", err)
	}
	if _, err := b.State(ctx); !errors.Is(err, can.ErrClosed) {
		t.Errorf("state after close: %v, want ErrClosed", err)
	}
	if _, err := b.Counters(ctx); !errors.Is(err, can.ErrClosed) {
		t.Errorf("counters after close: %v, want ErrClosed", err)
	}
	// Closing one handle leaves the bus and other handles working.
	c := open(t, ctx, h, h.Device)
	sc := receive(t, ctx, c)
	send(t, ctx, a, marker(2))
	checkFrames(t, collect(t, sc, 1), []can.Frame{marker(2)})
}

func testCounters(t *testing.T, h Harness) {
	ctx := testCtx(t)
	a, b := open(t, ctx, h, h.Device), open(t, ctx, h, h.Device)
	sb := receive(t, ctx, b)
	const n = 25
	for i := 0; i < n; i++ {
		send(t, ctx, a, marker(i))
	}
	collect(t, sb, n)
	ca, err := a.Counters(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cb, err := b.Counters(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ca.TxFrames != n || ca.RxFrames != 0 {
		t.Errorf("sender counters %+v, want TxFrames %d RxFrames 0", ca, n)
	}
	if cb.RxFrames != n || cb.TxFrames != 0 || cb.Drops != 0 || cb.Errors != 0 {
		t.Errorf("receiver counters %+v, want RxFrames %d and nothing else", cb, n)
	}
}

func testState(t *testing.T, h Harness) {
	ctx := testCtx(t)
	a := open(t, ctx, h, h.Device)
	st, err := a.State(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st != can.StateErrorActive {
		t.Fatalf("state of an idle bus: %v, want error-active", st)
	}
	if h.SetState == nil {
		t.Skip("harness cannot program the bus state: state changes not exercised")
	}
	for _, c := range []struct {
		state   can.State
		sendErr error
	}{
		{can.StateErrorPassive, nil},
		{can.StateBusOff, can.ErrBusOff},
		{can.StateStopped, can.ErrBusStopped},
		{can.StateErrorActive, nil},
	} {
		if err := h.SetState(ctx, c.state); err != nil {
			t.Fatalf("set state %v: %v", c.state, err)
		}
		st, err := a.State(ctx)
		if err != nil || st != c.state {
			t.Errorf("state: %v, %v; want %v", st, err, c.state)
		}
		err = a.Send(ctx, marker(1))
		if c.sendErr == nil && err != nil || c.sendErr != nil && !errors.Is(err, c.sendErr) {
			t.Errorf("send in state %v: %v, want %v", c.state, err, c.sendErr)
		}
	}
}

// seqFrame is frame i of sender k: the sender in the ID, i in the data.
func seqFrame(k, i int) can.Frame {
	return can.Frame{ID: 0x100 + uint32(k), Data: []byte{byte(i >> 8), byte(i)}}
}

// checkSenders checks that got holds, for each sender k, exactly the
// frames want[k], in that order (frames of different senders interleave
// freely).
func checkSenders(t *testing.T, got []can.Frame, want [][]can.Frame) {
	t.Helper()
	next := make([]int, len(want))
	for n, f := range got {
		k := int(f.ID) - 0x100
		if k < 0 || k >= len(want) {
			t.Fatalf("frame %d: %s is from no sender", n, f)
		}
		if next[k] >= len(want[k]) {
			t.Fatalf("frame %d: %s: sender %d sent only %d frames", n, f, k, len(want[k]))
		}
		if w := want[k][next[k]]; !sameFrame(f, w) {
			t.Fatalf("frame %d: %s, want sender %d's frame %d %s: out of order, lost or changed", n, f, k, next[k], w)
		}
		next[k]++
	}
	for k := range want {
		if next[k] != len(want[k]) {
			t.Errorf("sender %d: received %d of its %d frames", k, next[k], len(want[k]))
		}
	}
}

// testConcurrentSenders: several goroutines sending at once on one handle
// and on a second handle each see their frames on the bus in the order
// they sent them, none lost or duplicated.
func testConcurrentSenders(t *testing.T, h Harness) {
	ctx := testCtx(t)
	a, b, c := open(t, ctx, h, h.Device), open(t, ctx, h, h.Device), open(t, ctx, h, h.Device)
	sb := receive(t, ctx, b)
	const senders, n = 6, 300
	want := make([][]can.Frame, senders)
	errc := make(chan error, senders)
	for k := range senders {
		bus := a
		if k%3 == 2 {
			bus = c
		}
		for i := range n {
			want[k] = append(want[k], seqFrame(k, i))
		}
		go func() {
			for _, f := range want[k] {
				if err := bus.Send(ctx, f); err != nil {
					errc <- fmt.Errorf("sender %d: send %s: %w", k, f, err)
					return
				}
			}
			errc <- nil
		}()
	}
	got := collect(t, sb, senders*n)
	for range senders {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	checkSenders(t, got, want)
}

// testConcurrentPerFrameErrors: among concurrent senders on one handle,
// each refused frame fails exactly its own Send, with its own sentinel,
// and the good frames around it still go out, in order.
func testConcurrentPerFrameErrors(t *testing.T, h Harness) {
	ctx := testCtx(t)
	a, b := open(t, ctx, h, h.Device), open(t, ctx, h, h.Device)
	sb := receive(t, ctx, b)
	const senders, n = 4, 150
	bad := []struct {
		f    can.Frame
		want error
	}{
		{can.Frame{ID: 0x800}, can.ErrInvalidID},
		{can.Frame{ID: 1, Data: make([]byte, 9)}, can.ErrInvalidLength},
		{can.Frame{ID: 1, BRS: true}, can.ErrInvalidFlags},
	}
	want := make([][]can.Frame, senders)
	errc := make(chan error, senders)
	var wg sync.WaitGroup
	for k := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range n {
				if i%5 == k%5 {
					x := bad[(i+k)%len(bad)]
					if err := a.Send(ctx, x.f); !errors.Is(err, x.want) {
						errc <- fmt.Errorf("sender %d: send %s: %v, want %v", k, x.f, err, x.want)
						return
					}
					continue
				}
				f := seqFrame(k, i)
				if err := a.Send(ctx, f); err != nil {
					errc <- fmt.Errorf("sender %d: send %s: %w", k, f, err)
					return
				}
				want[k] = append(want[k], f)
			}
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	total := 0
	for _, w := range want {
		total += len(w)
	}
	checkSenders(t, collect(t, sb, total), want)
	c, err := a.Counters(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if c.TxFrames != uint64(total) {
		t.Errorf("tx frames %d, want the %d good ones", c.TxFrames, total)
	}
}

// testSendBatch: can.SendBatch (the bus's own or the Send-per-frame
// fallback) sends in order, refuses exactly the malformed frames with
// their sentinels, and handles batches larger than can.MaxBatch.
func testSendBatch(t *testing.T, h Harness) {
	ctx := testCtx(t)
	a, b := open(t, ctx, h, h.Device), open(t, ctx, h, h.Device)
	sb := receive(t, ctx, b)
	if _, ok := a.(can.BatchSender); !ok {
		t.Logf("%T has no SendBatch: checking the Send-per-frame fallback", a)
	}
	if err := can.SendBatch(ctx, a, nil); err != nil {
		t.Fatalf("empty batch: %v", err)
	}
	n := 2*can.MaxBatch + 7
	var batch, good []can.Frame
	wantErr := map[int]error{}
	for i := range n {
		switch i % 97 {
		case 13:
			wantErr[len(batch)] = can.ErrInvalidID
			batch = append(batch, can.Frame{ID: 0x800})
		case 50:
			wantErr[len(batch)] = can.ErrInvalidLength
			batch = append(batch, can.Frame{ID: 2, Data: make([]byte, 9)})
		default:
			f := seqFrame(0, i)
			batch, good = append(batch, f), append(good, f)
		}
	}
	err := can.SendBatch(ctx, a, batch)
	var be *can.BatchError
	if !errors.As(err, &be) {
		t.Fatalf("batch with %d malformed frames: %v, want a *can.BatchError", len(wantErr), err)
	}
	if len(be.Errs) != len(batch) || be.Failed() != len(wantErr) {
		t.Fatalf("batch error has %d entries, %d failed; want %d and %d: %v", len(be.Errs), be.Failed(), len(batch), len(wantErr), err)
	}
	for i, err := range can.FrameErrors(err, len(batch)) {
		if w := wantErr[i]; w == nil && err != nil || w != nil && !errors.Is(err, w) {
			t.Errorf("frame %d (%s): %v, want %v", i, batch[i], err, w)
		}
	}
	if !errors.Is(err, can.ErrInvalidID) || !errors.Is(err, can.ErrInvalidLength) {
		t.Errorf("batch error %v does not wrap its frames' sentinels", err)
	}
	checkSenders(t, collect(t, sb, len(good)), [][]can.Frame{good})
	more := []can.Frame{marker(1), marker(2)}
	if err := can.SendBatch(ctx, a, more); err != nil {
		t.Fatalf("good batch: %v", err)
	}
	checkFrames(t, collect(t, sb, 2), more)
}

// testCancelledSend: Sends whose ctx ends, alone or among concurrent
// senders, leave the handle working: the frames sent after them arrive,
// in order.
func testCancelledSend(t *testing.T, h Harness) {
	ctx := testCtx(t)
	a, b := open(t, ctx, h, h.Device), open(t, ctx, h, h.Device)
	sb := receive(t, ctx, b)
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := a.Send(cctx, marker(0)); err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("send on a cancelled ctx: %v, want nil or context.Canceled", err)
	}
	// Senders whose ctx ends while others send; whatever they got onto
	// the bus is in order and complete.
	const n = 200
	errc := make(chan error, 2)
	var sent [2][]can.Frame
	for k := range 2 {
		go func() {
			sctx, cancel := context.WithCancel(ctx)
			defer cancel()
			for i := range n {
				if k == 1 && i == n/2 {
					cancel()
				}
				f := seqFrame(k, i)
				err := a.Send(sctx, f)
				switch {
				case err == nil:
					sent[k] = append(sent[k], f)
				case k == 1 && errors.Is(err, context.Canceled):
				default:
					errc <- fmt.Errorf("sender %d: send %s: %w", k, f, err)
					return
				}
			}
			errc <- nil
		}()
	}
	for range 2 {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	send(t, ctx, a, marker(9))
	// Read up to the marker: a cancelled Send's frame may or may not
	// have gone out, so it is left out of the comparison.
	var got []can.Frame
	for len(got) == 0 || !sameFrame(got[len(got)-1], marker(9)) {
		batch, err := sb.Recv()
		if err != nil {
			t.Fatalf("recv after %d frames, before the marker: %v", len(got), err)
		}
		got = append(got, batch...)
	}
	got = got[:len(got)-1]
	var kept []can.Frame
	for _, f := range got {
		if sameFrame(f, marker(0)) {
			continue
		}
		if f.ID == 0x101 && (int(f.Data[0])<<8|int(f.Data[1])) >= len(sent[1]) {
			continue
		}
		kept = append(kept, f)
	}
	checkSenders(t, kept, sent[:])
}
