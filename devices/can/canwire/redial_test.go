package canwire_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	einride "go.einride.tech/can"
	"go.einride.tech/can/pkg/socketcan"

	"github.com/berth-io/berth/devices/can"
	"github.com/berth-io/berth/devices/can/cantest"
	"github.com/berth-io/berth/devices/can/canwire"
)

// fast bounds what must not wait for a redial: a send while no server
// listens, a Close during a redial. It is far below the client's 5s
// hello timeout and far above what these take.
const fast = 2 * time.Second

// restartable serves a device socket that the test stops and starts
// again on the same path, as berthd is killed and restarted. Stopped, it
// leaves its socket file behind as a killed process does, so redials meet
// ECONNREFUSED; start removes the stale file first, as berthd does.
type restartable struct {
	t      *testing.T
	path   string
	cancel context.CancelFunc
	done   chan error
}

func newRestartable(t *testing.T, open canwire.OpenFunc) *restartable {
	r := &restartable{t: t, path: filepath.Join(t.TempDir(), "device.sock")}
	r.start(open)
	t.Cleanup(r.stop)
	return r
}

func (r *restartable) start(open canwire.OpenFunc) {
	r.t.Helper()
	if err := os.Remove(r.path); err != nil && !errors.Is(err, os.ErrNotExist) {
		r.t.Fatal(err)
	}
	l, err := net.ListenUnix(canwire.Network, &net.UnixAddr{Name: r.path, Net: canwire.Network})
	if err != nil {
		r.t.Fatal(err)
	}
	l.SetUnlinkOnClose(false)
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel, r.done = cancel, make(chan error, 1)
	go func() { r.done <- canwire.Serve(ctx, l, open) }()
}

// stop ends the server and every session, and waits for it.
func (r *restartable) stop() {
	r.t.Helper()
	if r.cancel == nil {
		return
	}
	r.cancel()
	r.cancel = nil
	select {
	case err := <-r.done:
		if err != nil {
			r.t.Errorf("serve: %v", err)
		}
	case <-time.After(timeout):
		r.t.Error("Serve did not return after its ctx ended")
	}
}

// eventually polls cond until it holds, failing the test after timeout.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(timeout)
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// within runs f and fails the test unless it returns within d.
func within(t *testing.T, d time.Duration, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("%s did not return within %v", what, d)
	}
}

// hangUps returns an option that notes the client's hang-up reports, and
// a function that waits for the next one: after it the client redials.
func hangUps(t *testing.T) (canwire.Option, func()) {
	ch := make(chan error, 16)
	opt := canwire.WithErrorHandler(func(err error) {
		if errors.Is(err, canwire.ErrUnavailable) && strings.Contains(err.Error(), "hung up") {
			select {
			case ch <- err:
			default: // more than the test waits for
			}
		}
	})
	return opt, func() {
		t.Helper()
		select {
		case <-ch:
		case <-time.After(timeout):
			t.Fatal("the client did not report the hang-up")
		}
	}
}

// handles waits until n handles are open on bus: the peer's, plus one per
// client session the server opened.
func handles(t *testing.T, bus *cantest.Bus, n int) {
	t.Helper()
	eventually(t, fmt.Sprintf("%d handles on the bus", n), func() bool { return bus.Handles() == n })
}

// receiving waits until n receive streams are open on bus, so a frame
// injected next reaches them: a server's session opens its handle before
// it starts receiving.
func receiving(t *testing.T, bus *cantest.Bus, n int) {
	t.Helper()
	eventually(t, fmt.Sprintf("%d receive streams on the bus", n), func() bool { return bus.Streams() == n })
}

