package broker

import (
	"errors"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/berth-io/berth/devices/can"
	"github.com/berth-io/berth/devices/can/cantest"
	"github.com/berth-io/berth/devices/can/canwire"
)

func newFake(mode can.Mode) (*cantest.Driver, *cantest.Bus) {
	drv := cantest.NewDriver()
	return drv, drv.Add("can0", cantest.NewBus(mode))
}

// oracle is the receive rule written out independently of Filter.Match:
// no error frames and no FD frames (the grant has neither), IDs by filter.
func oracle(fs Filters, f can.Frame) bool {
	if f.Error || f.FD {
		return false
	}
	for _, x := range fs {
		switch x.Kind {
		case KindAny:
			return true
		case KindRange:
			if x.Extended == f.Extended && f.ID >= x.Lo && f.ID <= x.Hi {
				return true
			}
		case KindMask:
			if x.Extended == f.Extended && (f.ID^x.ID)&x.Mask == 0 {
				return true
			}
		}
	}
	return false
}

func randomFilter(r *rand.Rand) Filter {
	ext := r.IntN(2) == 0
	limit := uint32(can.MaxID)
	if ext {
		limit = can.MaxExtendedID
	}
	switch r.IntN(3) {
	case 0:
		return Single(r.Uint32N(limit+1), ext)
	case 1:
		lo := r.Uint32N(limit + 1)
		return Range(lo, lo+r.Uint32N(min(limit-lo, 0x200)+1), ext)
	}
	mask := r.Uint32N(limit+1) | r.Uint32N(limit+1) // mostly many bits set
	return Mask(r.Uint32N(limit+1)&mask, mask, ext)
}

// randomFrame returns a frame whose ID is near a filter's IDs half the
// time, uniform otherwise; some are FD, remote or error frames.
func randomFrame(r *rand.Rand, fs Filters) can.Frame {
	var f can.Frame
	if r.IntN(2) == 0 {
		x := fs[r.IntN(len(fs))]
		f.Extended = x.Extended
		switch x.Kind {
		case KindRange:
			f.ID = x.Lo + r.Uint32N(x.Hi-x.Lo+3) - 1 // one either side too
		case KindMask:
			f.ID = x.ID ^ (r.Uint32N(8) << r.IntN(11)) // flip a few bits, maybe under the mask
		}
	} else {
		f.Extended = r.IntN(2) == 0
		f.ID = r.Uint32N(can.MaxID + 1)
		if f.Extended {
			f.ID = r.Uint32N(can.MaxExtendedID + 1)
		}
	}
	limit := uint32(can.MaxID)
	if f.Extended {
		limit = can.MaxExtendedID
	}
	f.ID &= limit
	if f.ID == 0x7FF && !f.Extended {
		f.ID = 0x7FE // 0x7FF is the end marker
	}
	switch r.IntN(20) {
	case 0:
		f.FD, f.Data = true, make([]byte, 12)
	case 1:
		f.Error, f.Data = true, make([]byte, 8)
	case 2:
		f.Remote, f.RemoteLen = true, 8
	default:
		f.Data = []byte{byte(r.IntN(256))}
	}
	return f
}

// TestReceiveFilterProperty: over random filters and random frames, from
// the plugin and from another session, a session receives exactly the
// frames its grant selects, in order, and never one outside it.
func TestReceiveFilterProperty(t *testing.T) {
	ctx := testCtx(t)
	drv, bus := newFake(can.FD)
	b := New(drv)
	defer b.Close()
	sender := mustOpen(t, ctx, b, "sender", allowAll("all", "can0"))
	r := rand.New(rand.NewPCG(1, 2))
	end := can.Frame{ID: 0x7FF, Data: []byte{0xEE}}
	for round := range 40 {
		var fs Filters
		for range 1 + r.IntN(4) {
			fs = append(fs, randomFilter(r))
		}
		g := Grant{Name: "g", Device: "can0", Receive: append(fs, Single(0x7FF, false))}
		s, err := b.Open(ctx, "app", g)
		if err != nil {
			t.Fatal(err)
		}
		st := mustReceive(t, ctx, s)
		frames := make([]can.Frame, 300)
		var want []can.Frame
		for i := range frames {
			frames[i] = randomFrame(r, fs)
			if oracle(fs, frames[i]) {
				want = append(want, frames[i])
			}
		}
		// From the plugin.
		bus.Inject(frames...)
		bus.Inject(end)
		checkSame(t, round, "injected", fs, until(t, st, end), want)
		// From another session (error frames cannot be sent).
		want = want[:0]
		for _, f := range frames {
			if f.Error {
				continue
			}
			if err := sender.Send(ctx, f); err != nil {
				t.Fatalf("send %s: %v", f, err)
			}
			if oracle(fs, f) {
				want = append(want, f)
			}
		}
		if err := sender.Send(ctx, end); err != nil {
			t.Fatal(err)
		}
		checkSame(t, round, "sent", fs, until(t, st, end), want)
		_ = s.Close()
	}
}

