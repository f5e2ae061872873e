package canwire_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
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

const timeout = 10 * time.Second

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	return ctx
}

// openReporting opens grant's bus at path with an error handler that
// hands what it hears to the returned channel (dropping what does not
// fit). The bus is closed at the end of the test.
func openReporting(t *testing.T, ctx context.Context, path, grant string) (can.Bus, <-chan error) {
	t.Helper()
	reported := make(chan error, 16)
	b, err := canwire.OpenBus(ctx, path, grant, canwire.WithErrorHandler(func(err error) {
		select {
		case reported <- err:
		default:
		}
	}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b, reported
}

// openReceiving opens grant on the socket at path and a receive stream on
// it. The bus is closed at the end of the test.
func openReceiving(t *testing.T, ctx context.Context, path, grant string, opts ...canwire.Option) (*canwire.Bus, can.Stream) {
	t.Helper()
	b, err := canwire.OpenBus(ctx, path, grant, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	s, err := b.Receive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return b, s
}

// serve serves open on a fresh socket until the test ends and returns the
// socket's path.
func serve(t testing.TB, open canwire.OpenFunc, opts ...canwire.ServerOption) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "device.sock")
	l, err := net.Listen(canwire.Network, path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- canwire.Serve(ctx, l, open, opts...) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("serve: %v", err)
			}
		case <-time.After(timeout):
			t.Error("Serve did not return after its ctx ended")
		}
	})
	return path
}

// fakeDriver serves a cantest driver with an FD bus "can0" and a classical
// bus "can1"; grants are named as the buses.
func fakeDriver() *cantest.Driver {
	d := cantest.NewDriver()
	d.Add("can0", cantest.NewBus(can.FD))
	d.Add("can1", cantest.NewBus(can.Classical))
	return d
}

func TestConformance(t *testing.T) {
	factory := func(device string) func(t *testing.T) cantest.Harness {
		return func(t *testing.T) cantest.Harness {
			d := fakeDriver()
			bus := d.Bus(device)
			h := cantest.Harness{
				Driver: canwire.NewDriver(serve(t, d.Open)),
				Device: device,
				Inject: func(_ context.Context, frames ...can.Frame) error {
					bus.Inject(frames...)
					return nil
				},
				SetState: func(_ context.Context, s can.State) error {
					bus.SetState(s)
					return nil
				},
			}
			if device == "can0" {
				h.ClassicalDevice = "can1"
			}
			return h
		}
	}
	cantest.Run(t, "fd", factory("can0"))
	cantest.Run(t, "classical", factory("can1"))
}

// TestEinride checks the one-line port: einride's Receiver and Transmitter
// on a canwire.Conn exchange frames with the bus.
func TestEinride(t *testing.T) {
	ctx := testCtx(t)
	d := fakeDriver()
	path := serve(t, d.Open)
	bus := d.Bus("can1")
	peer := bus.Open()
	defer peer.Close()
	ps, err := peer.Receive(ctx)
	if err != nil {
		t.Fatal(err)
	}

	conn, err := canwire.Dial(ctx, path, "can1")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	rx := socketcan.NewReceiver(conn)
	tx := socketcan.NewTransmitter(conn)

	// Transmit: einride frames reach the other handle.
	sent := []einride.Frame{
		{ID: 0x123, Length: 4, Data: einride.Data{0xDE, 0xAD, 0xBE, 0xEF}},
		{ID: 0x1ABCDEF, IsExtended: true, Length: 8, Data: einride.Data{1, 2, 3, 4, 5, 6, 7, 8}},
		{ID: 0x321, IsRemote: true, Length: 2},
	}
	for _, f := range sent {
		if err := tx.TransmitFrame(ctx, f); err != nil {
			t.Fatalf("transmit %v: %v", f, err)
		}
	}
	var got []can.Frame
	for len(got) < len(sent) {
		b, err := ps.Recv()
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, b...)
	}
	for i, f := range sent {
		if want := can.FromEinride(f); got[i].String() != want.String() {
			t.Errorf("peer got %s, want %s", got[i], want)
		}
	}

	// Receive: frames on the bus, and an error frame, reach einride.
	in := []can.Frame{
		{ID: 0x7FF, Data: []byte{9, 8, 7}},
		{ID: 0x18DAF110, Extended: true, Data: []byte{0x02, 0x10, 0x03}},
		{ID: 0x40, Error: true, Data: make([]byte, 8)}, // CAN_ERR_BUSOFF
	}
	bus.Inject(in...)
	for i, want := range in {
		if !rx.Receive() {
			t.Fatalf("receive %d: %v", i, rx.Err())
		}
		if want.Error {
			if !rx.HasErrorFrame() || rx.ErrorFrame().ErrorClass != socketcan.ErrorClassBusOff {
				t.Errorf("frame %d: want a bus-off error frame, got error %v %+v", i, rx.HasErrorFrame(), rx.ErrorFrame())
			}
			continue
		}
		if f := can.FromEinride(rx.Frame()); rx.HasErrorFrame() || f.String() != want.String() {
			t.Errorf("frame %d: einride received %s, want %s", i, f, want)
		}
	}
}