// TestRedialEinride checks the case: a program reading and
// writing through einride's socketcan on a Conn goes on across two
// restarts of the server, with sends failing fast while it is away.
func TestRedialEinride(t *testing.T) {
	ctx := testCtx(t)
	d := fakeDriver()
	bus := d.Bus("can1")
	srv := newRestartable(t, d.Open)
	peer := bus.Open()
	defer peer.Close()
	ps, err := peer.Receive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := canwire.Dial(ctx, srv.path, "can1")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	rx := socketcan.NewReceiver(conn)
	tx := socketcan.NewTransmitter(conn)
	received := make(chan einride.Frame)
	rxDone := make(chan error, 1)
	go func() {
		for rx.Receive() {
			received <- rx.Frame()
		}
		rxDone <- rx.Err()
	}()
	expect := func(want ...can.Frame) {
		t.Helper()
		for _, w := range want {
			select {
			case f := <-received:
				if got := can.FromEinride(f); got.String() != w.String() {
					t.Fatalf("einride received %s, want %s", got, w)
				}
			case err := <-rxDone:
				t.Fatalf("einride receiver ended: %v", err)
			case <-ctx.Done():
				t.Fatalf("einride did not receive %s", w)
			}
		}
	}
	transmit := func(f einride.Frame) {
		t.Helper()
		if err := tx.TransmitFrame(ctx, f); err != nil {
			t.Fatalf("transmit %v: %v", f, err)
		}
		// The peer hears the injected frames too; look for the sent one.
		want := can.FromEinride(f)
		for {
			got, err := ps.Recv()
			if err != nil {
				t.Fatalf("peer: %v; want %s", err, want)
			}
			for _, g := range got {
				if g.ID == want.ID {
					if g.String() != want.String() {
						t.Fatalf("peer received %s, want %s", g, want)
					}
					return
				}
			}
		}
	}

	bus.Inject(can.Frame{ID: 0x100, Data: []byte{0}})
	expect(can.Frame{ID: 0x100, Data: []byte{0}})
	transmit(einride.Frame{ID: 0x200, Length: 1, Data: einride.Data{0}})

	for round := byte(1); round <= 2; round++ {
		srv.stop() // berthd is gone; its sessions' handles are closed
		handles(t, bus, 1)
		// Frames on the bus now are not seen: nobody serves the client.
		bus.Inject(can.Frame{ID: 0x666})
		within(t, fast, "a send while no server listens", func() {
			err := tx.TransmitFrame(context.Background(), einride.Frame{ID: 0x201})
			if !errors.Is(err, canwire.ErrUnavailable) || !strings.Contains(err.Error(), srv.path) {
				t.Errorf("transmit while the server is away: %v, want ErrUnavailable naming the socket", err)
			}
		})

		srv.start(d.Open) // the new berthd serves the same path
		receiving(t, bus, 2)
		in := []can.Frame{{ID: 0x100, Data: []byte{round}}, {ID: 0x1ABCDEF, Extended: true, Data: []byte{round, 2, 3}}}
		bus.Inject(in...)
		expect(in...)
		transmit(einride.Frame{ID: 0x200, Length: 1, Data: einride.Data{round}})
	}
	select {
	case f := <-received:
		t.Errorf("einride received %v, a frame from while the server was away", f)
	default:
	}
	if n := conn.Drops(); n != 0 {
		t.Errorf("Drops %d, want 0: frames the client could not see are not counted", n)
	}
	conn.Close()
	select {
	case err := <-rxDone:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("einride receiver after Close: %v, want net.ErrClosed", err)
		}
	case <-ctx.Done():
		t.Fatal("einride receiver did not end on Close")
	}
}