func checkSame(t *testing.T, round int, how string, fs Filters, got, want []can.Frame) {
	t.Helper()
	for _, f := range got {
		if !oracle(fs, f) {
			t.Fatalf("round %d (%s): frame %s outside the filter %s delivered", round, how, f, fs)
		}
	}
	if len(got) != len(want) {
		t.Fatalf("round %d (%s): filter %s: got %d frames, want %d", round, how, fs, len(got), len(want))
	}
	for i := range want {
		if got[i].String() != want[i].String() || got[i].Extended != want[i].Extended {
			t.Fatalf("round %d (%s): frame %d is %s, want %s", round, how, i, got[i], want[i])
		}
	}
}

func TestSendRefused(t *testing.T) {
	ctx := testCtx(t)
	drv, bus := newFake(can.FD)
	b := New(drv)
	defer b.Close()
	g := Grant{Name: "body", Device: "can0", Send: Filters{Range(0x100, 0x1FF, false)}}
	s := mustOpen(t, ctx, b, "app", g)
	wire := bus.Open() // another node, to see what reaches the bus
	defer wire.Close()
	ws := mustReceive(t, ctx, wire)

	for _, c := range []struct {
		name string
		f    can.Frame
		want []error
		text string
	}{
		{"id outside the send list", can.Frame{ID: 0x321},
			[]error{ErrPermissionDenied, canwire.ErrPermissionDenied},
			`container app: grant "body" does not allow sending 0x321: its send list is 0x100-0x1FF`},
		{"extended id with an allowed value", can.Frame{ID: 0x150, Extended: true},
			[]error{ErrPermissionDenied},
			`container app: grant "body" does not allow sending 0x150x: its send list is 0x100-0x1FF`},
		{"29-bit id without the extended flag", can.Frame{ID: 0x18DAF100},
			[]error{can.ErrInvalidID, can.ErrInvalidFrame}, `grant "body"`},
		{"9 data bytes", can.Frame{ID: 0x100, Data: make([]byte, 9)},
			[]error{can.ErrInvalidLength, can.ErrInvalidFrame}, `grant "body"`},
		{"error frame", can.Frame{ID: 0x100, Error: true},
			[]error{can.ErrInvalidFlags}, `grant "body"`},
		{"FD frame from a grant without fd", can.Frame{ID: 0x100, FD: true, Data: []byte{1}},
			[]error{can.ErrFDOnClassicalBus, can.ErrInvalidFrame},
			`container app: grant "body" does not allow CAN FD frames (sending 100##001): add fd = true to it`},
	} {
		err := s.Send(ctx, c.f)
		for _, w := range c.want {
			if !errors.Is(err, w) {
				t.Errorf("%s: send %s: %v, want it to wrap %v", c.name, c.f, err, w)
			}
		}
		if err != nil && !strings.Contains(err.Error(), c.text) {
			t.Errorf("%s: error %q, want it to contain %q", c.name, err, c.text)
		}
	}
	// Nothing refused reached the bus; an allowed frame does.
	ok := can.Frame{ID: 0x1FF, Data: []byte{7}}
	if err := s.Send(ctx, ok); err != nil {
		t.Fatal(err)
	}
	if got := collect(t, ws, 1); got[0].String() != ok.String() {
		t.Errorf("the bus got %s first, want %s", got[0], ok)
	}
	st := b.Stats()
	if len(st) != 1 || len(st[0].Sessions) != 1 {
		t.Fatalf("stats %+v, want one device with one session", st)
	}
	if ss := st[0].Sessions[0]; ss.Refused != 6 || ss.Sent != 1 || ss.Container != "app" || ss.Grant != "body" {
		t.Errorf("session stats %+v, want 6 refused, 1 sent", ss)
	}
	// A classical bus refuses FD with the can package's own error.
	drv.Add("can1", cantest.NewBus(can.Classical))
	fdGrant := allowAll("fd", "can1")
	c := mustOpen(t, ctx, b, "app", fdGrant)
	if c.Mode() != can.Classical {
		t.Errorf("a session on a classical bus runs %v", c.Mode())
	}
	if err := c.Send(ctx, can.Frame{ID: 1, FD: true}); !errors.Is(err, can.ErrFDOnClassicalBus) {
		t.Errorf("FD on a classical bus: %v, want ErrFDOnClassicalBus", err)
	}
}

