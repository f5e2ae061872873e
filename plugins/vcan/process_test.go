package vcan

import (
	"context"
	"fmt"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/berth-io/berth/devices/can"
	"github.com/berth-io/berth/devices/can/cantest"
	"github.com/berth-io/berth/devices/sdk"
	"github.com/berth-io/berth/plugins/internal/plugintest"
)

// pluginBin is the plugin binary TestMain builds.
var pluginBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "vcan-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	pluginBin, err = plugintest.Build("./cmd/berth-plugin-vcan", dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// launch starts the plugin binary configured for socket, as berthd would.
func launch(t testing.TB, ctx context.Context, socket string) *sdk.Client {
	t.Helper()
	sum, err := sdk.FileSHA256(pluginBin)
	if err != nil {
		t.Fatal(err)
	}
	c, err := sdk.Launch(ctx, pluginBin, sdk.WithSHA256(sum))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Kill)
	if c.Info.Name != Name || c.CAN == nil {
		t.Fatalf("launched plugin says it is %+v", c.Info)
	}
	if err := c.Base.Configure(ctx, config(socket, map[string]bool{"vcan0": false, "vcan1": true})); err != nil {
		t.Fatal(err)
	}
	return c
}

func openBus(t testing.TB, ctx context.Context, d can.Driver, dev string) (can.Bus, can.Stream) {
	t.Helper()
	b, err := d.Open(ctx, dev)
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

func seqFrame(i int, fd bool) can.Frame {
	f := can.Frame{ID: 0x123, Data: []byte{byte(i >> 16), byte(i >> 8), byte(i)}}
	if fd {
		f.FD, f.BRS = true, true
		f.Data = append(f.Data, make([]byte, 9)...) // 12 bytes
	}
	return f
}

// expect reads n frames numbered from 0 in order, or fails.
func expect(t *testing.T, s can.Stream, n int, fd bool) {
	t.Helper()
	var last time.Time
	for got := 0; got < n; {
		b, err := s.Recv()
		if err != nil {
			t.Fatalf("after %d of %d frames: %v", got, n, err)
		}
		for _, f := range b {
			want := seqFrame(got, fd)
			if f.ID != want.ID || f.FD != fd || string(f.Data) != string(want.Data) {
				t.Fatalf("frame %d: %s, want %s", got, f, want)
			}
			if f.Timestamp.IsZero() || f.Timestamp.Before(last) {
				t.Fatalf("frame %d: timestamp %v after %v", got, f.Timestamp, last)
			}
			last = f.Timestamp
			got++
		}
	}
}

func sendAll(ctx context.Context, b can.Bus, n int, fd bool) error {
	for i := range n {
		if err := b.Send(ctx, seqFrame(i, fd)); err != nil {
			return fmt.Errorf("send %d: %w", i, err)
		}
	}
	return nil
}

// Two plugin processes on one socket exchange frames both ways, in order,
// classical and FD; one is killed and the other, and a newcomer, carry on.
func TestTwoProcesses(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s := testSocket()
	a := launch(t, ctx, s) // hosts the hub
	b := launch(t, ctx, s)

	for _, tc := range []struct {
		dev string
		fd  bool
	}{{"vcan0", false}, {"vcan1", true}} {
		t.Run(tc.dev, func(t *testing.T) {
			ab, as := openBus(t, ctx, a.CAN, tc.dev)
			bb, bs := openBus(t, ctx, b.CAN, tc.dev)
			const n = 500
			errc := make(chan error, 2)
			go func() { errc <- sendAll(ctx, ab, n, tc.fd) }()
			go func() { errc <- sendAll(ctx, bb, n, tc.fd) }()
			expect(t, bs, n, tc.fd)
			expect(t, as, n, tc.fd)
			for range 2 {
				if err := <-errc; err != nil {
					t.Fatal(err)
				}
			}
		})
	}

	// Kill the hub's host: b takes over; its handles still talk, and a
	// new process joins it.
	b1, _ := openBus(t, ctx, b.CAN, "vcan0")
	a.Kill()
	c := launch(t, ctx, s)
	_, cs := openBus(t, ctx, c.CAN, "vcan0")
	b2, b2s := openBus(t, ctx, b.CAN, "vcan0")
	if err := sendAll(ctx, b1, 100, false); err != nil {
		t.Fatal(err)
	}
	expect(t, b2s, 100, false)
	expect(t, cs, 100, false)
	if err := b2.Send(ctx, seqFrame(0, false)); err != nil {
		t.Fatal(err)
	}
}

// The throughput between two plugin processes, through the gRPC shim as
// the broker uses them today: one process sends, one Send at a time (a
// round trip each), the other receives; the sender keeps a window of
// frames in flight so the receiver keeps up and nothing is lost.
// BenchmarkProcesses measures concurrent and batched senders too.
func TestThroughputBetweenProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("throughput measurement skipped in -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s := testSocket()
	a, b := launch(t, ctx, s), launch(t, ctx, s)
	tx, _ := openBus(t, ctx, a.CAN, "vcan0")
	_, rx := openBus(t, ctx, b.CAN, "vcan0")
	const n, window = 20000, 2000
	acked := make(chan struct{}, n/window+1)
	start := time.Now()
	errc := make(chan error, 1)
	go func() {
		for i := range n {
			if i >= window && i%window == 0 {
				select {
				case <-acked:
				case <-ctx.Done():
					errc <- ctx.Err()
					return
				}
			}
			if err := tx.Send(ctx, seqFrame(i, false)); err != nil {
				errc <- err
				return
			}
		}
		errc <- nil
	}()
	for got := 0; got < n; {
		batch, err := rx.Recv()
		if err != nil {
			t.Fatalf("after %d frames: %v", got, err)
		}
		for _, f := range batch {
			if want := seqFrame(got, false); string(f.Data) != string(want.Data) {
				t.Fatalf("frame %d: %s, want %s", got, f, want)
			}
			got++
			if got%window == 0 {
				acked <- struct{}{}
			}
		}
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	el := time.Since(start)
	t.Logf("%d frames between two plugin processes in %v: %.0f frames/s", n, el, float64(n)/el.Seconds())
}

// The conformance suite against the plugin as a real process, through
// the gRPC shim as berthd uses it; each case gets its own process and
// hub.
func TestProcessConformance(t *testing.T) {
	cantest.Run(t, "process", func(t *testing.T) cantest.Harness {
		ctx, cancel := context.WithTimeout(context.Background(), cantest.Timeout)
		defer cancel()
		s := testSocket()
		c := launch(t, ctx, s)
		return cantest.Harness{Driver: c.CAN, Device: "vcan0", Inject: inject(s, "vcan0", can.Classical)}
	})
}

// When the plugin process dies (SIGKILL), the Sends waiting on it fail
// with Unavailable, which the plugin host turns into its unavailable
// error; none hangs.
func TestProcessCrashFailsPendingSends(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := launch(t, ctx, testSocket())
	tx, _ := openBus(t, ctx, c.CAN, "vcan0")
	const senders = 16
	var (
		mu   sync.Mutex
		sent int
	)
	errc := make(chan error, senders)
	for k := range senders {
		go func() {
			for i := 0; ; i++ {
				if err := tx.Send(ctx, seqFrame(k<<12|i, false)); err != nil {
					errc <- err
					return
				}
				mu.Lock()
				sent++
				mu.Unlock()
			}
		}()
	}
	waitSent := time.NewTicker(time.Millisecond)
	defer waitSent.Stop()
	for n := 0; n < 1000; {
		select {
		case <-waitSent.C:
			mu.Lock()
			n = sent
			mu.Unlock()
		case err := <-errc:
			t.Fatalf("send before the crash: %v", err)
		case <-ctx.Done():
			t.Fatal("senders did not get 1000 frames out")
		}
	}
	if err := syscall.Kill(c.Pid(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for range senders {
		select {
		case err := <-errc:
			if status.Code(err) != codes.Unavailable {
				t.Errorf("send when the plugin died: %v (code %v), want Unavailable", err, status.Code(err))
			}
		case <-ctx.Done():
			t.Fatal("a send still hangs after the plugin died")
		}
	}
}

// A started and configured plugin stays within plugintest.MaxIdleRSS; so
// does one serving an open bus with a receive stream (berthd's steady
// state), reported for reference.
func TestIdleRSS(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := launch(t, ctx, testSocket())
	rss, err := plugintest.ReadRSS(c.Pid())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("configured, idle: %v", rss)
	if rss.Total > plugintest.MaxIdleRSS {
		t.Errorf("idle plugin uses %v, more than %d KiB", rss, plugintest.MaxIdleRSS>>10)
	}
	tx, _ := openBus(t, ctx, c.CAN, "vcan0")
	if err := sendAll(ctx, tx, 1000, false); err != nil {
		t.Fatal(err)
	}
	if rss, err = plugintest.ReadRSS(c.Pid()); err != nil {
		t.Fatal(err)
	}
	t.Logf("a bus open, 1000 frames sent: %v", rss)
}