// guardBus refuses sends of some IDs with a given error, as the broker
// refuses IDs outside a grant.
type guardBus struct {
	can.Bus
	refuse map[uint32]error
}

func (g *guardBus) Send(ctx context.Context, f can.Frame) error {
	if err, ok := g.refuse[f.ID]; ok {
		return err
	}
	return g.Bus.Send(ctx, f)
}

func TestRefusedSend(t *testing.T) {
	ctx := testCtx(t)
	d := fakeDriver()
	denied := fmt.Errorf("send 0x100: %w: grant can \"body\" may not send 0x100", canwire.ErrPermissionDenied)
	limited := fmt.Errorf("send 0x101: %w: grant can \"body\" allows 10 frames/s", canwire.ErrRateLimited)
	restarting := fmt.Errorf("send 0x102: %w: plugin vcan restarting", canwire.ErrUnavailable)
	path := serve(t, func(ctx context.Context, grant string) (can.Bus, error) {
		b, err := d.Open(ctx, "can0")
		if err != nil {
			return nil, err
		}
		return &guardBus{Bus: b, refuse: map[uint32]error{0x100: denied, 0x101: limited, 0x102: restarting}}, nil
	})
	b, err := canwire.OpenBus(ctx, path, "body")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	conn, err := canwire.Dial(ctx, path, "body")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	tx := socketcan.NewTransmitter(conn)

	for _, c := range []struct {
		id   uint32
		want error
		msg  string
	}{
		{0x100, canwire.ErrPermissionDenied, denied.Error()},
		{0x101, canwire.ErrRateLimited, limited.Error()},
		{0x102, canwire.ErrUnavailable, restarting.Error()},
	} {
		err := b.Send(ctx, can.Frame{ID: c.id})
		var we *canwire.Error
		if !errors.Is(err, c.want) || !errors.As(err, &we) || err.Error() != c.msg {
			t.Errorf("bus send 0x%X: %v, want %q matching %v", c.id, err, c.msg, c.want)
		}
		err = tx.TransmitFrame(ctx, einride.Frame{ID: c.id})
		if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("einride transmit 0x%X: %v, want %q matching %v", c.id, err, c.msg, c.want)
		}
	}
	// Allowed IDs still go out, and the session goes on after refusals.
	if err := b.Send(ctx, can.Frame{ID: 0x200}); err != nil {
		t.Errorf("allowed send: %v", err)
	}
	if err := tx.TransmitFrame(ctx, einride.Frame{ID: 0x200}); err != nil {
		t.Errorf("allowed einride transmit: %v", err)
	}
	// A malformed record is refused with the exact sentinel.
	if _, err := conn.Write(record(0x1, 0, 9)); !errors.Is(err, can.ErrInvalidLength) {
		t.Errorf("write of a can_frame with len 9: %v, want ErrInvalidLength", err)
	}
}

