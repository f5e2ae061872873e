package can_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/berth-io/berth/devices/can"
	"github.com/berth-io/berth/devices/can/cantest"
	pb "github.com/berth-io/berth/devices/can/proto"
	"github.com/berth-io/berth/devices/sdk"
)

// serveUnix serves what register registers on a unix socket and returns
// a connection to it; both end with the test.
func serveUnix(t *testing.T, register func(*grpc.Server)) *grpc.ClientConn {
	t.Helper()
	path := filepath.Join(t.TempDir(), "plugin.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	register(s)
	go func() { _ = s.Serve(l) }()
	t.Cleanup(s.Stop)
	conn, err := grpc.NewClient("unix://"+path, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// hostDriver is the host side of the CAN shim over conn.
func hostDriver(t *testing.T, conn *grpc.ClientConn) can.Driver {
	t.Helper()
	return can.NewClient(conn)
}

// A plugin built before SendStream: the host falls back to one Send call
// per frame and the whole suite still holds.
func TestShimLegacyPluginConformance(t *testing.T) {
	factory := func(t *testing.T) cantest.Harness {
		d := cantest.NewDriver()
		bus := d.Add("can0", cantest.NewBus(can.Classical))
		conn := serveUnix(t, func(s *grpc.Server) { can.RegisterLegacyServer(s, d) })
		return cantest.Harness{
			Driver: hostDriver(t, conn),
			Device: "can0",
			Inject: func(_ context.Context, frames ...can.Frame) error {
				bus.Inject(frames...)
				return nil
			},
			SetState: func(_ context.Context, s can.State) error {
				bus.SetState(s)
				return nil
			},
		}
	}
	cantest.Run(t, "legacy", factory)
}

// A host built before SendStream sends with the Send RPC, which plugins
// still serve.
func TestShimOldHostSend(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), cantest.Timeout)
	defer cancel()
	d := cantest.NewDriver()
	bus := d.Add("can0", cantest.NewBus(can.Classical))
	conn := serveUnix(t, func(s *grpc.Server) {
		can.RegisterServer(s, d)
	})
	rx := bus.Open()
	defer rx.Close()
	s, err := rx.Receive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c := pb.NewCANClient(conn)
	open, err := c.Open(ctx, &pb.OpenRequest{Device: "can0"})
	if err != nil {
		t.Fatal(err)
	}
	if !open.GetSendStream() {
		t.Error("the plugin does not offer SendStream")
	}
	if _, err := c.Send(ctx, &pb.SendRequest{Handle: open.GetHandle(), Frame: &pb.Frame{Id: 0x42, Data: []byte{7}}}); err != nil {
		t.Fatal(err)
	}
	_, err = c.Send(ctx, &pb.SendRequest{Handle: open.GetHandle(), Frame: &pb.Frame{Id: 0x800}})
	if status.Code(err) != codes.InvalidArgument {
		t.Errorf("unary send of a bad id: %v, want InvalidArgument", err)
	}
	got, err := s.Recv()
	if err != nil || len(got) != 1 || got[0].ID != 0x42 {
		t.Fatalf("received %v, %v; want 042#07", got, err)
	}
}

// gate wraps the buses of a driver: their sends wait until the gate
// opens (or their ctx ends), and it records how many frames each call
// to the bus carried.
type gate struct {
	can.Driver
	refuse  uint32 // frames with this ID (not 0) fail with ErrBusOff
	open    chan struct{}
	entered chan struct{} // gets a value each time a send starts waiting

	mu       sync.Mutex
	calls    []int
	deadline []bool // whether each call's ctx had a deadline
}

func newGate(d can.Driver) *gate {
	return &gate{Driver: d, open: make(chan struct{}), entered: make(chan struct{}, 1024)}
}

func (g *gate) Open(ctx context.Context, device string) (can.Bus, error) {
	b, err := g.Driver.Open(ctx, device)
	if err != nil {
		return nil, err
	}
	return &gatedBus{Bus: b, g: g}, nil
}

func (g *gate) wait(ctx context.Context, n int) error {
	_, dl := ctx.Deadline()
	g.mu.Lock()
	g.calls = append(g.calls, n)
	g.deadline = append(g.deadline, dl)
	g.mu.Unlock()
	g.entered <- struct{}{}
	select {
	case <-g.open:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (g *gate) record() ([]int, []bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]int(nil), g.calls...), append([]bool(nil), g.deadline...)
}

type gatedBus struct {
	can.Bus
	g *gate
}

func (b *gatedBus) Send(ctx context.Context, f can.Frame) error {
	if err := b.g.wait(ctx, 1); err != nil {
		return err
	}
	return b.Bus.Send(ctx, f)
}

func (b *gatedBus) SendBatch(ctx context.Context, frames []can.Frame) error {
	if err := b.g.wait(ctx, len(frames)); err != nil {
		errs := make([]error, len(frames))
		for i := range errs {
			errs[i] = err
		}
		return &can.BatchError{Errs: errs}
	}
	if b.g.refuse == 0 {
		return can.SendBatch(ctx, b.Bus, frames)
	}
	errs := make([]error, len(frames))
	for i, f := range frames {
		if f.ID == b.g.refuse {
			errs[i] = fmt.Errorf("send %s: %w", f, can.ErrBusOff)
		} else {
			errs[i] = b.Bus.Send(ctx, f)
		}
	}
	return &can.BatchError{Errs: errs}
}

// waitFor polls cond until it holds or the suite's timeout passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	deadline := time.After(cantest.Timeout)
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("timed out waiting until %s", what)
		}
	}
}

