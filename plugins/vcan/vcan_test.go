package vcan

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/berth-io/berth/devices"
	"github.com/berth-io/berth/devices/can"
	"github.com/berth-io/berth/devices/can/cantest"
)

var socketSeq atomic.Int64

// testSocket returns an abstract socket no other test uses.
func testSocket() string {
	return fmt.Sprintf("@berth-vcan-test-%d-%d", os.Getpid(), socketSeq.Add(1))
}

func config(socket string, buses map[string]bool) cty.Value {
	m := map[string]cty.Value{}
	for name, fd := range buses {
		m[name] = cty.ObjectVal(map[string]cty.Value{"fd": cty.BoolVal(fd)})
	}
	return cty.ObjectVal(map[string]cty.Value{"socket": cty.StringVal(socket), "buses": cty.MapVal(m)})
}

func newPlugin(t *testing.T, socket string, buses map[string]bool) *Plugin {
	t.Helper()
	p := New(nil)
	t.Cleanup(func() { p.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Configure(ctx, config(socket, buses)); err != nil {
		t.Fatalf("configure: %v", err)
	}
	return p
}

// inject puts frames on bus as another node would, straight through the
// hub protocol: the way to put error frames on a virtual bus.
func inject(socket, bus string, mode can.Mode) func(ctx context.Context, frames ...can.Frame) error {
	return func(ctx context.Context, frames ...can.Frame) error {
		var d net.Dialer
		c, err := d.DialContext(ctx, "unix", socket)
		if err != nil {
			return err
		}
		defer c.Close()
		hc := &hubConn{Conn: c, r: newReader(c)}
		if err := hc.hello(ctx, bus, mode); err != nil {
			return err
		}
		var b []byte
		for _, f := range frames {
			b = appendFrame(b, f, 0)
		}
		_, err = c.Write(b)
		return err
	}
}

func TestConformance(t *testing.T) {
	cantest.Run(t, "classical", func(t *testing.T) cantest.Harness {
		s := testSocket()
		p := newPlugin(t, s, map[string]bool{"vcan0": false})
		return cantest.Harness{Driver: p, Device: "vcan0", Inject: inject(s, "vcan0", can.Classical)}
	})
	cantest.Run(t, "fd", func(t *testing.T) cantest.Harness {
		s := testSocket()
		p := newPlugin(t, s, map[string]bool{"fd0": true, "classic0": false})
		return cantest.Harness{Driver: p, Device: "fd0", ClassicalDevice: "classic0", Inject: inject(s, "fd0", can.FD)}
	})
	// A filesystem socket, with a stale socket file and lock left behind.
	cantest.Run(t, "path", func(t *testing.T) cantest.Harness {
		s := filepath.Join(t.TempDir(), "vcan.sock")
		ln, err := net.Listen("unix", s)
		if err != nil {
			t.Fatal(err)
		}
		ln.(*net.UnixListener).SetUnlinkOnClose(false)
		ln.Close()
		if err := os.WriteFile(s+".lock", nil, 0o600); err != nil {
			t.Fatal(err)
		}
		p := newPlugin(t, s, map[string]bool{"vcan0": false})
		return cantest.Harness{Driver: p, Device: "vcan0", Inject: inject(s, "vcan0", can.Classical)}
	})
}

func TestParseConfig(t *testing.T) {
	obj := func(attrs map[string]cty.Value) cty.Value { return cty.ObjectVal(attrs) }
	for _, tc := range []struct {
		name    string
		in      cty.Value
		want    Config
		wantErr string
	}{
		{name: "none", in: cty.NilVal, want: Config{Socket: DefaultSocket, Buses: map[string]can.Mode{DefaultBus: can.Classical}}},
		{name: "null", in: cty.NullVal(cty.EmptyObject), want: Config{Socket: DefaultSocket, Buses: map[string]can.Mode{DefaultBus: can.Classical}}},
		{name: "full", in: config("/run/berth/vcan.sock", map[string]bool{"a": false, "b": true}),
			want: Config{Socket: "/run/berth/vcan.sock", Buses: map[string]can.Mode{"a": can.Classical, "b": can.FD}}},
		{name: "fd omitted", in: obj(map[string]cty.Value{"buses": cty.MapVal(map[string]cty.Value{"x": cty.ObjectVal(map[string]cty.Value{"fd": cty.NullVal(cty.Bool)})})}),
			want: Config{Socket: DefaultSocket, Buses: map[string]can.Mode{"x": can.Classical}}},
		{name: "relative socket", in: obj(map[string]cty.Value{"socket": cty.StringVal("vcan.sock")}), wantErr: "neither an abstract socket"},
		{name: "bare at", in: obj(map[string]cty.Value{"socket": cty.StringVal("@")}), wantErr: "name an abstract socket"},
		{name: "long socket", in: obj(map[string]cty.Value{"socket": cty.StringVal("@" + string(make([]byte, 120)))}), wantErr: "longer than"},
		{name: "empty buses", in: obj(map[string]cty.Value{"buses": cty.MapValEmpty(cty.EmptyObject)}), wantErr: "buses is empty"},
		{name: "bus with space", in: config("@x", map[string]bool{"a b": false}), wantErr: "no spaces"},
		{name: "socket not a string", in: obj(map[string]cty.Value{"socket": cty.NumberIntVal(1)}), wantErr: "want a string"},
		{name: "not an object", in: cty.StringVal("x"), wantErr: "want an object"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseConfig(tc.in)
			if tc.wantErr != "" {
				if err == nil || !errors.Is(err, devices.ErrInvalidConfig) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ParseConfig: %v, want ErrInvalidConfig saying %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Socket != tc.want.Socket || fmt.Sprint(got.Buses) != fmt.Sprint(tc.want.Buses) {
				t.Fatalf("ParseConfig = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestModeMismatchRefused(t *testing.T) {
	s := testSocket()
	newPlugin(t, s, map[string]bool{"vcan0": true})
	p := New(nil)
	t.Cleanup(func() { p.Close() })
	err := p.Configure(context.Background(), config(s, map[string]bool{"vcan0": false}))
	if !errors.Is(err, devices.ErrInvalidConfig) || !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "runs fd CAN") {
		t.Fatalf("configure with the other mode: %v, want ErrInvalidConfig and ErrRefused naming the mode", err)
	}
}

func TestOpenBeforeConfigure(t *testing.T) {
	p := New(nil)
	if _, err := p.Open(context.Background(), "vcan0"); !errors.Is(err, devices.ErrNotConfigured) {
		t.Fatalf("open before configure: %v, want ErrNotConfigured", err)
	}
}

func TestFingerprintAndStats(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s := testSocket()
	p := newPlugin(t, s, map[string]bool{"a": false, "b": true})
	fs, err := p.Fingerprint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	fp, err := fs.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if len(fp.Devices) != 2 || fp.Devices[0].ID != "a" || fp.Devices[1].ID != "b" ||
		fp.Devices[1].Attributes["mode"] != "fd" || fp.Devices[0].Health != devices.HealthHealthy {
		t.Fatalf("fingerprint %+v", fp)
	}
	x, err := p.Open(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	y, err := p.Open(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	sy, err := y.Receive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := x.Send(ctx, can.Frame{ID: uint32(i)}); err != nil {
			t.Fatal(err)
		}
	}
	for n := 0; n < 3; {
		b, err := sy.Recv()
		if err != nil {
			t.Fatal(err)
		}
		n += len(b)
	}
	x.Close() // a closed handle's counts stay in the device's stats
	st, err := p.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(st) != 2 || st[0].ID != "a" || st[0].Counters[can.CounterTxFrames] != 3 || st[0].Counters[can.CounterRxFrames] != 3 ||
		st[1].Counters[can.CounterTxFrames] != 0 {
		t.Fatalf("stats %+v, want a: 3 sent, 3 received", st)
	}
}

// A member that does not read loses its own frames, counted; the others
// get every frame.
func TestSlowMemberLosesOnlyItsOwn(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s := testSocket()
	p := newPlugin(t, s, map[string]bool{"vcan0": false})
	// The slow member: a raw connection that says hello and never reads.
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", s)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := (&hubConn{Conn: c, r: newReader(c)}).hello(ctx, "vcan0", can.Classical); err != nil {
		t.Fatal(err)
	}
	tx, _ := p.Open(ctx, "vcan0")
	rx, _ := p.Open(ctx, "vcan0")
	defer tx.Close()
	defer rx.Close()
	srx, _ := rx.Receive(ctx)
	// The sender keeps at most a window in flight to the live reader (a
	// real bus is paced by its bit rate); the silent member falls ever
	// further behind.
	const n, window = 60000, 1000 // ~1.3 MB: far beyond the hub's queue and the socket buffers
	acked := make(chan int, n/window+1)
	go func() {
		for i := range n {
			if i >= window && i%window == 0 {
				select {
				case <-acked:
				case <-ctx.Done():
					return
				}
			}
			if err := tx.Send(ctx, can.Frame{ID: 0x100, Data: []byte{byte(i >> 16), byte(i >> 8), byte(i)}}); err != nil {
				return
			}
		}
	}()
	for got := 0; got < n; {
		b, err := srx.Recv()
		if err != nil {
			t.Fatalf("after %d frames: %v", got, err)
		}
		for _, f := range b {
			if want := []byte{byte(got >> 16), byte(got >> 8), byte(got)}; string(f.Data) != string(want) {
				t.Fatalf("frame %d: %X, want %X", got, f.Data, want)
			}
			got++
			if got%window == 0 {
				acked <- got
			}
		}
	}
	// The hub counted drops for the slow member only.
	p.mu.Lock()
	h := p.hub
	p.mu.Unlock()
	h.mu.Lock()
	var lost uint64
	for q := range h.peers {
		q.mu.Lock()
		lost += q.lost
		q.mu.Unlock()
	}
	h.mu.Unlock()
	if lost == 0 {
		t.Fatal("the hub dropped nothing for a member that never reads")
	}
	cnt, _ := rx.Counters(ctx)
	if cnt.Drops != 0 || cnt.RxFrames != n {
		t.Fatalf("reader that kept up: %+v, want %d frames and no drops", cnt, n)
	}
}

// When the process hosting the hub stops, the others carry on.
func TestHubFailover(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s := testSocket()
	a := newPlugin(t, s, map[string]bool{"vcan0": false}) // hosts
	b := newPlugin(t, s, map[string]bool{"vcan0": false})
	if a.hub == nil || b.hub != nil {
		t.Fatal("the first plugin configured should host the hub")
	}
	b1, _ := b.Open(ctx, "vcan0")
	b2, _ := b.Open(ctx, "vcan0")
	defer b1.Close()
	defer b2.Close()
	s2, _ := b2.Receive(ctx)
	a.Close()
	// b's members rejoin a hub b now hosts; keep sending until one
	// arrives (frames sent while the hub changes hands may be lost).
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	got := make(chan error, 1)
	go func() {
		_, err := s2.Recv()
		got <- err
	}()
	for {
		select {
		case err := <-got:
			if err != nil {
				t.Fatal(err)
			}
			b.mu.Lock()
			hosting := b.hub != nil
			b.mu.Unlock()
			if !hosting {
				t.Fatal("the survivor does not host the hub")
			}
			return
		case <-tick.C:
			if err := b1.Send(ctx, can.Frame{ID: 1}); err != nil {
				t.Fatal(err)
			}
		case <-ctx.Done():
			t.Fatal("no frame after the hub's host went away")
		}
	}
}

// stuckHub hosts a hub at socket that welcomes members and then never
// reads from them, so their transmit queues fill. It ends with the test.
func stuckHub(t *testing.T, socket string) {
	t.Helper()
	ln, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { close(done); ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				if _, _, err := newReader(c).next(); err != nil {
					return
				}
				if _, err := c.Write(appendHeader(nil, msgWelcome, 0)); err != nil {
					return
				}
				<-done
			}()
		}
	}()
}

// A batch that meets a full transmit queue sends what fits and fails
// the rest with the ctx's error, each frame on its own; the counters
// count what was sent.
func TestSendBatchFullQueue(t *testing.T) {
	s := testSocket()
	stuckHub(t, s)
	p := newPlugin(t, s, map[string]bool{"vcan0": false})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, err := p.Open(ctx, "vcan0")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	// Far more than the queue and the socket buffers hold.
	frames := make([]can.Frame, 200_000)
	for i := range frames {
		frames[i] = can.Frame{ID: 0x123, Data: []byte{1, 2, 3, 4, 5, 6, 7, 8}}
	}
	frames[3].ID = 0x800 // malformed: refused on its own
	sctx, scancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer scancel()
	err = can.SendBatch(sctx, b, frames)
	errs := can.FrameErrors(err, len(frames))
	if !errors.Is(errs[3], can.ErrInvalidID) {
		t.Errorf("frame 3: %v, want ErrInvalidID", errs[3])
	}
	sent, full := 0, false
	for i, e := range errs {
		switch {
		case i == 3:
		case e == nil && full:
			t.Fatalf("frame %d sent after an earlier one found the queue full", i)
		case e == nil:
			sent++
		case !errors.Is(e, context.DeadlineExceeded):
			t.Fatalf("frame %d: %v, want context.DeadlineExceeded (queue full)", i, e)
		default:
			full = true
		}
	}
	if sent == 0 || sent >= len(frames)-1 {
		t.Fatalf("%d of %d frames sent into a hub that never reads, want some but not all", sent, len(frames))
	}
	c, err := b.Counters(ctx)
	if err != nil || c.TxFrames != uint64(sent) {
		t.Errorf("counters %+v, %v: want TxFrames %d", c, err, sent)
	}
}