// TestRedialBus checks that a Bus's receive streams pause while the
// server is away and resume on the new session, that requests fail fast
// with ErrUnavailable meanwhile, and that the error handler hears of it.
func TestRedialBus(t *testing.T) {
	ctx := testCtx(t)
	d := fakeDriver()
	bus := d.Bus("can0")
	srv := newRestartable(t, d.Open)
	b, reported := openReporting(t, ctx, srv.path, "can0")
	s, err := b.Receive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	recv := func(s can.Stream, want ...can.Frame) {
		t.Helper()
		var got []can.Frame
		for len(got) < len(want) {
			batch, err := s.Recv()
			if err != nil {
				t.Fatalf("recv: %v", err)
			}
			got = append(got, batch...)
		}
		for i := range want {
			if got[i].String() != want[i].String() {
				t.Errorf("frame %d: %s, want %s", i, got[i], want[i])
			}
		}
	}
	bus.Inject(can.Frame{ID: 0x1})
	recv(s, can.Frame{ID: 0x1})

	srv.stop()
	handles(t, bus, 0)
	select {
	case err := <-reported:
		if !errors.Is(err, canwire.ErrUnavailable) || !strings.Contains(err.Error(), "hung up") {
			t.Errorf("reported %v, want ErrUnavailable saying the server hung up", err)
		}
	case <-ctx.Done():
		t.Fatal("the error handler heard nothing of the hang-up")
	}
	within(t, fast, "requests while no server listens", func() {
		if err := b.Send(context.Background(), can.Frame{ID: 0x2}); !errors.Is(err, canwire.ErrUnavailable) {
			t.Errorf("send while the server is away: %v, want ErrUnavailable", err)
		}
		if _, err := b.State(context.Background()); !errors.Is(err, canwire.ErrUnavailable) {
			t.Errorf("state while the server is away: %v, want ErrUnavailable", err)
		}
		if _, err := b.Counters(context.Background()); !errors.Is(err, canwire.ErrUnavailable) {
			t.Errorf("counters while the server is away: %v, want ErrUnavailable", err)
		}
	})
	// A stream opened while away waits for the new session too.
	s2, err := b.Receive(ctx)
	if err != nil {
		t.Fatalf("receive while the server is away: %v", err)
	}
	bus.Inject(can.Frame{ID: 0x666}) // not seen by anyone

	srv.start(d.Open)
	receiving(t, bus, 1)
	in := []can.Frame{{ID: 0x3, FD: true, BRS: true, Data: make([]byte, 64)}, {ID: 0x4, Data: []byte{4}}}
	bus.Inject(in...)
	recv(s, in...)
	recv(s2, in...)

	peer := bus.Open()
	defer peer.Close()
	ps, err := peer.Receive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Send(ctx, can.Frame{ID: 0x5}); err != nil {
		t.Fatalf("send after the restart: %v", err)
	}
	if got, err := ps.Recv(); err != nil || got[0].ID != 0x5 {
		t.Errorf("peer received %v, %v; want 0x5", got, err)
	}
	c, err := b.Counters(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The new session counts from zero; nothing counts the lost frame.
	if c.RxFrames != 2 || c.TxFrames != 1 || c.Drops != 0 {
		t.Errorf("counters after the restart %+v, want the new session's 2 received, 1 sent, no drops", c)
	}
}

// TestRedialRefused checks that a new server refusing the grant for good
// (the playbook changed) ends the client with its error.
func TestRedialRefused(t *testing.T) {
	for _, c := range []struct {
		name string
		err  error
		want error
	}{
		{"not found", fmt.Errorf("container app: %w: playbook has no grant \"can1\"", canwire.ErrUnknownGrant), canwire.ErrUnknownGrant},
		{"permission denied", fmt.Errorf("container app: %w: grant \"can1\" is suspended", canwire.ErrPermissionDenied), canwire.ErrPermissionDenied},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx := testCtx(t)
			d := fakeDriver()
			srv := newRestartable(t, d.Open)
			b, reported := openReporting(t, ctx, srv.path, "can1")
			s, err := b.Receive(ctx)
			if err != nil {
				t.Fatal(err)
			}
			conn, err := canwire.Dial(ctx, srv.path, "can1")
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()

			srv.stop()
			srv.start(cantest.ErrorOpen(c.err))
			isRefusal := func(err error) bool {
				return errors.Is(err, c.want) && strings.Contains(err.Error(), c.err.Error()) &&
					strings.Contains(err.Error(), srv.path)
			}
			_ = conn.SetReadDeadline(time.Now().Add(timeout))
			if _, err := conn.Read(make([]byte, 16)); !isRefusal(err) {
				t.Errorf("conn read after the refusal: %v, want %v naming the socket and the server's reason", err, c.want)
			}
			if _, err := s.Recv(); !errors.Is(err, can.ErrClosed) {
				t.Errorf("stream after the refusal: %v, want can.ErrClosed", err)
			}
			if err := b.Send(ctx, can.Frame{ID: 1}); !isRefusal(err) {
				t.Errorf("send after the refusal: %v, want %v", err, c.want)
			}
			if _, err := conn.Write(record(1, 0, 0)); !isRefusal(err) {
				t.Errorf("conn write after the refusal: %v, want %v", err, c.want)
			}
			if _, err := b.Receive(ctx); !isRefusal(err) {
				t.Errorf("receive after the refusal: %v, want %v", err, c.want)
			}
			var last error
			for len(reported) > 0 {
				last = <-reported
			}
			if !isRefusal(last) {
				t.Errorf("last report %v, want the refusal", last)
			}
		})
	}
}

// TestRedialUnavailableHello checks that a new server answering the
// hello with Unavailable (its plugin still starting) is retried until it
// accepts.
func TestRedialUnavailableHello(t *testing.T) {
	ctx := testCtx(t)
	d := fakeDriver()
	bus := d.Bus("can1")
	srv := newRestartable(t, d.Open)
	_, s := openReceiving(t, ctx, srv.path, "can1")
	srv.stop()
	var opens atomic.Int32
	srv.start(func(ctx context.Context, grant string) (can.Bus, error) {
		if opens.Add(1) <= 3 {
			return nil, fmt.Errorf("plugin vcan starting: %w", canwire.ErrUnavailable)
		}
		return d.Open(ctx, grant)
	})
	receiving(t, bus, 1)
	bus.Inject(can.Frame{ID: 0x7})
	if got, err := s.Recv(); err != nil || got[0].ID != 0x7 {
		t.Fatalf("stream after Unavailable hellos: %v, %v; want 0x7", got, err)
	}
	if n := opens.Load(); n != 4 {
		t.Errorf("%d hellos, want 3 refused with Unavailable and 1 accepted", n)
	}
}