// Sends made while the plugin is busy queue up and go to it in a few
// batches, not one call each; each Send still gets its own result, the
// frame the plugin refuses its own error.
func TestShimSendsCoalesce(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), cantest.Timeout)
	defer cancel()
	d := cantest.NewDriver()
	bus := d.Add("can0", cantest.NewBus(can.Classical))
	g := newGate(d)
	g.refuse = 7
	rb, err := servedDriver(t, g).Open(ctx, "can0")
	if err != nil {
		t.Fatal(err)
	}
	defer rb.Close()
	rx := bus.Open()
	defer rx.Close()
	s, err := rx.Receive(ctx)
	if err != nil {
		t.Fatal(err)
	}

	const senders = 32
	errc := make(chan error, senders)
	send := func(k int) {
		errc <- rb.Send(ctx, can.Frame{ID: uint32(k), Data: []byte{byte(k)}})
	}
	go send(0)
	<-g.entered // the plugin is busy with frame 0
	for k := 1; k < senders; k++ {
		go send(k)
	}
	waitFor(t, "the senders queue up", func() bool { return can.Pending(rb) == senders })
	close(g.open)
	bad := 0
	for range senders {
		err := <-errc
		switch {
		case errors.Is(err, can.ErrBusOff):
			bad++
		case err != nil:
			t.Errorf("send: %v", err)
		}
	}
	if bad != 1 {
		t.Errorf("%d sends refused with ErrBusOff, want 1 (frame 7's)", bad)
	}
	calls, _ := g.record()
	if len(calls) > 4 {
		t.Errorf("the plugin got %d frames in %d calls %v: want them in at most 4", senders, len(calls), calls)
	}
	for got := 0; got < senders-1; {
		b, err := s.Recv()
		if err != nil {
			t.Fatal(err)
		}
		got += len(b)
	}
}

// The caller's deadline travels with its frame: a plugin stuck sending
// it gives up then, and the stream carries on with the next Send.
func TestShimSendDeadlineReachesPlugin(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), cantest.Timeout)
	defer cancel()
	d := cantest.NewDriver()
	d.Add("can0", cantest.NewBus(can.Classical))
	g := newGate(d)
	rb, err := servedDriver(t, g).Open(ctx, "can0")
	if err != nil {
		t.Fatal(err)
	}
	defer rb.Close()
	sctx, scancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer scancel()
	if err := rb.Send(sctx, can.Frame{ID: 1}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("send stuck in the plugin past its deadline: %v, want context.DeadlineExceeded", err)
	}
	done := make(chan error, 1)
	nctx, ncancel := context.WithCancel(context.Background()) // no deadline
	defer ncancel()
	go func() { done <- rb.Send(nctx, can.Frame{ID: 2}) }()
	<-g.entered
	<-g.entered // the plugin gave up on frame 1 and took frame 2
	close(g.open)
	if err := <-done; err != nil {
		t.Fatalf("send after a timed-out one: %v", err)
	}
	_, deadlines := g.record()
	if len(deadlines) != 2 || !deadlines[0] || deadlines[1] {
		t.Errorf("deadlines the plugin saw, per call: %v; want [true false]", deadlines)
	}
}

// Close fails the Sends still waiting for the plugin with ErrClosed.
func TestShimCloseFailsPendingSends(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), cantest.Timeout)
	defer cancel()
	d := cantest.NewDriver()
	d.Add("can0", cantest.NewBus(can.Classical))
	g := newGate(d)
	defer close(g.open)
	rb, err := servedDriver(t, g).Open(ctx, "can0")
	if err != nil {
		t.Fatal(err)
	}
	const senders = 5
	errc := make(chan error, senders)
	for k := range senders {
		go func() { errc <- rb.Send(ctx, can.Frame{ID: uint32(k)}) }()
	}
	<-g.entered
	waitFor(t, "the senders queue up", func() bool { return can.Pending(rb) == senders })
	if err := rb.Close(); err != nil {
		t.Fatal(err)
	}
	for range senders {
		if err := <-errc; !errors.Is(err, can.ErrClosed) {
			t.Errorf("pending send at close: %v, want ErrClosed", err)
		}
	}
}

// When the plugin's end goes away, every Send waiting on it fails with
// Unavailable, as the plugin host expects of a crashed plugin.
func TestShimPluginGoneFailsPendingSends(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), cantest.Timeout)
	defer cancel()
	d := cantest.NewDriver()
	d.Add("can0", cantest.NewBus(can.Classical))
	g := newGate(d)
	c, srv := plugin.TestPluginGRPCConn(t, false, sdk.PluginSet(sdk.Plugin{CAN: g}))
	defer c.Close()
	raw, err := c.Dispense(can.PluginName)
	if err != nil {
		t.Fatal(err)
	}
	rb, err := raw.(can.Driver).Open(ctx, "can0")
	if err != nil {
		t.Fatal(err)
	}
	defer rb.Close()
	const senders = 8
	errc := make(chan error, senders)
	for k := range senders {
		go func() { errc <- rb.Send(ctx, can.Frame{ID: uint32(k)}) }()
	}
	<-g.entered
	waitFor(t, "the senders queue up", func() bool { return can.Pending(rb) == senders })
	srv.Stop()
	for range senders {
		if err := <-errc; status.Code(err) != codes.Unavailable {
			t.Errorf("pending send when the plugin went away: %v (code %v), want Unavailable", err, status.Code(err))
		}
	}
	if err := rb.Send(ctx, can.Frame{ID: 1}); status.Code(err) != codes.Unavailable {
		t.Errorf("send after the plugin went away: %v (code %v), want Unavailable", err, status.Code(err))
	}
}