func TestUnknownGrant(t *testing.T) {
	ctx := testCtx(t)
	path := serve(t, fakeDriver().Open)
	for _, dial := range []func() error{
		func() error { _, err := canwire.Dial(ctx, path, "nope"); return err },
		func() error { _, err := canwire.OpenBus(ctx, path, "nope"); return err },
	} {
		err := dial()
		if !errors.Is(err, canwire.ErrUnknownGrant) || !errors.Is(err, can.ErrUnknownDevice) {
			t.Errorf("dial unknown grant: %v, want ErrUnknownGrant and can.ErrUnknownDevice", err)
		}
		if err == nil || !strings.Contains(err.Error(), "open nope: unknown device") {
			t.Errorf("dial unknown grant: %v, want the server's open error as it is", err)
		}
	}
	if _, err := canwire.Dial(ctx, filepath.Join(t.TempDir(), "none.sock"), "x"); err == nil || !strings.Contains(err.Error(), "none.sock") {
		t.Errorf("dial a missing socket: %v, want an error naming it", err)
	}
}

// rawDial opens a session by hand, as a C program would.
func rawDial(t *testing.T, path string, flags uint8, grant string) *net.UnixConn {
	t.Helper()
	c, err := net.DialUnix(canwire.Network, nil, &net.UnixAddr{Name: path, Net: canwire.Network})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	_ = c.SetDeadline(time.Now().Add(timeout))
	hello := append([]byte("BRTH"), 1, flags, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
	if _, err := c.Write(append(hello, grant...)); err != nil {
		t.Fatal(err)
	}
	return c
}

// readMsg reads one message.
func readMsg(t *testing.T, c *net.UnixConn) []byte {
	t.Helper()
	buf := make([]byte, canwire.MaxMessage)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return buf[:n]
}

// record is a can_frame with can_id id|flags and len n.
func record(id uint32, flags uint32, n byte) []byte {
	b := make([]byte, canwire.FrameSize)
	binary.LittleEndian.PutUint32(b, id|flags)
	b[4] = n
	for i := 0; i < int(min(n, 8)); i++ {
		b[8+i] = byte(i + 1)
	}
	return b
}

// TestRawProtocol speaks the protocol byte by byte, as PROTOCOL.md's
// example session does: a plain client (no flags) reads and writes bare
// struct can_frame records.
func TestRawProtocol(t *testing.T) {
	ctx := testCtx(t)
	d := fakeDriver()
	path := serve(t, d.Open)
	bus := d.Bus("can0")
	peer := bus.Open()
	defer peer.Close()
	ps, err := peer.Receive(ctx)
	if err != nil {
		t.Fatal(err)
	}

	c := rawDial(t, path, 0, "can can0")
	ok := readMsg(t, c)
	if want := []byte{0xFF, 0xFF, 0xFF, 0xFF, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}; !bytes.Equal(ok, want) {
		t.Fatalf("hello answer % X, want % X", ok, want)
	}
	// Send 123#0102: a bare can_frame, no answer without FlagAck.
	if _, err := c.Write(record(0x123, 0, 2)); err != nil {
		t.Fatal(err)
	}
	got, err := ps.Recv()
	if err != nil || len(got) != 1 || got[0].String() != "123#0102" {
		t.Fatalf("peer received %v, %v; want 123#0102", got, err)
	}
	// Receive: each frame is one bare 16-byte message; the FD frame is
	// not delivered to a client without FlagFD.
	bus.Inject(can.Frame{ID: 0x1ABCDEF, Extended: true, Data: []byte{1, 2, 3}},
		can.Frame{ID: 0x300, FD: true, Data: make([]byte, 12)},
		can.Frame{ID: 0x7FF, Remote: true, RemoteLen: 8})
	if m := readMsg(t, c); !bytes.Equal(m, record(0x1ABCDEF, 0x80000000, 3)) {
		t.Errorf("first record % X, want % X", m, record(0x1ABCDEF, 0x80000000, 3))
	}
	if m, want := readMsg(t, c), []byte{0xFF, 0x07, 0, 0x40, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}; !bytes.Equal(m, want) {
		t.Errorf("second record % X, want % X (the RTR frame)", m, want)
	}
	// A refused send is answered, numbered: this is message 2.
	if _, err := c.Write(record(0x800, 0, 0)); err != nil {
		t.Fatal(err)
	}
	m := readMsg(t, c)
	if len(m) < canwire.HeaderSize || m[4] != byte(canwire.KindError) || m[5] != 3 /* InvalidArgument */ ||
		m[6] != byte(canwire.DetailInvalidID) || binary.LittleEndian.Uint64(m[8:]) != 2 {
		t.Fatalf("answer to a bad id % X, want an InvalidArgument/InvalidID error for message 2", m)
	}
	if text := string(m[canwire.HeaderSize:]); !strings.Contains(text, "0x800") {
		t.Errorf("error text %q does not name the id", text)
	}
	// A message of the wrong size is refused too, and the session lives on.
	if _, err := c.Write([]byte{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	if m := readMsg(t, c); m[4] != byte(canwire.KindError) || binary.LittleEndian.Uint64(m[8:]) != 3 {
		t.Fatalf("answer to a 3-byte message % X, want an error for message 3", m)
	}
	bus.Inject(can.Frame{ID: 0x5})
	if m := readMsg(t, c); !bytes.Equal(m, record(0x5, 0, 0)) {
		t.Errorf("record after refusals % X, want % X", m, record(0x5, 0, 0))
	}
}

func TestBadHello(t *testing.T) {
	path := serve(t, fakeDriver().Open)
	for _, c := range []struct {
		name  string
		hello []byte
		want  string
	}{
		{"not a hello", record(1, 0, 0), "not a hello"},
		{"version", append([]byte("BRTH"), 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 'c', 'a', 'n', ' ', 'x'), "version 9"},
		{"no name", append([]byte("BRTH"), 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 'c', 'a', 'n'), "<class> <name>"},
		{"class", append([]byte("BRTH"), 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 'i', '2', 'c', ' ', 'x'), "serves class can"},
	} {
		t.Run(c.name, func(t *testing.T) {
			conn, err := net.DialUnix(canwire.Network, nil, &net.UnixAddr{Name: path, Net: canwire.Network})
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(timeout))
			if _, err := conn.Write(c.hello); err != nil {
				t.Fatal(err)
			}
			m := readMsg(t, conn)
			if len(m) < canwire.HeaderSize || m[4] != byte(canwire.KindError) || !strings.Contains(string(m[canwire.HeaderSize:]), c.want) {
				t.Errorf("answer %q, want an error containing %q", m, c.want)
			}
			// The server hangs up after refusing a hello.
			if _, err := conn.Read(make([]byte, 64)); err == nil {
				t.Error("session still open after a refused hello")
			}
		})
	}
}

// TestSlowClient checks that a client that never reads does not hold up
// another session on the same bus.
func TestSlowClient(t *testing.T) {
	ctx := testCtx(t)
	d := cantest.NewDriver()
	bus := d.Add("can0", cantest.NewBus(can.Classical))
	opened := make(chan can.Bus, 2)
	path := serve(t, func(ctx context.Context, grant string) (can.Bus, error) {
		b, err := d.Open(ctx, grant)
		if err == nil {
			opened <- b
		}
		return b, err
	})

	slow := rawDial(t, path, canwire.FlagTimestamp, "can can0")
	readMsg(t, slow) // hello answer; then never read again
	slowBus := <-opened
	fastBus, s := openReceiving(t, ctx, path, "can0")
	// Far more than the slow session's socket buffer and queue hold, put
	// on the bus a batch at a time as fast as the fast reader takes them.
	const n, batch = 50000, 100
	for got := 0; got < n; {
		frames := make([]can.Frame, batch)
		for j := range frames {
			i := got + j
			frames[j] = can.Frame{ID: 0x100, Data: []byte{byte(i >> 16), byte(i >> 8), byte(i)}}
		}
		bus.Inject(frames...)
		for end := got + batch; got < end; {
			b, err := s.Recv()
			if err != nil {
				t.Fatalf("fast reader after %d of %d frames: %v", got, n, err)
			}
			for _, f := range b {
				if seq := int(f.Data[0])<<16 | int(f.Data[1])<<8 | int(f.Data[2]); seq != got {
					t.Fatalf("fast reader: frame %d out of order (want %d)", seq, got)
				}
				got++
			}
		}
	}
	c, err := fastBus.Counters(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if c.Drops != 0 || c.RxFrames != n {
		t.Errorf("fast reader counters %+v, want %d frames and no drops", c, n)
	}
	// The slow session's handle did fall behind, and lost only its own.
	if c, err := slowBus.Counters(ctx); err != nil || c.Drops == 0 {
		t.Errorf("slow session counters %+v, %v; want drops", c, err)
	}
}

// TestFDAndTimestamps checks that FD frames with every flag, error frames
// and receive timestamps cross the socket unchanged, to the nanosecond.
func TestFDAndTimestamps(t *testing.T) {
	ctx := testCtx(t)
	d := fakeDriver()
	bus := d.Bus("can0")
	b, err := canwire.NewDriver(serve(t, d.Open)).Open(ctx, "can0")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if b.Mode() != can.FD {
		t.Fatalf("mode %v, want fd", b.Mode())
	}
	s, err := b.Receive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	base := time.Unix(1700000000, 123456789)
	want := []can.Frame{
		{ID: 0x1ABCDEF0 & can.MaxExtendedID, Extended: true, FD: true, BRS: true, ESI: true, Data: bytes.Repeat([]byte{0xA5}, 64)},
		{ID: 0x7FF, FD: true, Data: []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}},
		{ID: 0x12, FD: true},
		{ID: 0x40, Error: true, Data: []byte{0, 4, 0, 0, 0, 0, 0, 0}},
		{ID: 0x321, Remote: true, RemoteLen: 3},
		{ID: 0x1, Data: []byte{0xFF}},
	}
	for i := range want {
		want[i].Timestamp = base.Add(time.Duration(i) * 1001 * time.Nanosecond)
	}
	bus.Inject(want...)
	var got []can.Frame
	for len(got) < len(want) {
		batch, err := s.Recv()
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, batch...)
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.String() != w.String() || g.BRS != w.BRS || g.ESI != w.ESI || g.Error != w.Error ||
			g.Timestamp.UnixNano() != w.Timestamp.UnixNano() {
			t.Errorf("frame %d: got %s %+v at %d, want %s at %d", i, g, g, g.Timestamp.UnixNano(), w, w.Timestamp.UnixNano())
		}
	}
	// And FD frames sent from the client reach the bus.
	peer := bus.Open()
	defer peer.Close()
	ps, err := peer.Receive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	f := can.Frame{ID: 0x42, FD: true, BRS: true, Data: bytes.Repeat([]byte{7}, 48)}
	if err := b.Send(ctx, f); err != nil {
		t.Fatal(err)
	}
	if g, err := ps.Recv(); err != nil || len(g) != 1 || g[0].String() != f.String() || !g[0].BRS {
		t.Errorf("peer received %v, %v; want %s", g, err, f)
	}
}

// flakyBus fails its first receive stream with Unavailable, as the broker
// does while a plugin restarts.
type flakyBus struct {
	can.Bus
	failed atomic.Bool
}

type failingStream struct{}

func (failingStream) Recv() ([]can.Frame, error) {
	return nil, fmt.Errorf("plugin vcan restarting: %w", canwire.ErrUnavailable)
}

func (f *flakyBus) Receive(ctx context.Context) (can.Stream, error) {
	if !f.failed.Swap(true) {
		return failingStream{}, nil
	}
	return f.Bus.Receive(ctx)
}

func TestUnavailableResumes(t *testing.T) {
	ctx := testCtx(t)
	d := fakeDriver()
	bus := d.Bus("can1")
	path := serve(t, func(ctx context.Context, grant string) (can.Bus, error) {
		b, err := d.Open(ctx, grant)
		if err != nil {
			return nil, err
		}
		return &flakyBus{Bus: b}, nil
	}, canwire.WithRetry(time.Millisecond))
	b, reported := openReporting(t, ctx, path, "can1")
	select {
	case err := <-reported:
		if !errors.Is(err, canwire.ErrUnavailable) || !strings.Contains(err.Error(), "restarting") {
			t.Errorf("reported %v, want the Unavailable error", err)
		}
	case <-ctx.Done():
		t.Fatal("no Unavailable report")
	}
	s, err := b.Receive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The server reopens the stream by itself; frames put on the bus
	// before that are lost, so keep putting one on until one arrives.
	got := make(chan error, 1)
	go func() {
		_, err := s.Recv()
		got <- err
	}()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		bus.Inject(can.Frame{ID: 0x10})
		select {
		case err := <-got:
			if err != nil {
				t.Fatalf("recv after the restart: %v", err)
			}
			return
		case <-tick.C:
		case <-ctx.Done():
			t.Fatal("frames did not resume after Unavailable")
		}
	}
}