// TestRedialClose checks that Close while the client redials returns at
// once and ends blocked Reads and streams, that Read deadlines hold while
// away, and that Close aborts a hello the server never answers.
func TestRedialClose(t *testing.T) {
	ctx := testCtx(t)
	d := fakeDriver()
	srv := newRestartable(t, d.Open)
	opt, hungUp := hangUps(t)
	conn, err := canwire.Dial(ctx, srv.path, "can1", opt)
	if err != nil {
		t.Fatal(err)
	}
	b, err := canwire.OpenBus(ctx, srv.path, "can1", opt)
	if err != nil {
		t.Fatal(err)
	}
	s, err := b.Receive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	srv.stop()
	hungUp()
	hungUp()

	_ = conn.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	if _, err := conn.Read(make([]byte, 16)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("read past the deadline while away: %v, want os.ErrDeadlineExceeded", err)
	}
	_ = conn.SetReadDeadline(time.Time{})
	readErr := make(chan error, 1)
	go func() {
		_, err := conn.Read(make([]byte, 16))
		readErr <- err
	}()
	recvErr := make(chan error, 1)
	go func() {
		_, err := s.Recv()
		recvErr <- err
	}()
	within(t, fast, "Close during a redial", func() {
		conn.Close()
		b.Close()
	})
	for what, ch := range map[string]chan error{"read": readErr, "recv": recvErr} {
		select {
		case err := <-ch:
			want := net.ErrClosed
			if what == "recv" {
				want = can.ErrClosed
			}
			if !errors.Is(err, want) {
				t.Errorf("%s blocked during a redial, after Close: %v, want %v", what, err, want)
			}
		case <-time.After(fast):
			t.Errorf("%s blocked during a redial did not return on Close", what)
		}
	}

	// A server that accepts but never answers the hello: Close must not
	// wait for the hello timeout.
	srv2 := newRestartable(t, d.Open)
	conn, err = canwire.Dial(ctx, srv2.path, "can1")
	if err != nil {
		t.Fatal(err)
	}
	srv2.stop()
	_ = os.Remove(srv2.path)
	l, err := net.ListenUnix(canwire.Network, &net.UnixAddr{Name: srv2.path, Net: canwire.Network})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_ = l.SetDeadline(time.Now().Add(timeout))
	accepted, err := l.Accept() // the client's redial, now in its hello
	if err != nil {
		t.Fatalf("no redial: %v", err)
	}
	defer accepted.Close()
	within(t, fast, "Close during a hello", func() { conn.Close() })
	_ = accepted.SetReadDeadline(time.Now().Add(fast))
	buf := make([]byte, canwire.MaxMessage)
	for {
		_, err := accepted.Read(buf) // the hello, then the hang-up
		if errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatal("the client did not hang up its redial on Close")
		}
		if err != nil {
			break
		}
	}
}

// TestRedialNoLeak checks that restarts, refusals and closes during
// redials leave no goroutine behind.
func TestRedialNoLeak(t *testing.T) {
	before := runtime.NumGoroutine()
	func() {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		d := fakeDriver()
		bus := d.Bus("can1")
		srv := newRestartable(t, d.Open)
		defer srv.stop()
		var clients []io.Closer
		opt, hungUp := hangUps(t)
		for i := range 3 {
			o := []canwire.Option{}
			if i == 0 {
				o = append(o, opt)
			}
			conn, err := canwire.Dial(ctx, srv.path, "can1", o...)
			if err != nil {
				t.Fatal(err)
			}
			b, err := canwire.OpenBus(ctx, srv.path, "can1", o...)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := b.Receive(ctx); err != nil {
				t.Fatal(err)
			}
			clients = append(clients, conn, b)
		}
		for range 2 {
			srv.stop()
			hungUp()
			hungUp()
			srv.start(d.Open)
			handles(t, bus, len(clients))
			// The server opens a handle before it answers the hello: a
			// stop before the answer is a failed redial, not a hang-up.
			for _, c := range clients[:2] {
				eventually(t, "the first client's new session", func() bool { return request(ctx, c) == nil })
			}
		}
		srv.stop()
		hungUp()
		hungUp()
		clients[0].Close() // closed during a redial
		clients[1].Close()
		srv.start(cantest.ErrorOpen(canwire.ErrUnknownGrant)) // the rest are refused
		for _, c := range clients[2:] {
			eventually(t, "the refusal", func() bool { return errors.Is(request(ctx, c), canwire.ErrUnknownGrant) })
			c.Close()
		}
	}()
	eventually(t, fmt.Sprintf("goroutines to settle to %d", before), func() bool { return runtime.NumGoroutine() <= before })
}

// request sends a frame through c, a *canwire.Conn or *canwire.Bus, which
// succeeds only while its session is up.
func request(ctx context.Context, c io.Closer) error {
	switch c := c.(type) {
	case *canwire.Conn:
		_, err := c.Write(record(1, 0, 0))
		return err
	case *canwire.Bus:
		return c.Send(ctx, can.Frame{ID: 1})
	}
	return fmt.Errorf("request: %T is not a canwire client", c)
}