// TestSlowReader: a reader that never reads loses the frames beyond its
// depth, and only it; a reader that keeps up gets every frame in order;
// the plugin stream is never held up.
func TestSlowReader(t *testing.T) {
	ctx := testCtx(t)
	drv, bus := newFake(can.Classical)
	const depth, n, batch = 64, 2000, 50
	b := New(drv, WithDepth(depth))
	defer b.Close()
	fast := mustOpen(t, ctx, b, "fast", allowAll("all", "can0"))
	slow := mustOpen(t, ctx, b, "slow", allowAll("all", "can0"))
	fs, ss := mustReceive(t, ctx, fast), mustReceive(t, ctx, slow)
	var got []can.Frame
	for i := 0; i < n; i += batch {
		frames := make([]can.Frame, batch)
		for j := range frames {
			frames[j] = marker(i + j)
		}
		bus.Inject(frames...)
		got = append(got, collect(t, fs, batch)...)
	}
	for i, f := range got {
		if f.String() != marker(i).String() {
			t.Fatalf("fast reader: frame %d is %s, want %s", i, f, marker(i))
		}
	}
	// The slow reader's stream kept the first depth frames.
	kept := collect(t, ss, depth)
	for i, f := range kept {
		if f.String() != marker(i).String() {
			t.Fatalf("slow reader: frame %d is %s, want %s", i, f, marker(i))
		}
	}
	fc, _ := fast.Counters(ctx)
	sc, _ := slow.Counters(ctx)
	if fc.RxFrames != n || fc.Drops != 0 {
		t.Errorf("fast reader counters %+v, want %d received and no drops", fc, n)
	}
	if sc.RxFrames != n || sc.Drops != n-depth {
		t.Errorf("slow reader counters %+v, want %d received and %d dropped", sc, n, n-depth)
	}
	st := b.Stats()[0]
	if st.FramesIn != n || !st.Available || len(st.Sessions) != 2 {
		t.Fatalf("device stats %+v", st)
	}
	if f, s := st.Sessions[0], st.Sessions[1]; f.Container != "fast" || f.Delivered != n || f.Dropped != 0 ||
		s.Container != "slow" || s.Delivered != depth || s.Dropped != n-depth {
		t.Errorf("session stats %+v, %+v", f, s)
	}
}

// TestCloseSession: closing a session ends only its streams; the last
// session on a device closes the plugin bus; Close of the broker ends all.
func TestCloseSession(t *testing.T) {
	ctx := testCtx(t)
	drv, bus := newFake(can.Classical)
	b := New(drv)
	a := mustOpen(t, ctx, b, "a", allowAll("all", "can0"))
	c := mustOpen(t, ctx, b, "c", allowAll("all", "can0"))
	if bus.Handles() != 1 {
		t.Fatalf("%d plugin handles for two sessions, want 1", bus.Handles())
	}
	as, cs := mustReceive(t, ctx, a), mustReceive(t, ctx, c)
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := as.Recv(); !errors.Is(err, can.ErrClosed) {
		t.Errorf("closed session's stream: %v, want ErrClosed", err)
	}
	bus.Inject(marker(1))
	if got := collect(t, cs, 1); got[0].String() != marker(1).String() {
		t.Errorf("other session got %s", got[0])
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if bus.Handles() != 0 {
		t.Errorf("%d plugin handles after the last session closed, want 0", bus.Handles())
	}
	if len(b.Stats()) != 0 {
		t.Errorf("stats after every session closed: %+v", b.Stats())
	}
	// A device is reopened for a new session; Close ends it.
	d := mustOpen(t, ctx, b, "d", allowAll("all", "can0"))
	ds := mustReceive(t, ctx, d)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := ds.Recv(); !errors.Is(err, can.ErrClosed) {
		t.Errorf("stream after broker Close: %v, want ErrClosed", err)
	}
	if bus.Handles() != 0 {
		t.Errorf("%d plugin handles after Close", bus.Handles())
	}
	if _, err := b.Open(ctx, "e", allowAll("all", "can0")); !errors.Is(err, can.ErrClosed) {
		t.Errorf("open after Close: %v, want ErrClosed", err)
	}
	if err := b.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestOpenErrors(t *testing.T) {
	ctx := testCtx(t)
	drv, _ := newFake(can.Classical)
	b := New(drv)
	defer b.Close()
	if _, err := b.Open(ctx, "app", allowAll("x", "nope")); !errors.Is(err, can.ErrUnknownDevice) {
		t.Errorf("unknown device: %v", err)
	}
	if _, err := b.Open(ctx, "app", Grant{Name: "x"}); !errors.Is(err, ErrInvalidGrant) {
		t.Errorf("grant without a device: %v", err)
	}
	if _, err := b.Open(ctx, "", allowAll("x", "can0")); !errors.Is(err, ErrInvalidGrant) {
		t.Errorf("no container: %v", err)
	}
}