func TestConnDeadlinesAndClose(t *testing.T) {
	ctx := testCtx(t)
	path := serve(t, fakeDriver().Open)
	conn, err := canwire.Dial(ctx, path, "can1")
	if err != nil {
		t.Fatal(err)
	}
	if err := conn.SetReadDeadline(time.Now().Add(20 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Read(make([]byte, 16)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("read past the deadline: %v, want os.ErrDeadlineExceeded", err)
	}
	_ = conn.SetReadDeadline(time.Time{})
	errc := make(chan error, 1)
	go func() {
		_, err := conn.Read(make([]byte, 16))
		errc <- err
	}()
	if err := conn.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("read on a closed conn: %v, want net.ErrClosed", err)
		}
	case <-ctx.Done():
		t.Fatal("a blocked Read did not return on Close")
	}
	if _, err := conn.Write(record(1, 0, 0)); !errors.Is(err, can.ErrClosed) {
		t.Errorf("write on a closed conn: %v, want ErrClosed", err)
	}
	if err := conn.Close(); err != nil {
		t.Errorf("second close: %v", err)
	}
}

// TestServerEnds checks that ending Serve ends the sessions and closes
// their buses, and that a client without redialing then ends too.
func TestServerEnds(t *testing.T) {
	ctx := testCtx(t)
	d := fakeDriver()
	path := filepath.Join(t.TempDir(), "device.sock")
	l, err := net.Listen(canwire.Network, path)
	if err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- canwire.Serve(sctx, l, d.Open) }()
	b, err := canwire.OpenBus(ctx, path, "can1", canwire.WithoutRedial())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	conn, err := canwire.Dial(ctx, path, "can1", canwire.WithoutRedial())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	s, err := b.Receive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n := d.Bus("can1").Handles(); n != 2 {
		t.Fatalf("%d handles open on the bus, want 2", n)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("serve: %v", err)
	}
	if n := d.Bus("can1").Handles(); n != 0 {
		t.Errorf("%d handles open after Serve returned, want 0", n)
	}
	if _, err := s.Recv(); !errors.Is(err, can.ErrClosed) {
		t.Errorf("client stream after the server ended: %v, want ErrClosed", err)
	}
	if err := b.Send(ctx, can.Frame{ID: 1}); !errors.Is(err, can.ErrClosed) {
		t.Errorf("send after the server ended: %v, want ErrClosed", err)
	}
	if _, err := conn.Read(make([]byte, 16)); !errors.Is(err, io.EOF) {
		t.Errorf("conn read after the server ended: %v, want io.EOF", err)
	}
	if _, err := conn.Write(record(1, 0, 0)); !errors.Is(err, can.ErrClosed) {
		t.Errorf("conn write after the server ended: %v, want ErrClosed", err)
	}
}
